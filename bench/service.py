#!/usr/bin/python3
"""The whole service under load: seer (nginx + seerd) against Flask + gunicorn, in one run.

Two stacks run side by side on loopback, each with 2 worker processes of one compute thread:

  seer        `seerctl start` from the build tree: nginx in front of the seerd pool over FastCGI,
              every classification logged to SQLite, as an operator runs it (rate limit raised
              so that the load generator is not throttled).
  reference   bench/reference/app.py (Flask, PIL, torchvision's Resize/CenterCrop/ToTensor/
              Normalize, torch.set_num_threads(1)) under gunicorn with 2 sync workers, behind
              nginx's proxy_pass (gunicorn's documented deployment for sync workers, and the same
              kind of front as seer's), or bound directly with --ref-front direct.

Both run the same network: the synthetic state_dict of weights/make_synthetic.py, loaded by
torchvision in each gunicorn worker and converted once by `seer convert` for seer.  Before any
load each stack classifies each image once and the top-5 of the two are compared.

Load: wrk, one thread, C keep-alive connections, POSTing the image as the raw body for a fixed
time.  Each request carries a JPEG comment (COM) segment with a tag unique to that request, so
that no two bodies are the same: seer returns stored results for bytes it has classified before,
and a benchmark of that cache would say nothing about the service.  Both stacks get the same
bodies.  For every (image, C): a warm-up run per stack, then R rounds with the stacks in ABBA
order, so that drift of this shared machine hits both alike.  Every run starts once the CPUs are
idle: when wrk stops, the stack it loaded still works through the requests queued behind it
(for 16 connections and the 12 MP photo, over a second of gunicorn's time), which would
otherwise land in the next run's measurement.  Each run gives requests/s, p50 and
p99 latency (wrk's own histogram, read in its Lua done() hook), and the count of non-2xx answers
and socket errors; the table shows the median over rounds and the median of the per-round
seer/reference ratios.

Memory, after the load: RSS and PSS (/proc/PID/smaps_rollup) summed over the pool (seerd's
supervisor and workers; gunicorn's master and workers; nginx is left out of both), against the
RSS of one worker alone.  PSS charges each shared page to the processes sharing it in equal
parts, so the pool's PSS is what the pool really costs; the issue's target is a 2-worker seer
pool under 1.5x the RSS of one worker, since its weights are one read-only mapping shared by all.

Targets (the service issue): seer at least 2x the reference's requests/s and under half its p99.

Usage: /usr/bin/python3 bench/service.py [--builddir build] [--quick] [--json FILE]
           [--conns 4,16] [--duration S] [--rounds R] [--warmup S] [--ref-front nginx|direct]
           [--stacks seer,ref] [--keep DIR]
Default run: about 4 minutes; --quick: under a minute.  Report on stdout (Markdown), progress on
stderr.
"""

import argparse
import glob
import io
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
PYTHON = "/usr/bin/python3"
SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
WORKERS = 2
WRK_TIMEOUT_S = 20  # a request slower than this counts as a timeout error
SEER_RATE = 100000  # requests/s per client address for seerctl --rate: no throttling

# wrk script: POST the image with a unique COM segment per request, count statuses and seer's
# cache hits per thread, and print one JSON line from done() with wrk's own latency statistics.
# Arguments (after --): image path, byte offset where the COM segment goes, run tag.
WRK_LUA = r"""
local threads = {}
function setup(thread)
	table.insert(threads, thread)
	thread:set("thread_no", #threads)
end

local head, tail, tag, n = nil, nil, nil, 0
statuses, cached = {}, 0
function init(args)
	local f = assert(io.open(args[1], "rb"))
	local data = f:read("*a")
	f:close()
	local at = tonumber(args[2])
	head, tail, tag = data:sub(1, at), data:sub(at + 1), args[3]
end

function request()
	n = n + 1
	local text = string.format("%s/%d/%d", tag, thread_no, n)
	local len = #text + 2
	local com = "\255\254" .. string.char(math.floor(len / 256), len % 256) .. text
	return wrk.format("POST", "/api/classify", {["Content-Type"] = "image/jpeg"},
			  head .. com .. tail)
end

function response(status, headers, body)
	statuses[status] = (statuses[status] or 0) + 1
	if body and body:find('"cached":%s*true') then
		cached = cached + 1
	end
end

function done(summary, latency, requests)
	local st, hits = {}, 0
	for _, t in ipairs(threads) do
		for code, count in pairs(t:get("statuses")) do
			st[code] = (st[code] or 0) + count
		end
		hits = hits + t:get("cached")
	end
	local parts = {}
	for code, count in pairs(st) do
		table.insert(parts, string.format('"%d": %d', code, count))
	end
	local e = summary.errors
	io.write(string.format('SERVICE-BENCH {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
		'"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
		'"statuses": {%s}, "cached": %d, "latency_us": {"min": %d, "mean": %.1f, ' ..
		'"max": %d, "p50": %d, "p90": %d, "p99": %d}}\n',
		summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
		e.status, e.timeout, table.concat(parts, ", "), hits, latency.min, latency.mean,
		latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def log(msg):
    print("service-bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    """A TCP port free on loopback right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=60):
    """Wait until something accepts on 127.0.0.1:port; fail early if proc has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited %d before listening" % (proc.args[0], proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("nothing listens on port %d after %d s" % (port, timeout))


# ---------------------------------------------------------------- images

def jpeg_comment_offset(data):
    """Where a COM segment can go in a JPEG: after SOI and any APPn segments (JFIF, EXIF)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF and 0xE0 <= data[at + 1] <= 0xEF:
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return at


def make_images(workdir):
    """Write the two test JPEGs (from Debian's python3-skimage photos); return their records."""
    import numpy as np
    from PIL import Image

    chelsea = Image.open(os.path.join(SKIMAGE_DATA, "chelsea.png")).convert("RGB")
    astro = Image.open(os.path.join(SKIMAGE_DATA, "astronaut.png")).convert("RGB")
    # A phone photo: 12 MP, with film grain so it compresses like one (a smooth upscale would
    # be a fraction of the size); as bench/bench_img.py makes it.
    big = np.asarray(astro.resize((4000, 3000), Image.BICUBIC), np.float32)
    big += np.random.default_rng(1).normal(0, 6, big.shape).astype(np.float32)
    photo = Image.fromarray(np.clip(np.rint(big), 0, 255).astype(np.uint8))
    images = []
    for key, label, im in (("small", "500x375 JPEG", chelsea.resize((500, 375), Image.BICUBIC)),
                           ("12mp", "12 MP JPEG 4000x3000", photo)):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        path = os.path.join(workdir, key + ".jpg")
        with open(path, "wb") as f:
            f.write(data)
        images.append({"key": key, "label": label, "path": path, "bytes": len(data),
                       "com_at": jpeg_comment_offset(data)})
    return images


def tagged(data, com_at, text):
    """data with a COM segment holding text inserted at com_at."""
    body = text.encode()
    return data[:com_at] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + data[com_at:]


# ---------------------------------------------------------------- processes and memory

def proc_children(pid):
    """Direct children of pid, from /proc/PID/task/*/children."""
    kids = []
    for path in glob.glob("/proc/%d/task/*/children" % pid):
        try:
            with open(path) as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return kids


def proc_program(pid):
    """The file name of the program pid runs (from /proc/PID/exe: comm can differ, e.g. "exe"
    after a re-exec through /proc/self/exe)."""
    try:
        return os.path.basename(os.readlink("/proc/%d/exe" % pid))
    except OSError:
        return None


def proc_mem(pid):
    """RSS, PSS (smaps_rollup) and peak RSS (VmHWM) of pid, in KiB."""
    mem = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                mem[key.lower()] = int(rest.split()[0])
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                mem["hwm"] = int(line.split()[1])
    return mem


def pool_mem(parent, workers):
    """Memory of a pool: its parent process and its workers, summed, and one worker alone."""
    per = {pid: proc_mem(pid) for pid in [parent] + workers}
    one = max(workers, key=lambda p: per[p]["rss"])  # the largest worker, to be conservative
    return {
        "pids": {"parent": parent, "workers": workers},
        "per_process_kib": {str(p): m for p, m in per.items()},
        "pool_rss_kib": sum(m["rss"] for m in per.values()),
        "pool_pss_kib": sum(m["pss"] for m in per.values()),
        "worker_rss_kib": per[one]["rss"],
        "worker_pss_kib": per[one]["pss"],
        "worker_hwm_kib": per[one]["hwm"],
    }


# ---------------------------------------------------------------- the stacks

NGINX_PROXY_CONF = """\
# The reference's front: nginx buffering the upload, then proxy_pass to gunicorn (written by
# bench/service.py). Processes, body buffer and access log as in seer's conf/nginx.conf.in.
worker_processes auto;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
	access_log {dir}/access.log;
	client_body_temp_path {dir}/client_body;
	proxy_temp_path {dir}/proxy;
	fastcgi_temp_path {dir}/fastcgi;
	uwsgi_temp_path {dir}/uwsgi;
	scgi_temp_path {dir}/scgi;
	client_max_body_size 20m;
	client_body_buffer_size 1m;
	upstream gunicorn {{ server 127.0.0.1:{upstream}; }}
	server {{
		listen 127.0.0.1:{port};
		location / {{
			proxy_pass http://gunicorn;
			proxy_read_timeout 60s;
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $remote_addr;
		}}
	}}
}}
"""


class RefStack:
    """gunicorn + bench/reference/app.py, optionally behind nginx."""

    name = "reference"

    def __init__(self, workdir, pth, front, blas_core):
        self.dir = os.path.join(workdir, "ref")
        os.makedirs(self.dir)
        self.pth, self.front, self.blas_core = pth, front, blas_core
        self.gunicorn = self.nginx = None
        self.port = free_port()

    def start(self):
        upstream = self.port if self.front == "direct" else free_port()
        env = dict(os.environ, REF_WEIGHTS=self.pth, OMP_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1")
        if self.blas_core:
            # The kernels seer picked: Debian's OpenBLAS can misdetect this CPU (README.md).
            env["OPENBLAS_CORETYPE"] = self.blas_core
        self.gunicorn_log = open(os.path.join(self.dir, "gunicorn.log"), "w")
        self.gunicorn = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class", "sync",
             "--bind", "127.0.0.1:%d" % upstream, "--chdir", os.path.join(HERE, "reference"),
             "app:app"],
            stdin=subprocess.DEVNULL, stdout=self.gunicorn_log, stderr=subprocess.STDOUT,
            env=env)
        wait_port(upstream, self.gunicorn)
        if self.front == "nginx":
            user = ""
            if os.geteuid() == 0:  # nginx's workers drop to nobody: let them write temp files
                user = "user nobody nogroup;"
            for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
                os.makedirs(os.path.join(self.dir, sub))
                if os.geteuid() == 0:
                    nobody = pwd.getpwnam("nobody")
                    os.chown(os.path.join(self.dir, sub), nobody.pw_uid, nobody.pw_gid)
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_PROXY_CONF.format(dir=self.dir, user=user, port=self.port,
                                                upstream=upstream))
            self.nginx = subprocess.Popen(
                ["nginx", "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir,
                                                                          "nginx-error.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(self.port, self.nginx)
        # gunicorn listens before its workers have loaded the network: wait for both.
        deadline = time.monotonic() + 120
        while len(proc_children(self.gunicorn.pid)) < WORKERS or not self._answers():
            if time.monotonic() > deadline or self.gunicorn.poll() is not None:
                raise RuntimeError("gunicorn did not come up; see %s" % self.gunicorn_log.name)
            time.sleep(0.5)

    def _answers(self):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/" % self.port, timeout=5)
        except urllib.error.HTTPError as e:
            return e.code == 404  # Flask's answer to /: a worker is serving
        except OSError:
            return False
        return True

    def memory(self):
        return pool_mem(self.gunicorn.pid, sorted(proc_children(self.gunicorn.pid)))

    def describe(self):
        front = ("nginx proxy_pass (as many processes as CPUs) -> " if self.front == "nginx"
                 else "wrk -> ")
        return front + "gunicorn %d sync workers, Flask, torch %d thread" % (WORKERS, 1)

    def stop(self):
        for p in (self.nginx, self.gunicorn):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGQUIT if p is self.nginx else signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


class SeerStack:
    """nginx + seerd, started and stopped by the build tree's seerctl."""

    name = "seer"

    def __init__(self, workdir, builddir, model):
        self.dir = os.path.join(workdir, "seer")
        self.seerctl = os.path.join(builddir, "seerctl")
        self.model = model
        self.port = free_port()
        self.started = False

    def ctl(self, *args, check=True):
        cmd = [self.seerctl, "--run-dir", self.dir] + list(args)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError("%s exited %d: %s%s" % (" ".join(cmd), p.returncode, p.stdout,
                                                       p.stderr))
        return p

    def start(self):
        self.started = True
        self.ctl("--port", str(self.port), "--model", self.model, "--workers", str(WORKERS),
                 "--rate", str(SEER_RATE), "start")
        deadline = time.monotonic() + 120
        while not self._ready():
            if time.monotonic() > deadline:
                raise RuntimeError("seer is not ready after 120 s (logs in %s)" % self.dir)
            time.sleep(0.5)

    def _ready(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/api/ready" % self.port,
                                        timeout=5) as r:
                return json.load(r).get("workers", 0) >= WORKERS
        except (OSError, ValueError):
            return False

    def supervisor(self):
        """The seerd supervisor: from a pid file in the run directory, else from /proc."""
        for path in glob.glob(os.path.join(self.dir, "**", "*.pid"), recursive=True):
            try:
                with open(path) as f:
                    pid = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if proc_program(pid) == "seerd":
                return pid
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or proc_program(int(entry)) != "seerd":
                continue
            pid = int(entry)
            with open("/proc/%d/stat" % pid) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().decode(errors="replace")
            if proc_program(ppid) != "seerd" and self.dir in cmdline:
                return pid
        raise RuntimeError("cannot find the seerd supervisor of %s" % self.dir)

    def memory(self):
        sup = self.supervisor()
        workers = sorted(p for p in proc_children(sup) if proc_program(p) == "seerd")
        return pool_mem(sup, workers)

    def describe(self):
        return "seerctl: nginx -> FastCGI -> seerd %d workers, SQLite history" % WORKERS

    def stop(self):
        if self.started:
            self.ctl("stop", check=False)


# ---------------------------------------------------------------- requests and load

def classify_once(port, data):
    """POST data to the stack; return (HTTP status, parsed JSON answer)."""
    req = urllib.request.Request("http://127.0.0.1:%d/api/classify" % port, data=data,
                                 headers={"Content-Type": "image/jpeg"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def cpu_busy_jiffies():
    """(busy, total) jiffies of all CPUs so far, from /proc/stat (steal counts as neither)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait


def wait_idle(limit_s=30.0, window_s=0.25, below=0.1):
    """Wait until the CPUs have been under `below` busy for two windows in a row; return the
    seconds waited. When wrk stops, a stack still works through the requests queued behind it
    (gunicorn's backlog, seerd's accept queue): without this wait that work would run inside
    the next stack's measurement."""
    t0 = time.monotonic()
    quiet = 0
    b0, a0 = cpu_busy_jiffies()
    while time.monotonic() - t0 < limit_s and quiet < 2:
        time.sleep(window_s)
        b1, a1 = cpu_busy_jiffies()
        quiet = quiet + 1 if a1 > a0 and (b1 - b0) / (a1 - a0) < below else 0
        b0, a0 = b1, a1
    return time.monotonic() - t0


def run_wrk(lua, port, image, conns, seconds, tag):
    """One wrk run; return its figures (see WRK_LUA)."""
    cmd = ["wrk", "--threads", "1", "--connections", str(conns), "--duration", "%gs" % seconds,
           "--timeout", "%ds" % WRK_TIMEOUT_S, "--script", lua, "--latency",
           "http://127.0.0.1:%d/api/classify" % port, "--", image["path"], str(image["com_at"]),
           tag]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=seconds + WRK_TIMEOUT_S + 60)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("SERVICE-BENCH ")]
    if p.returncode != 0 or len(lines) != 1:
        raise RuntimeError("wrk failed (exit %d): %s %s" % (p.returncode, p.stdout, p.stderr))
    r = json.loads(lines[0].split(" ", 1)[1])
    ok = sum(n for code, n in r["statuses"].items() if 200 <= int(code) < 300)
    e = r["errors"]
    return {
        "requests": r["requests"],
        "ok": ok,
        "non_2xx": r["requests"] - ok,
        "socket_errors": e["connect"] + e["read"] + e["write"] + e["timeout"],
        "statuses": r["statuses"],
        "cached": r["cached"],
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50_ms": r["latency_us"]["p50"] / 1000.0,
        "p90_ms": r["latency_us"]["p90"] / 1000.0,
        "p99_ms": r["latency_us"]["p99"] / 1000.0,
        "mean_ms": r["latency_us"]["mean"] / 1000.0,
        "max_ms": r["latency_us"]["max"] / 1000.0,
    }


# ---------------------------------------------------------------- setup

def seer_blas_core(seer, model):
    """The OpenBLAS kernels seer runs with (it re-executes itself when OpenBLAS misdetects)."""
    p = subprocess.run([seer, "bench", "--model", model, "--iters", "1", "--json"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line).get("blas_core")
    return None


def machine_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": len(os.sched_getaffinity(0)), "kernel": platform.release()}


def versions():
    out = {}
    for pkg in ("nginx", "gunicorn", "python3-flask", "python3-torch", "python3-torchvision",
                "python3-pil", "wrk"):
        p = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                           text=True)
        out[pkg] = p.stdout.strip() if p.returncode == 0 else None
    return out


# ---------------------------------------------------------------- report

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summarise(runs):
    """Per (image, C): medians over rounds for each stack and medians of per-round ratios."""
    rows = []
    for key in sorted({(r["image"], r["conns"]) for r in runs},
                      key=lambda k: (k[0] != "small", k[1])):
        rounds = {}
        for r in runs:
            if (r["image"], r["conns"]) == key and not r["warmup"]:
                rounds.setdefault(r["round"], {})[r["stack"]] = r
        row = {"image": key[0], "conns": key[1], "rounds": len(rounds)}
        for stack in ("seer", "reference"):
            rs = [rd[stack] for rd in rounds.values() if stack in rd]
            if rs:
                row[stack] = {
                    "rps": med([r["rps"] for r in rs]),
                    "p50_ms": med([r["p50_ms"] for r in rs]),
                    "p99_ms": med([r["p99_ms"] for r in rs]),
                    "requests": sum(r["requests"] for r in rs),
                    "non_2xx": sum(r["non_2xx"] for r in rs),
                    "socket_errors": sum(r["socket_errors"] for r in rs),
                    "cached": sum(r["cached"] for r in rs),
                }
        pairs = [rd for rd in rounds.values() if "seer" in rd and "reference" in rd]
        if pairs:
            row["rps_ratio"] = med([rd["seer"]["rps"] / rd["reference"]["rps"] for rd in pairs])
            row["p99_ratio"] = med([rd["seer"]["p99_ms"] / rd["reference"]["p99_ms"]
                                    for rd in pairs])
        rows.append(row)
    return rows


def render(res):
    labels = {im["key"]: "%s (%d KiB)" % (im["label"], im["bytes"] // 1024)
              for im in res["images"]}
    out = []
    m = res["machine"]
    out.append("Machine: %s, %d CPUs available, Linux %s." % (m["cpu"], m["cpus"], m["kernel"]))
    for st in res["stacks"].values():
        out.append("- %s: %s" % (st["name"], st["setup"]))
    out.append("- load: wrk, 1 thread, C keep-alive connections, %g s per run after a %g s "
               "warm-up per stack, %d round(s) in ABBA order, each started once the CPUs are idle "
               "(the previous run's queue drained); every body unique (a JPEG comment "
               "with a per-request tag), so seer's result cache never answers."
               % (res["args"]["duration"], res["args"]["warmup"], res["args"]["rounds"]))
    out.append("- failed: non-2xx answers and socket errors (including wrk's %d s timeout)."
               % WRK_TIMEOUT_S)
    out.append("")
    both = all(("seer" in r and "reference" in r) for r in res["rows"])
    head = ["image", "C"]
    for st in ("seer", "reference"):
        if any(st in r for r in res["rows"]):
            head += ["%s req/s" % st, "%s p50 ms" % st, "%s p99 ms" % st, "%s failed / all" % st]
    if both:
        head += ["seer/ref req/s", "seer/ref p99"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|---|" + "---:|" * (len(head) - 1))
    for r in res["rows"]:
        cells = [labels[r["image"]], str(r["conns"])]
        for st in ("seer", "reference"):
            if st in r:
                s = r[st]
                bad = s["non_2xx"] + s["socket_errors"]
                cells += ["%.1f" % s["rps"], "%.0f" % s["p50_ms"], "%.0f" % s["p99_ms"],
                          "%d / %d" % (bad, s["requests"])]
        if both:
            cells += ["%.2f" % r["rps_ratio"], "%.2f" % r["p99_ratio"]]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("Memory after the load (MiB; pool = parent + %d workers, nginx not counted):"
               % WORKERS)
    out.append("")
    out.append("| stack | pool RSS | pool PSS | one worker RSS | one worker PSS | "
               "worker peak RSS | pool PSS / worker RSS |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for st in res["stacks"].values():
        mm = st.get("memory_after")
        if not mm:
            continue
        out.append("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f |" % (
            st["name"], mm["pool_rss_kib"] / 1024, mm["pool_pss_kib"] / 1024,
            mm["worker_rss_kib"] / 1024, mm["worker_pss_kib"] / 1024,
            mm["worker_hwm_kib"] / 1024, mm["pool_pss_kib"] / mm["worker_rss_kib"]))
    out.append("")
    for im in res["images"]:
        tops = ["%s %s" % (name, st["top5"].get(im["key"]))
                for name, st in res["stacks"].items()]
        out.append("Top-5 on the %s: %s." % (im["label"], "; ".join(tops)))
    out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- main

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--builddir", default=os.path.join(REPO, "build"),
                    help="build tree with src/seer and seerctl (default: build/ of this tree)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: C=4 only, 1 round of 3 s, 1 s warm-up")
    ap.add_argument("--conns", default="4,16", help="concurrent connections, comma-separated")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per run (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds per stack (default 3)")
    ap.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds (default 3)")
    ap.add_argument("--ref-front", choices=("nginx", "direct"), default="nginx",
                    help="the reference behind nginx proxy_pass (default) or gunicorn bound "
                         "directly")
    ap.add_argument("--stacks", default="seer,ref", help="which stacks to run (seer,ref)")
    ap.add_argument("--pth", help="synthetic state_dict to use (default: make one)")
    ap.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (logs, configs)")
    args = ap.parse_args(argv)
    if args.quick:
        args.conns, args.duration, args.rounds, args.warmup = "4", 3.0, 1, 1.0
    conns = [int(c) for c in args.conns.split(",")]
    stacks_wanted = set(args.stacks.split(","))
    if not stacks_wanted <= {"seer", "ref"} or not stacks_wanted:
        sys.exit("service-bench: --stacks takes seer and/or ref")

    builddir = os.path.abspath(args.builddir)
    seer = os.path.join(builddir, "src", "seer")
    need = [("wrk", shutil.which("wrk")), (seer, os.access(seer, os.X_OK))]
    if "ref" in stacks_wanted:
        need.append(("nginx", shutil.which("nginx") or args.ref_front == "direct"))
        need.append(("gunicorn", shutil.which("gunicorn")))
    if "seer" in stacks_wanted:
        need.append(("seerctl", os.access(os.path.join(builddir, "seerctl"), os.X_OK)))
    missing = [n for n, ok in need if not ok]
    if missing:
        sys.exit("service-bench: missing %s (scripts/install-deps.sh installs the packages; "
                 "build seer and pass --builddir)" % ", ".join(missing))

    started = time.monotonic()
    load0 = os.getloadavg()[0]
    if load0 > 0.5:
        log("warning: load average %.2f before starting: other work on this machine will skew "
            "the numbers" % load0)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        workdir = os.path.abspath(args.keep)
    else:
        workdir = tempfile.mkdtemp(prefix="seer-service-bench-")
    os.chmod(workdir, 0o755)  # nginx's workers (nobody) read the reference's temp dirs
    stacks = []
    try:
        pth = args.pth
        if not pth:
            pth = os.path.join(workdir, "resnet18-synthetic.pth")
            log("making synthetic weights")
            subprocess.run([PYTHON, os.path.join(REPO, "weights", "make_synthetic.py"), pth],
                           check=True)
        pth = os.path.abspath(pth)
        model = os.path.join(workdir, "resnet18-synthetic.seer")
        subprocess.run([seer, "convert", pth, model], check=True, stdin=subprocess.DEVNULL)
        images = make_images(workdir)
        lua = os.path.join(workdir, "post.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA)

        if "seer" in stacks_wanted:
            stacks.append(SeerStack(workdir, builddir, model))
        if "ref" in stacks_wanted:
            stacks.append(RefStack(workdir, pth, args.ref_front, seer_blas_core(seer, model)))
        res = {"args": vars(args), "machine": machine_info(), "versions": versions(),
               "images": images, "stacks": {}, "runs": []}
        for st in stacks:
            log("starting %s" % st.name)
            st.start()
            res["stacks"][st.name] = {"name": st.name, "setup": st.describe(), "port": st.port,
                                      "top5": {}}

        # One request per image and stack: both must answer, and with the same classes.
        for im in images:
            with open(im["path"], "rb") as f:
                data = f.read()
            for st in stacks:
                status, body = classify_once(st.port, tagged(data, im["com_at"], "check"))
                if status != 200 or not isinstance(body, dict) or "topk" not in body:
                    raise RuntimeError("%s answered %d to the %s: %r"
                                       % (st.name, status, im["label"], body))
                res["stacks"][st.name]["top5"][im["key"]] = [c["index"] for c in body["topk"]]
        for st in stacks:
            res["stacks"][st.name]["memory_idle"] = st.memory()

        nonce = "%x" % int(time.time() * 1000)
        for im in images:
            for c in conns:
                plan = [(-1, s) for s in stacks]  # warm-up
                for rnd in range(args.rounds):
                    plan += [(rnd, s) for s in (stacks if rnd % 2 == 0 else stacks[::-1])]
                for rnd, st in plan:
                    warm = rnd < 0
                    secs = args.warmup if warm else args.duration
                    settle = wait_idle()
                    r = run_wrk(lua, st.port, im, c, secs,
                                "%s/%s/%s/%d/%d" % (nonce, st.name, im["key"], c, rnd))
                    log("%-9s %-4s C=%-2d %s: %6.1f req/s  p50 %6.0f ms  p99 %6.0f ms  "
                        "non-2xx %d  socket errors %d  (idle after %.1f s)%s"
                        % (st.name, im["key"], c, "warm-up" if warm else "round %d" % rnd,
                           r["rps"], r["p50_ms"], r["p99_ms"], r["non_2xx"], r["socket_errors"],
                           settle, "  CACHED %d" % r["cached"] if r["cached"] else ""))
                    r.update(stack=st.name, image=im["key"], conns=c, round=rnd, warmup=warm,
                             seconds=secs, settle_s=settle)
                    res["runs"].append(r)
        for st in stacks:
            res["stacks"][st.name]["memory_after"] = st.memory()
    finally:
        for st in stacks:
            st.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    res["rows"] = summarise(res["runs"])
    res["load_average"] = [load0, os.getloadavg()[0]]
    res["seconds"] = time.monotonic() - started
    report = render(res)
    report += "Load average (1 min) before / after: %.2f / %.2f; %.0f s in all.\n" % (
        load0, res["load_average"][1], res["seconds"])
    if load0 > 0.5:
        report += ("\n**Other work was running on this machine: these numbers are not fit for "
                   "BENCHMARKS.md.**\n")
    bad = [r for r in res["runs"] if r["non_2xx"] or r["socket_errors"] or r["cached"]]
    if bad:
        report += ("\n**%d run(s) had non-2xx answers, socket errors or cache hits** (see the "
                   "JSON): their figures do not measure classification alone.\n" % len(bad))
    print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    log("done in %.0f s" % res["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
