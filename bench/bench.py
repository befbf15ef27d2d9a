#!/usr/bin/python3
"""Compare seer's resnet18 with PyTorch's on this machine, in one interleaved run.

Engines: seer (`seer bench --json`), torch eager (torch.inference_mode) and torch "best"
(torch.jit.trace + torch.jit.freeze + torch.jit.optimize_for_inference), all fp32, on the same
synthetic weights (weights/make_synthetic.py, converted once for seer), with the same thread
count and the same number of forward passes per round.  For every (threads, batch) the engines
are warmed up, then run round-robin, seer, eager, best, R times, so that drift of the machine
(frequency, noisy neighbours) hits all three alike.

Fairness: both engines run in their own processes and the parent only waits.  seer is a fresh
`seer bench` process per round and times the network alone after its model is loaded; torch runs
in one long-lived worker process (this script with --worker) that times each forward pass with
perf_counter after the model is built, so neither side pays process start or model load in the
timings.  The worker gets the same OPENBLAS_CORETYPE that seer reports using, and OpenBLAS in it
gets the same thread count as torch, so torch's fc layer is not handicapped by a misdetected
BLAS core.  Each round yields a median and a p90 per engine (seer computes its own from the same
number of passes); the table shows the median over rounds of both, per image.

Then peak RSS (VmHWM, through wait4's ru_maxrss of the process itself) and wall time of
classifying one JPEG made from skimage's chelsea.png: `seer classify` versus a minimal python
script that builds torchvision's resnet18, loads the state_dict and classifies the same image.

Usage: /usr/bin/python3 bench/bench.py [--seer build/src/seer] [--threads 1,2] [--batches 1,8]
                                        [--rounds R] [--target-s S] [--raw FILE] [--images]
Prints a Markdown report on stdout, progress on stderr.
"""

import argparse
import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
PYTHON = "/usr/bin/python3"
CHELSEA = "/usr/lib/python3/dist-packages/skimage/data/chelsea.png"
SEED = 0


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def p90(xs):
    """The 90th percentile as seer bench computes it: the nearest rank of sorted samples."""
    xs = sorted(xs)
    return xs[int((len(xs) - 1) * 0.9 + 0.5)]


# ---------------------------------------------------------------- torch worker process

def worker_main():
    """Serve timing requests from the parent: one JSON object per line in, one out."""
    import torch
    import torchvision

    def set_threads(n):
        torch.set_num_threads(n)
        try:
            lib = ctypes.CDLL("libopenblas.so.0")
            lib.openblas_set_num_threads(n)
        except OSError:
            pass

    model = None
    best = {}
    inputs = {}
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "load":
            model = torchvision.models.resnet18()
            model.load_state_dict(torch.load(req["pth"]))
            model.eval()
            reply = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "blas_core": _openblas_core(), "mkldnn": torch.backends.mkldnn.is_available()}
        elif cmd == "run":
            b, n = req["batch"], req["iters"]
            set_threads(req["threads"])
            if b not in inputs:
                inputs[b] = torch.randn(b, 3, 224, 224, generator=torch.Generator().manual_seed(b))
            x = inputs[b]
            if req["engine"] == "best" and b not in best:
                with torch.no_grad():
                    traced = torch.jit.trace(model, x)
                    best[b] = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            net = model if req["engine"] == "eager" else best[b]
            # inference_mode for eager, the fastest eager mode; no_grad for the scripted module,
            # which is what the TorchScript docs use with optimize_for_inference.
            ctx = torch.inference_mode if req["engine"] == "eager" else torch.no_grad
            times = []
            with ctx():
                for _ in range(n):
                    t0 = time.perf_counter()
                    net(x)
                    times.append((time.perf_counter() - t0) * 1e3)
            reply = {"times_ms": times}
        else:
            reply = {"error": "unknown command %r" % cmd}
        print(json.dumps(reply), flush=True)


def _openblas_core():
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "?"


class Worker:
    """The torch worker process, driven over pipes."""

    def __init__(self, env):
        self.p = subprocess.Popen([PYTHON, os.path.abspath(__file__), "--worker"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env)

    def call(self, **req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("torch worker died (exit %s)" % self.p.wait())
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError("torch worker: " + reply["error"])
        return reply

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=60)


# ---------------------------------------------------------------- seer

def seer_bench(seer, model, threads, batch, iters):
    """Run `seer bench --json`; return its parsed line."""
    cmd = [seer, "bench", "--model", model, "--threads", str(threads), "--batch", str(batch),
           "--iters", str(iters), "--json"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if len(lines) != 1:
        raise RuntimeError("seer bench printed no single JSON line: %r" % p.stdout)
    return json.loads(lines[0])


# ---------------------------------------------------------------- peak memory

TORCH_CLASSIFY = r"""
import sys, torch, torchvision
from PIL import Image
from torchvision import transforms
torch.set_num_threads(int(sys.argv[3]))
model = torchvision.models.resnet18()
model.load_state_dict(torch.load(sys.argv[1]))
model.eval()
prep = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                           transforms.ToTensor(),
                           transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
x = prep(Image.open(sys.argv[2]).convert("RGB")).unsqueeze(0)
with torch.inference_mode():
    p = model(x).softmax(1)[0]
top = p.topk(5)
print(top.indices.tolist())
"""


def run_rss(cmd, env=None):
    """Run cmd; return (peak RSS in MiB from wait4's ru_maxrss, wall s, stdout)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fout, stderr=ferr, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read().decode(errors="replace"), ferr.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode, err.strip()))
    return ru.ru_maxrss / 1024.0, wall, out.strip()


# ---------------------------------------------------------------- machine

def machine_info():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            cpu = f.read()
        fields = {}
        for line in cpu.splitlines():
            if ":" in line:
                k, v = (s.strip() for s in line.split(":", 1))
                fields.setdefault(k, v)
        flags = fields.get("flags", "").split()
        simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
        info["cpu"] = "%s (family %s model %s stepping %s; %s)" % (
            fields.get("model name", "?"), fields.get("cpu family", "?"), fields.get("model", "?"),
            fields.get("stepping", "?"), ", ".join(simd) or "no AVX2")
    except OSError:
        info["cpu"] = platform.processor() or "?"
    info["cpus"] = len(os.sched_getaffinity(0))
    info["kernel"] = platform.release()
    return info


# ---------------------------------------------------------------- main

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seer", default=os.path.join(REPO, "build", "src", "seer"),
                    help="seer binary (default: build/src/seer of this tree)")
    ap.add_argument("--images", action="store_true",
                    help="also run bench/bench_img.py (decode + preprocess against Pillow + "
                         "torchvision) and append its report")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--batches", default="1,8", help="batch sizes, comma-separated")
    ap.add_argument("--rounds", type=int, default=5, help="round-robin rounds (default 5)")
    ap.add_argument("--target-s", type=float, default=1.5,
                    help="seconds each engine runs per round; sets the passes per round")
    ap.add_argument("--raw", metavar="FILE", help="also write every measurement as JSON")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main()
        return 0

    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    seer = os.path.abspath(args.seer)
    if not os.access(seer, os.X_OK):
        sys.exit("bench: no seer binary at %s (build it, or pass --seer)" % seer)
    started = time.perf_counter()
    load = os.getloadavg()[0]
    if load > 0.5:
        log("warning: load average %.2f before starting: other work on this machine will "
            "skew the numbers" % load)
    workdir = tempfile.mkdtemp(prefix="seer-bench-")
    try:
        report, raw = run_all(args, seer, threads, batches, workdir)
        report += "\nLoad average (1 min) before / after the run: %.2f / %.2f.\n" % (
            load, os.getloadavg()[0])
        if load > 0.5:
            report += ("\n**Other work was running on this machine: these numbers are not fit "
                       "for BENCHMARKS.md** (with T threads on a machine with fewer than T idle "
                       "CPUs, OpenMP barriers wait for descheduled threads and torch slows down "
                       "by 10x or more).\n")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.images:
        img_dump = os.path.join(os.path.dirname(os.path.dirname(seer)), "tests", "img_dump")
        log("decode + preprocess benchmark (bench_img.py)")
        report += "\n" + subprocess.run(
            [PYTHON, os.path.join(HERE, "bench_img.py"), "--img-dump", img_dump],
            check=True, stdout=subprocess.PIPE, text=True).stdout
    print(report)
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump(raw, f, indent=1)
    log("done in %.0f s" % (time.perf_counter() - started))
    return 0


def run_all(args, seer, threads, batches, workdir):
    pth = os.path.join(workdir, "resnet18-synthetic.pth")
    model = os.path.join(workdir, "resnet18-synthetic.seer")
    log("writing synthetic weights (seed %d) and converting them" % SEED)
    subprocess.run([PYTHON, os.path.join(REPO, "weights", "make_synthetic.py"), "--seed",
                    str(SEED), pth], check=True)
    subprocess.run([seer, "convert", pth, model], check=True)

    # Warm up seer once (page the model in) and learn which OpenBLAS core it runs.
    probe = seer_bench(seer, model, threads[0], batches[0], 2)
    seer_core = probe.get("blas_core", "?")
    env = dict(os.environ)
    if seer_core not in ("?", "") and "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = seer_core
    worker = Worker(env)
    meta = worker.call(cmd="load", pth=pth)

    rows = []
    raw = {"rounds": args.rounds, "configs": []}
    for t in threads:
        for b in batches:
            log("threads %d, batch %d: warming up" % (t, b))
            seer_bench(seer, model, t, b, 2)
            worker.call(cmd="run", engine="eager", threads=t, batch=b, iters=2)
            worker.call(cmd="run", engine="best", threads=t, batch=b, iters=3)
            probe = worker.call(cmd="run", engine="eager", threads=t, batch=b, iters=2)
            iters = max(3, min(100, round(args.target_s * 1e3 / min(probe["times_ms"]))))
            per = {"seer": [], "eager": [], "best": []}
            for r in range(args.rounds):
                log("threads %d, batch %d: round %d/%d (%d passes each)" %
                    (t, b, r + 1, args.rounds, iters))
                time.sleep(0.1)  # let the worker's OpenMP threads stop spinning
                s = seer_bench(seer, model, t, b, iters)
                per["seer"].append((s["median_ms"], s["p90_ms"]))
                for eng in ("eager", "best"):
                    ts = worker.call(cmd="run", engine=eng, threads=t, batch=b,
                                     iters=iters)["times_ms"]
                    per[eng].append((statistics.median(ts), p90(ts)))
            summary = {eng: (statistics.median(m for m, _ in v) / b,
                             statistics.median(p for _, p in v) / b)
                       for eng, v in per.items()}
            rows.append((t, b, iters, summary))
            raw["configs"].append({"threads": t, "batch": b, "iters": iters,
                                   "per_round_ms_per_pass": per})
    worker.close()

    log("peak memory: classifying one image with each")
    jpg = os.path.join(workdir, "chelsea.jpg")
    from PIL import Image
    Image.open(CHELSEA).convert("RGB").save(jpg, quality=90)
    script = os.path.join(workdir, "torch_classify.py")
    with open(script, "w") as f:
        f.write(TORCH_CLASSIFY)
    mem = {"seer": [], "torch": []}
    ncpu = len(os.sched_getaffinity(0))  # seer classify's default: one thread per CPU
    for _ in range(3):
        mem["seer"].append(run_rss([seer, "classify", "--model", model, "--topk", "5", "--json",
                                    jpg]))
        mem["torch"].append(run_rss([PYTHON, script, pth, jpg, str(ncpu)], env=env))
    raw["memory"] = {k: [(r, w) for r, w, _ in v] for k, v in mem.items()}

    return render(rows, mem, meta, seer_core, args, ncpu), raw


def render(rows, mem, meta, seer_core, args, ncpu):
    m = machine_info()
    out = []
    out.append("Machine: %s, %d CPUs available, Linux %s." % (m["cpu"], m["cpus"], m["kernel"]))
    out.append("seer: OpenBLAS core %s. PyTorch %s (torchvision %s, Debian build): convolutions "
               "in oneDNN, OpenBLAS core %s for the rest." %
               (seer_core, meta["torch"], meta["torchvision"], meta["blas_core"]))
    out.append("fp32, synthetic resnet18 weights, %d interleaved rounds per row; ms per image "
               "= median over rounds of each round's median (p90) of per-pass times, divided by "
               "the batch. seer/torch < 1 means seer is faster." % args.rounds)
    out.append("")
    out.append("| threads | batch | passes/round | seer ms/img | torch eager ms/img "
               "| torch best ms/img | seer/eager | seer/best |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t, b, iters, s in rows:
        def cell(eng):
            return "%.2f (%.2f)" % s[eng]
        out.append("| %d | %d | %d | %s | %s | %s | %.2f | %.2f |" % (
            t, b, iters, cell("seer"), cell("eager"), cell("best"),
            s["seer"][0] / s["eager"][0], s["seer"][0] / s["best"][0]))
    out.append("")
    out.append("Classifying one 451x300 JPEG, a fresh process each time (median of 3; "
               "peak RSS = ru_maxrss from wait4; torch with %d thread(s)):" % ncpu)
    out.append("")
    out.append("| | peak RSS MiB | wall s |")
    out.append("|---|---:|---:|")
    for name, key in (("`seer classify`", "seer"),
                      ("python: torchvision resnet18 + load_state_dict", "torch")):
        rss = statistics.median(r for r, _, _ in mem[key])
        wall = statistics.median(w for _, w, _ in mem[key])
        out.append("| %s | %.0f | %.2f |" % (name, rss, wall))
    out.append("")
    seer_top = [c["index"] for c in json.loads(mem["seer"][0][2])["topk"]]
    out.append("Top-5 on that image: seer %s, torch %s (preprocessing differs: seer's own "
               "decoder and resize, torchvision's Resize(256) + CenterCrop(224) on PIL)." %
               (seer_top, mem["torch"][0][2]))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
