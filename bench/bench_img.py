#!/usr/bin/python3
"""Decode + preprocess time of seer against Pillow + torchvision, in one interleaved run.

What is timed, per image, from the encoded bytes in memory to the normalised 3x224x224 float32
tensor, on one thread:
  PIL + torchvision   Image.open(BytesIO(data)).convert('RGB'), then Resize(256), CenterCrop(224),
                      ToTensor(), Normalize(ImageNet mean/std)      (the reference)
  PIL draft           the same after im.draft('RGB', (256, 256)): PIL's own DCT-scaling shortcut,
                      shown for context (it is what seer's fast path computes)
  seer exact          img_decode_crop() + img_normalize(): the JPEG is decoded only where the crop
                      reads it and streamed into the resize (bit-exact with the reference)
  seer exact 2-step   img_decode() + img_resize_crop() + img_normalize(): the whole image decoded
                      into one buffer first (bit-exact too; what `seer preprocess` did so far)
  seer fast           img_decode_crop() with opts.fast: DCT scaling to 1/2, 1/4 or 1/8 first

Fairness: one process per engine at a time, the parent only waits. Pillow and torchvision run in
one long-lived worker (this script with --worker) with torch.set_num_threads(1); seer runs as a
fresh tests/img_dump process per measurement (`--bench N`), which reads the file first and times
N iterations in-process. Both sides time the same N iterations on bytes already in memory, and
neither pays process start or imports. Engines alternate within every round and the rounds are
repeated, so drift of the machine hits all alike; each round gives a median per engine, the
table shows the median over rounds, and each ratio is the median of the per-round ratios
(seer / PIL + torchvision: below 1 is faster).

Then, per image: the size the fast path decodes at, the PSNR of its 224x224 crop against the
exact crop, and the peak RSS of one decode (a fresh img_dump process for seer; for Pillow the
growth of the worker's peak RSS over a first decode).

Images, made from Debian's python3-skimage photos: a 12 MP JPEG (astronaut upscaled to
4000x3000, with film grain so that it compresses like a phone photo, q90), the same without
grain, a 1 MP PNG (astronaut upscaled to 1155x866) and a 500x375 JPEG (chelsea, q90).

Usage: /usr/bin/python3 bench/bench_img.py [--img-dump build/tests/img_dump] [--rounds R]
                                            [--keep DIR]
Prints a Markdown report on stdout (for BENCHMARKS.md), progress on stderr.
"""

import argparse
import io
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
SEER_MODES = {  # name -> img_dump flags
    "seer exact": [],
    "seer exact 2-step": ["--full"],
    "seer fast": ["--fast"],
}
PIL_MODES = ("PIL + torchvision", "PIL draft")
COLUMNS = ("PIL + torchvision", "seer exact", "seer exact 2-step", "seer fast", "PIL draft")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# The Pillow side, in its own process
# --------------------------------------------------------------------------

def vm_hwm_kb():
    """This process's peak RSS (VmHWM, which exec resets, unlike getrusage's maxrss)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def worker():
    """Answer one JSON request per stdin line: {"path", "mode", "n"} -> {"ms": [...], "rss_kb"}."""
    import torch
    import torchvision.transforms as T
    from PIL import Image

    torch.set_num_threads(1)
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    cache = {}

    def once(data, draft):
        im = Image.open(io.BytesIO(data))
        if draft:
            im.draft("RGB", (256, 256))
        return tf(im.convert("RGB"))

    for line in sys.stdin:
        req = json.loads(line)
        if req["path"] not in cache:
            with open(req["path"], "rb") as f:
                cache[req["path"]] = f.read()
        data = cache[req["path"]]
        draft = req["mode"] == "PIL draft"
        before = vm_hwm_kb()
        times = []
        for _ in range(req["n"]):
            t0 = time.perf_counter()
            once(data, draft)
            times.append((time.perf_counter() - t0) * 1e3)
        rss = vm_hwm_kb() - before
        print(json.dumps({"ms": times, "rss_kb": rss}), flush=True)


class PilWorker:
    def __init__(self):
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def run(self, path, mode, n):
        self.p.stdin.write(json.dumps({"path": path, "mode": mode, "n": n}) + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        self.p.stdin.close()
        self.p.wait()


# --------------------------------------------------------------------------
# The seer side: tests/img_dump
# --------------------------------------------------------------------------

def seer_time(dump, path, flags, n, out):
    """Median ms of n in-process iterations of one fresh img_dump."""
    r = subprocess.run([dump, path, out, "--bench", str(n)] + flags, capture_output=True, text=True)
    m = re.search(r"median ([0-9.]+) ms", r.stderr)
    if r.returncode != 0 or not m:
        sys.exit("img_dump failed on %s: %s" % (path, r.stderr.strip()))
    return float(m.group(1))


def seer_once(dump, path, flags, out):
    """(peak RSS kB, decoded size) of one fresh img_dump decoding path once.

    The peak is the process's own VmHWM: getrusage() of a child would also count the Python
    process it was forked from."""
    r = subprocess.run([dump, path, out, "--rss"] + flags, capture_output=True, text=True)
    m = re.search(r"peak RSS (-?[0-9]+) kB", r.stderr)
    if r.returncode != 0 or not m:
        sys.exit("img_dump failed on %s: %s" % (path, r.stderr.strip()))
    return int(m.group(1)), r.stdout.strip()


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------

def make_images(work):
    import numpy as np
    from PIL import Image

    astro = Image.open(os.path.join(SKIMAGE_DATA, "astronaut.png")).convert("RGB")
    chelsea = Image.open(os.path.join(SKIMAGE_DATA, "chelsea.png")).convert("RGB")
    big = astro.resize((4000, 3000), Image.BICUBIC)
    grain = np.random.default_rng(1).normal(0, 6, (3000, 4000, 3)).astype(np.float32)
    grainy = np.clip(np.rint(np.asarray(big, np.float32) + grain), 0, 255).astype(np.uint8)
    images = []

    def add(label, name, im, **kw):
        p = os.path.join(work, name)
        im.save(p, **kw)
        images.append((label, p))

    add("12 MP JPEG 4000x3000 (grain)", "photo12mp.jpg", Image.fromarray(grainy), quality=90)
    add("12 MP JPEG 4000x3000 (smooth)", "smooth12mp.jpg", big, quality=90)
    add("1 MP PNG 1155x866", "astronaut1mp.png",
        Image.fromarray(np.asarray(astro.resize((1155, 866), Image.BICUBIC))))
    add("JPEG 500x375", "chelsea500.jpg", chelsea.resize((500, 375), Image.BICUBIC), quality=90)
    return images


def psnr(a, b):
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def iterations(path):
    """Per-round iterations: about the same wall time for every image."""
    size = os.path.getsize(path)
    return 5 if size > 500000 else 15


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--img-dump", default="build/tests/img_dump")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--keep", help="keep the images and the crops (NAME.exact.u8, NAME.fast.u8) here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker()

    import numpy as np

    dump = os.path.abspath(args.img_dump)
    if not os.access(dump, os.X_OK):
        sys.exit("no %s: build it with `make -C build tests/img_dump`" % dump)
    tmp = None
    work = args.keep
    if work:
        os.makedirs(work, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_img.")
        work = tmp.name
    log("making images in %s" % work)
    images = make_images(work)
    out = os.path.join(work, "out.u8")
    pil = PilWorker()

    # warm-up: page cache, lazy imports, the worker's first allocations
    for _, path in images:
        for mode in PIL_MODES:
            pil.run(path, mode, 1)
        for flags in SEER_MODES.values():
            seer_time(dump, path, flags, 1, out)

    ms = {(img, col): [] for img, _ in images for col in COLUMNS}
    ratio = {(img, col): [] for img, _ in images for col in COLUMNS}
    for r in range(args.rounds):
        log("round %d/%d" % (r + 1, args.rounds))
        for label, path in images:
            n = iterations(path)
            got = {}
            # alternate the side that goes first
            order = list(PIL_MODES) + list(SEER_MODES)
            if r % 2:
                order.reverse()
            for col in order:
                if col in PIL_MODES:
                    got[col] = statistics.median(pil.run(path, col, n)["ms"])
                else:
                    got[col] = seer_time(dump, path, SEER_MODES[col], n, out)
            for col in COLUMNS:
                ms[(label, col)].append(got[col])
                ratio[(label, col)].append(got[col] / got["PIL + torchvision"])

    # memory and the fast path's accuracy, once
    extra = {}
    for label, path in images:
        name = os.path.splitext(os.path.basename(path))[0]
        ex = os.path.join(work, name + ".exact.u8")
        fa = os.path.join(work, name + ".fast.u8")
        rss_exact, _ = seer_once(dump, path, [], ex)
        rss_2step, _ = seer_once(dump, path, ["--full"], out)
        rss_fast, _ = seer_once(dump, path, ["--fast"], fa)
        _, size = seer_once(dump, path, ["--fast", "--size"], out)
        w = PilWorker()  # a fresh one, so that the growth of its peak is this decode's
        w.run(images[-1][1], "PIL + torchvision", 1)  # imports and first allocations
        rss_pil = w.run(path, "PIL + torchvision", 1)["rss_kb"]
        w.close()
        a = np.fromfile(ex, np.uint8)
        b = np.fromfile(fa, np.uint8)
        extra[label] = (size, psnr(a, b), rss_pil, rss_exact, rss_2step, rss_fast)
    pil.close()

    def cell(label, col):
        t = statistics.median(ms[(label, col)])
        if col == "PIL + torchvision":
            return "%.1f ms" % t
        return "%.1f ms (%.2fx)" % (t, statistics.median(ratio[(label, col)]))

    print("## Image decode + preprocess: seer vs Pillow + torchvision\n")
    print("`/usr/bin/python3 bench/bench_img.py --img-dump %s --rounds %d`, %s, %s, %d CPUs, "
          "one thread per engine; %d rounds, medians; (ratio) = time / PIL + torchvision's time "
          "in the same round.\n" % (os.path.relpath(dump), args.rounds, time.strftime("%Y-%m-%d"),
                                    platform.processor() or platform.machine(), os.cpu_count(),
                                    args.rounds))
    print("| image | bytes | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    for label, path in images:
        print("| %s | %d | %s |" % (label, os.path.getsize(path),
                                   " | ".join(cell(label, c) for c in COLUMNS)))
    print()
    print("| image | fast path decodes at | PSNR fast vs exact (224x224x3) | peak RSS: PIL (growth "
          "of the worker's) | seer exact (whole process) | seer exact 2-step | seer fast |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, _ in images:
        size, db, rp, re_, r2, rf = extra[label]
        print("| %s | %s | %s | %.1f MB | %.1f MB | %.1f MB | %.1f MB |" % (
            label, size, "identical" if db == math.inf else "%.1f dB" % db,
            rp / 1024, re_ / 1024, r2 / 1024, rf / 1024))
    print()
    exact_r = max(statistics.median(ratio[(label, "seer exact")]) for label, _ in images)
    fast_x = [(label, 1 / statistics.median(ratio[(label, "seer fast")]))
              for label, _ in images if label.startswith("12 MP")]
    print("Targets (issue #3): exact path <= 0.8x Pillow + torchvision: worst %.2fx, %s; fast path "
          ">= 5x faster on a 12 MP photo: %s." % (
              exact_r, "met" if exact_r <= 0.8 else "NOT met",
              "; ".join("%.1fx on the %s, %s" % (x, label, "met" if x >= 5 else "NOT met")
                        for label, x in fast_x)))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
