#!/usr/bin/python3
"""The service end to end: the real nginx and seerd, started by seerctl on a
loopback port, with SQLite underneath. TAP on stdout.

Usage: service.py BUILDDIR SRCDIR GROUP
GROUP is "api" (round trips, cache, history, bad input, auth, storage
failures), "pool" (rate limit, kill -9 under load, SIGHUP under load, drain,
timeouts, crash loop) or "load" (a wrk run of several thousand requests).
"""
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import numpy as np
from PIL import Image

BUILD, SRC, GROUP = sys.argv[1], sys.argv[2], sys.argv[3]
SEERCTL = os.path.join(BUILD, "seerctl")
SEER = os.path.join(BUILD, "src", "seer")
PASSWORD = "test-" + os.urandom(6).hex()
SKDATA = "/usr/lib/python3/dist-packages/skimage/data"

_n = 0
_failed = 0


def ok(cond, name, diag=None):
    global _n, _failed
    _n += 1
    if not cond:
        _failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (_n, name), flush=True)
    if not cond and diag is not None:
        for line in str(diag).splitlines()[:30]:
            print("#   " + line, flush=True)
    return cond


def skip(name, why):
    global _n
    _n += 1
    print("ok %d - %s # SKIP %s" % (_n, name, why), flush=True)


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


def until(cond, timeout=10.0, step=0.1):
    """Call cond() every step seconds until it returns something true or timeout passes;
    returns its last result. For states the service reaches on its own a moment later."""
    end = time.time() + timeout
    while True:
        r = cond()
        if r or time.time() >= end:
            return r
        time.sleep(step)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- images

def jpeg_bytes(arr, quality=90, comment=None):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    if comment is not None:  # a COM segment right after SOI: new bytes, same pixels
        seg = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
        data = data[:2] + seg + data[2:]
    return data


def png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def sk(name):
    return np.asarray(Image.open(os.path.join(SKDATA, name)).convert("RGB"))


def huge_png_header(w, h):
    """A PNG whose IHDR claims w x h (the data is a tiny valid zlib stream)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")


def multipart(files, boundary="----seertest7MA4YWxkTrZu0gW"):
    """files: list of (name, filename, content_type, bytes)."""
    out = io.BytesIO()
    for name, fn, ct, data in files:
        out.write(b"--" + boundary.encode() + b"\r\n")
        disp = 'form-data; name="%s"' % name
        if fn is not None:
            disp += '; filename="%s"' % fn
        out.write(("Content-Disposition: %s\r\n" % disp).encode())
        if ct:
            out.write(("Content-Type: %s\r\n" % ct).encode())
        out.write(b"\r\n" + data + b"\r\n")
    out.write(b"--" + boundary.encode() + b"--\r\n")
    return out.getvalue(), "multipart/form-data; boundary=" + boundary


# ------------------------------------------------ a minimal FastCGI client

def fcgi_record(rtype, content, req_id=1):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBx", 1, rtype, req_id, len(content), pad) + content + b"\0" * pad


def fcgi_params(params):
    out = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        for n in (len(k), len(v)):
            out += struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
        out += k + v
    return out


def fcgi_send(sock_path, method, uri, body=b"", ctype="image/jpeg", extra=None):
    """Connect straight to seerd's socket and send one whole request; returns the socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    params = {"REQUEST_METHOD": method, "DOCUMENT_URI": uri, "REQUEST_URI": uri, "QUERY_STRING": "",
              "CONTENT_TYPE": ctype, "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1"}
    params.update(extra or {})
    data = fcgi_record(1, struct.pack(">HB5x", 1, 0))  # BEGIN_REQUEST, responder, no keep-alive
    data += fcgi_record(4, fcgi_params(params)) + fcgi_record(4, b"")
    for i in range(0, len(body), 65535):
        data += fcgi_record(5, body[i:i + 65535])
    data += fcgi_record(5, b"")
    s.sendall(data)
    return s


def fcgi_status(s, timeout=60):
    """Read the answer to fcgi_send(); returns the HTTP status (0 if the connection just closed)."""
    return fcgi_answer(s, timeout)[0]


def fcgi_answer(s, timeout=60):
    """Read the answer to fcgi_send(): (HTTP status or 0, body bytes)."""
    s.settimeout(timeout)
    buf, out = b"", b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            _, rtype, _, clen, pad = struct.unpack(">BBHHB", buf[:7])
            if len(buf) < 8 + clen + pad:
                break
            if rtype == 6:
                out += buf[8:8 + clen]
            buf = buf[8 + clen + pad:]
    s.close()
    m = re.match(rb"Status: (\d+)", out)
    return (int(m.group(1)) if m else 0), out.split(b"\r\n\r\n", 1)[-1]


# ----------------------------------------------------------------- stack

class Stack:
    """One seerctl-managed nginx + seerd on a free port in a temp run dir."""

    def __init__(self, tmp, name, model, workers=2, rate="1000r/s", burst=1000, conf=None, run_dir=None):
        self.run = run_dir or os.path.join(tmp, name)
        self.port = free_port()
        self.model = model
        self.args = ["--run-dir", self.run, "--port", str(self.port), "--model", model,
                     "--workers", str(workers), "--rate", rate, "--burst", str(burst)]
        if conf:
            path = os.path.join(tmp, name + ".conf")
            with open(os.path.join(SRC, "conf", "seerd.conf")) as f:
                text = f.read()
            for k, v in conf.items():
                text, n = re.subn(r"(?m)^%s\s*=.*$" % k, "%s = %s" % (k, v), text)
                if n == 0:
                    text += "\n%s = %s\n" % (k, v)
            with open(path, "w") as f:
                f.write(text)
            self.args += ["--config", path]
        self.env = dict(os.environ, SEER_ADMIN_PASSWORD=PASSWORD)

    def ctl(self, cmd, timeout=120):
        return subprocess.run([SEERCTL, cmd] + self.args, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def start(self):
        r = self.ctl("start")
        if r.returncode != 0:
            raise RuntimeError("seerctl start failed:\n" + r.stdout + r.stderr)
        return r

    def stop(self):
        return self.ctl("stop")

    def setting(self, key):
        with open(os.path.join(self.run, "seerd.conf")) as f:
            for line in f:
                m = re.match(r"\s*%s\s*=\s*(.*?)\s*$" % key, line.split("#")[0])
                if m:
                    return m.group(1)
        return None

    def db_path(self):
        return self.setting("db")

    def supervisor(self):
        with open(self.setting("pid_file")) as f:
            return int(f.read().strip())

    def workers(self):
        sup = self.supervisor()
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == sup:
                        out.append(int(d))
                except OSError:
                    pass
        return sorted(out)

    @staticmethod
    def wait_waiting(pid, timeout=5):
        """Wait until worker pid sleeps in its poll() for new connections,
        i.e. has nothing in hand (a worker killed while serving is not
        counted towards a crash loop)."""
        t = time.time() + timeout
        while time.time() < t:
            try:
                with open("/proc/%d/wchan" % pid) as f:
                    if "poll" in f.read():
                        return True
            except OSError:
                return False
            time.sleep(0.02)
        return False

    def request(self, method, path, body=None, headers=None, auth=False, timeout=60):
        h = dict(headers or {})
        if auth:
            import base64
            h["Authorization"] = "Basic " + base64.b64encode(("admin:" + PASSWORD).encode()).decode()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None, auth=False):
        st, h, data = self.request(method, path, body, headers, auth)
        try:
            return st, json.loads(data)
        except ValueError:
            return st, {"_raw": data[:300]}

    def wait_ready(self, timeout=30):
        t = time.time() + timeout
        while time.time() < t:
            try:
                st, _ = self.json("GET", "/api/ready")
                if st == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def rows(self, where="1=1"):
        con = sqlite3.connect("file:%s?mode=ro" % self.db_path(), uri=True, timeout=10)
        try:
            return con.execute("SELECT id, status FROM classification WHERE %s" % where).fetchall()
        finally:
            con.close()

    def integrity(self):
        con = sqlite3.connect(self.db_path(), timeout=10)
        try:
            return con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()

    def logs(self):
        out = []
        for root, _, files in os.walk(self.run):
            for f in files:
                if f.endswith(".log") or f.endswith(".stderr"):
                    try:
                        with open(os.path.join(root, f), errors="replace") as fh:
                            out.append("== %s\n%s" % (f, "".join(fh.readlines()[-15:])))
                    except OSError:
                        pass
        return "\n".join(out)


def same_topk(a, b, tol=1e-5):
    """Same classes in the same order, probabilities equal to float32 summation noise
    (a batch runs other GEMM shapes than a single image, so the last digits move)."""
    return len(a) == len(b) and all(x["index"] == y["index"] and abs(x["prob"] - y["prob"]) <= tol
                                    for x, y in zip(a, b))


def classify(stack, data, ctype="image/jpeg", topk=None, name=None):
    h = {"Content-Type": ctype}
    if name:
        h["X-File-Name"] = name
    return stack.json("POST", "/api/classify" + ("?topk=%d" % topk if topk else ""), data, h)


# -------------------------------------------------------- wrk load runs

WRK_LUA = r"""
-- POST a JPEG whose COM segment carries a counter: every request different
-- bytes (unless variants > 0, then it cycles), so the network really runs.
-- statuses and ids are globals: done() reads them with thread:get().
local prefix, suffix
local counter = 0
statuses = {}
ids = {}
local threads = {}
local variants = tonumber(os.getenv("SEER_VARIANTS") or "0")

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = io.open(os.getenv("SEER_IMAGE"), "rb")
  local img = f:read("*a")
  f:close()
  prefix = img:sub(1, 2) .. "\255\254\0\19"  -- COM, length 2 + the 17-byte tag
  suffix = img:sub(3)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "image/jpeg"
end

function request()
  counter = counter + 1
  local n = counter
  if variants > 0 then n = counter % variants end
  local tag = string.format("t%03d-%012d", tid, n)
  if variants > 0 then tag = string.format("v%016d", n) end
  return wrk.format(nil, "/api/classify?topk=1", nil, prefix .. tag .. suffix)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    local id = body:match('"id": (%d+)')
    if id then table.insert(ids, id) end
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("SEER_OUT"), "w")
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do out:write("status ", k, " ", v, "\n") end
    local i = t:get("ids")
    for _, id in ipairs(i) do out:write("id ", id, "\n") end
  end
  out:write("errors ", summary.errors.connect + summary.errors.read + summary.errors.write +
            summary.errors.timeout, "\n")
  out:write("requests ", summary.requests, "\n")
  out:write("p50 ", latency:percentile(50), "\n")
  out:write("p99 ", latency:percentile(99), "\n")
  out:close()
end
"""


def wrk(stack, tmp, image, seconds, conns, variants=0, threads=2):
    lua = os.path.join(tmp, "load.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    out = os.path.join(tmp, "wrk-%d.out" % time.time_ns())
    env = dict(os.environ, SEER_IMAGE=image, SEER_OUT=out, SEER_VARIANTS=str(variants))
    p = subprocess.Popen(["wrk", "-t", str(threads), "-c", str(conns), "-d", "%ds" % seconds,
                          "--timeout", "30s", "-s", lua, "http://127.0.0.1:%d" % stack.port],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p, out


def wrk_result(p, out):
    text = p.communicate(timeout=600)[0]
    res = {"statuses": {}, "ids": [], "text": text}
    if not os.path.exists(out):
        return res
    with open(out) as f:
        for line in f:
            parts = line.split()
            if parts[0] == "status":
                res["statuses"][int(parts[1])] = res["statuses"].get(int(parts[1]), 0) + int(parts[2])
            elif parts[0] == "id":
                res["ids"].append(int(parts[1]))
            else:
                res[parts[0]] = float(parts[1])
    return res


def load_checks(stack, res, what, min_requests):
    n200 = res["statuses"].get(200, 0)
    five = sum(v for k, v in res["statuses"].items() if k >= 500)
    ok(res.get("requests", 0) >= min_requests and n200 > 0,
       "%s: %d requests, %d answered 200" % (what, res.get("requests", 0), n200), res["text"])
    ok(five == 0 and res.get("errors", 1) == 0,
       "%s: no 5xx and no socket errors (statuses %s, errors %s)" % (what, res["statuses"], res.get("errors")),
       res["text"] + "\n" + stack.logs())
    ids = set(res["ids"])
    rows = {r[0] for r in stack.rows("status = 200")}
    ok(len(ids) == n200 and ids <= rows,
       "%s: every 200 answer has its own history row (%d ids, %d missing)" % (what, len(ids), len(ids - rows)))
    ok(stack.integrity() == "ok", "%s: PRAGMA integrity_check is ok" % what)
    return n200


# ----------------------------------------------------------------- groups

def group_api(tmp, model):
    st = Stack(tmp, "api", model, conf={"db_busy_timeout": "300"})
    st.start()
    try:
        api_cases(tmp, st)
    finally:
        r = st.stop()
        ok(r.returncode == 0, "seerctl stop", r.stdout + r.stderr)


def group_retention(tmp, model):
    """retention_rows with one worker: the pass after every 100th row keeps the newest rows."""
    st = Stack(tmp, "retention", model, workers=1, conf={"retention_rows": "30"})
    st.start()
    try:
        cat = jpeg_bytes(sk("chelsea.png"))
        ids = []
        for i in range(101):  # the same bytes: cache hits, each still a row
            s, b = classify(st, cat)
            if s == 200:
                ids.append(b["id"])
        ok(len(ids) == 101, "101 classifications answered (%d)" % len(ids))
        rows = []
        deadline = time.time() + 10
        while time.time() < deadline:  # the pass runs after the 100th answer went out
            rows = sorted(r[0] for r in st.rows())
            if len(rows) <= 31:
                break
            time.sleep(0.1)
        # the 100th row triggered the pass; the 101st came after it
        ok(rows == sorted(ids[-31:]),
           "retention_rows = 30: after the 100th row the oldest went, the newest stayed "
           "(%d rows, ids %s..%s)" % (len(rows), rows[:1], rows[-1:]), st.logs())
        ok("retention: removed 70 old rows" in st.logs(),
           "the worker logged the pass", st.logs())
        ok(st.integrity() == "ok", "retention: integrity_check ok")
    finally:
        st.stop()


def api_cases(tmp, st):
    cat, cat_path = cat_photo(tmp)
    coffee = png_bytes(sk("coffee.png"))
    rocket = jpeg_bytes(sk("rocket.jpg"), quality=85)

    s, b = st.json("GET", "/api/health")
    ok(s == 200 and b.get("status") == "ok", "GET /api/health -> 200", b)
    # seerctl start returns once one worker answers; the other may still be setting up
    until(lambda: st.json("GET", "/api/ready")[1].get("workers") == 2)
    s, b = st.json("GET", "/api/ready")
    ok(s == 200 and b.get("ready") is True and b.get("workers") == 2,
       "GET /api/ready -> 200, 2 workers (within 10 s of the start)", b)

    # --- a raw upload, checked against the command line on the same model
    s, r1 = classify(st, cat, name="my%20cat.jpg")
    ok(s == 200 and set(r1) >= {"id", "model", "topk", "width", "height", "sha256", "cached", "timings_ms"},
       "raw JPEG upload -> 200 with every field", r1)
    ok(r1.get("width") == 451 and r1.get("height") == 300 and r1.get("file") == "my cat.jpg" and
       r1.get("sha256") == hashlib.sha256(cat).hexdigest() and r1.get("cached") is False and
       r1.get("bytes") == len(cat),
       "size, decoded file name, SHA-256 of the bytes, not cached", r1)
    probs = [t["prob"] for t in r1.get("topk", [])]
    ok(len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001,
       "top 5, best first, probabilities", r1.get("topk"))
    t = r1.get("timings_ms", {})
    ok(all(t.get(k, -1) >= 0 for k in ("decode", "preprocess", "inference", "total")) and
       t["total"] >= t["inference"] > 0, "timings present and consistent", t)
    cli = subprocess.run([SEER, "classify", "--model", st.model, "--json", "--topk", "5", cat_path],
                         capture_output=True, text=True)
    try:
        ref = json.loads(cli.stdout.splitlines()[0])["topk"]
        same = [x["index"] for x in ref] == [x["index"] for x in r1["topk"]] and \
            max(abs(a["prob"] - b["prob"]) for a, b in zip(ref, r1["topk"])) < 1e-6
    except (ValueError, IndexError, KeyError):
        same = False
    ok(same, "the service answers what `seer classify` answers for the same file", cli.stdout + cli.stderr)

    # --- the cache
    s, r2 = classify(st, cat)
    ok(s == 200 and r2.get("cached") is True and r2.get("topk") == r1.get("topk") and r2["id"] != r1["id"],
       "the same bytes again: cached, same top-K, a new history row", r2)
    s, r3 = classify(st, cat, topk=3)
    ok(s == 200 and r3.get("topk") == r1["topk"][:3], "?topk=3 from the cache: the first 3", r3)
    s, r4 = classify(st, jpeg_bytes(sk("chelsea.png"), comment=b"other bytes"), topk=20)
    ok(s == 200 and r4.get("cached") is False and len(r4.get("topk", [])) == 20 and
       [x["index"] for x in r4["topk"][:5]] == [x["index"] for x in r1["topk"]],
       "different bytes, same pixels: not cached, ?topk=20 gives 20, same best 5", r4)
    for bad in ("0", "21", "abc", "", "5x"):
        s, b = st.json("POST", "/api/classify?topk=" + bad, cat, {"Content-Type": "image/jpeg"})
        ok(s == 400 and b.get("error", {}).get("code") == "bad_parameter", "?topk=%s -> 400 bad_parameter" % bad, b)

    # --- multipart, several images in one batch
    body, ct = multipart([("file", "cat.jpg", "image/jpeg", cat), ("note", None, None, b"hello"),
                          ("file", "coffee.png", "image/png", coffee), ("file", "rocket.jpg", "image/jpeg", rocket)])
    s, m = st.json("POST", "/api/classify", body, {"Content-Type": ct})
    res = m.get("results", [])
    ok(s == 200 and len(res) == 3 and [x.get("file") for x in res] == ["cat.jpg", "coffee.png", "rocket.jpg"],
       "multipart with 3 file parts (and a field) -> 3 results in order", m)
    singles = []
    for data, ctype in ((coffee, "image/png"), (rocket, "image/jpeg")):
        # compare with each image alone (new bytes so the cache is not used)
        s1, one = classify(st, data + b"" if ctype == "image/png" else jpeg_bytes(sk("rocket.jpg"), 85), ctype)
        singles.append(one)
    ok(len(res) == 3 and all(same_topk(a.get("topk", []), b.get("topk", [])) for a, b in zip(res[1:], singles)),
       "a batch of 3 gives each image the answer it gets alone", [res[1:], singles])
    ok(len({x.get("id") for x in res}) == 3, "each image of the batch has its own row")

    gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    body, ct = multipart([("file", "a.jpg", "image/jpeg", cat), ("file", "b.gif", "image/gif", gif)])
    s, m = st.json("POST", "/api/classify", body, {"Content-Type": ct})
    res = m.get("results", [])
    ok(s == 200 and len(res) == 2 and res[0].get("id") and res[1].get("status") == 415 and
       res[1].get("error", {}).get("code") == "unsupported_format" and "GIF" in res[1]["error"]["message"],
       "a GIF among JPEGs: 200, the GIF's entry says 415 unsupported_format", m)

    # --- bad input, each with its status, and the service still answers
    trunc = cat[: len(cat) // 2]
    png_bad_crc = bytearray(coffee)
    png_bad_crc[40] ^= 0xFF
    cases = [
        ("empty body", b"", "image/jpeg", 400, "no_image"),
        ("a GIF", gif, "image/gif", 415, "unsupported_format"),
        ("a text file", b"hello, this is not a picture\n" * 20, "text/plain", 415, "unsupported_format"),
        ("a WebP", b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\0" * 30, "image/webp", 415, "unsupported_format"),
        ("a truncated JPEG", trunc, "image/jpeg", 422, "undecodable"),
        ("a PNG with a bad CRC", bytes(png_bad_crc), "image/png", 422, "undecodable"),
        ("a PNG claiming 50000x50000", huge_png_header(50000, 50000), "image/png", 422, "too_many_pixels"),
        ("JPEG magic then garbage", b"\xff\xd8\xff\xe0" + os.urandom(2000), "image/jpeg", 422, "undecodable"),
    ]
    for name, data, ctype, want, code in cases:
        s, b = classify(st, data, ctype)
        e = b.get("error", {})
        ok(s == want and e.get("code") == code and len(e.get("message", "")) > 10,
           "%s -> %d %s (%s)" % (name, want, code, e.get("message")), b)
    s, b = st.json("POST", "/api/classify", b"x" * (21 << 20), {"Content-Type": "image/jpeg"})
    ok(s == 413 and b.get("error", {}).get("code") == "too_large", "a 21 MiB body -> 413 too_large (JSON)", b)
    body, ct = multipart([("file", "%d.jpg" % i, "image/jpeg", cat) for i in range(9)])
    s, b = st.json("POST", "/api/classify", body, {"Content-Type": ct})
    ok(s == 413 and b.get("error", {}).get("code") == "too_large", "9 images in one request -> 413", b)
    s, b = st.json("POST", "/api/classify", b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
                   {"Content-Type": "multipart/form-data; boundary=x"})
    ok(s == 400 and b.get("error", {}).get("code") == "bad_multipart", "a truncated multipart body -> 400", b)
    body, ct = multipart([("other", "a.jpg", "image/jpeg", cat)])
    s, b = st.json("POST", "/api/classify", body, {"Content-Type": ct})
    ok(s == 400 and b.get("error", {}).get("code") == "no_image", "multipart without a file part -> 400", b)
    s, h, data = st.request("GET", "/api/classify")
    ok(s == 405 and "POST" in h.get("allow", ""), "GET /api/classify -> 405 with Allow: POST", data)
    s, b = st.json("GET", "/api/nothing-here")
    ok(s == 404 and b.get("error", {}).get("code") == "not_found", "unknown API path -> 404 JSON", b)
    s, b = classify(st, rocket)
    ok(s == 200 and b.get("topk"), "after all that, a good image is classified normally", b)

    # --- admin: history, thumbnails, stats, metrics
    for path in ("/api/history", "/api/history/1", "/api/history/1/thumb", "/api/stats", "/metrics"):
        s, h, _ = st.request("GET", path)
        ok(s == 401, "%s without credentials -> 401" % path)
    s, h, _ = st.request("GET", "/api/history", headers={"Authorization": "Basic YWRtaW46d3Jvbmc="})
    ok(s == 401, "/api/history with a wrong password -> 401")
    all_rows = st.rows()
    seen, before, pages = [], None, 0
    while True:
        q = "/api/history?limit=3" + ("&before_id=%d" % before if before else "")
        s, page = st.json("GET", q, auth=True)
        if s != 200:
            break
        seen += [it["id"] for it in page["items"]]
        pages += 1
        before = page.get("next_before_id")
        if not before or pages > 100:
            break
    ok(s == 200 and seen == sorted((r[0] for r in all_rows), reverse=True) and len(set(seen)) == len(seen),
       "history paged 3 at a time: every row once, newest first (%d rows, %d pages)" % (len(seen), pages),
       [seen, all_rows])
    label = r1["topk"][0]["label"]
    s, page = st.json("GET", "/api/history?limit=200&label=" + label.replace(" ", "%20"), auth=True)
    con = sqlite3.connect(st.db_path())
    want = con.execute("SELECT count(*) FROM classification WHERE top1_label = ?", (label,)).fetchone()[0]
    con.close()
    ok(s == 200 and len(page["items"]) == want > 0 and all(it["top1"]["label"] == label for it in page["items"]),
       "label filter: the %d rows whose top-1 is %r" % (want, label), page)
    s, row = st.json("GET", "/api/history/%d" % r1["id"], auth=True)
    ok(s == 200 and row.get("file") == "my cat.jpg" and row.get("sha256") == r1["sha256"] and
       row.get("topk", [])[:5] == r1["topk"] and row.get("client") == "127.0.0.1" and row.get("status") == 200,
       "one history row with its full top-K, client and file name", row)
    s, h, data = st.request("GET", "/api/history/%d/thumb" % r1["id"], auth=True)
    try:
        im = Image.open(io.BytesIO(data))
        good = im.format == "JPEG" and im.size == (112, 112)
    except Exception:
        good = False
    ok(s == 200 and h.get("content-type") == "image/jpeg" and good, "thumbnail: a 112x112 JPEG")
    s, b = st.json("GET", "/api/history/999999", auth=True)
    ok(s == 404, "a missing history id -> 404", b)
    s, stats = st.json("GET", "/api/stats?hours=24", auth=True)
    ok(s == 200 and stats.get("total") == len(st.rows()) and len(stats.get("hours", [])) == 24 and
       sum(h["count"] for h in stats["hours"]) == stats["total"],
       "stats: totals match the database, 24 hourly buckets", stats)
    s, h, data = st.request("GET", "/metrics", auth=True)
    text = data.decode()
    m200 = re.search(r'seer_requests_total\{status="200"\} (\d+)', text)
    ok(s == 200 and m200 and int(m200.group(1)) > 5 and "seer_request_duration_seconds_bucket" in text and
       'seer_workers{state="idle"}' in text and "seer_cache_hits_total" in text,
       "metrics: Prometheus text with statuses, histogram, workers, cache hits", text[:800])

    # --- storage failure: the database locked past the busy timeout
    con = sqlite3.connect(st.db_path(), timeout=1, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    n_before = len(st.rows())
    s, b = classify(st, jpeg_bytes(sk("chelsea.png"), comment=b"locked"))
    con.execute("ROLLBACK")
    con.close()
    ok(s == 503 and b.get("error", {}).get("code") == "storage_failed" and b.get("results", [{}])[0].get("topk"),
       "history locked past the busy timeout -> 503 storage_failed, the result still given", b)
    ok(len(st.rows()) == n_before, "nothing half-written")
    s, b = classify(st, jpeg_bytes(sk("chelsea.png"), comment=b"after lock"))
    ok(s == 200 and b.get("id"), "once the lock is gone, writes succeed again", b)
    ok(st.integrity() == "ok", "integrity_check ok after the storage failure")


def group_full_disk(tmp, model):
    """The run directory on a small tmpfs, filled up."""
    mnt = os.path.join(tmp, "small")
    os.makedirs(mnt)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt],
                                           capture_output=True).returncode != 0:
        skip("disk full: 503 storage_failed", "cannot mount a tmpfs here (needs root)")
        return
    st = None
    try:
        st = Stack(tmp, "full", model, run_dir=os.path.join(mnt, "run"))
        st.start()
        s, b = classify(st, jpeg_bytes(sk("coffee.png")))
        ok(s == 200, "on the small filesystem: a first classification", b)
        filler = os.path.join(mnt, "filler")
        subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=64k"], capture_output=True)
        fails = 0
        for i in range(5):
            s, b = classify(st, jpeg_bytes(sk("coffee.png"), comment=b"full %d" % i))
            fails += s == 503 and b.get("error", {}).get("code") == "storage_failed" and \
                bool(b.get("results", [{}])[0].get("topk"))
        ok(fails >= 1, "disk full: 503 storage_failed with the result (%d of 5)" % fails, st.logs())
        os.unlink(filler)
        s, b = classify(st, jpeg_bytes(sk("coffee.png"), comment=b"space again"))
        ok(s == 200 and b.get("id"), "space back: classifications are recorded again", b)
        ok(st.integrity() == "ok", "disk full: integrity_check ok afterwards")
    finally:
        if st is not None:
            st.stop()
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def cat_photo(tmp):
    """skimage's cat as a JPEG: its bytes, and a file of them for wrk."""
    cat = jpeg_bytes(sk("chelsea.png"))
    img = os.path.join(tmp, "cat.jpg")
    with open(img, "wb") as f:
        f.write(cat)
    return cat, img


def group_pool(tmp, model):
    cat, img = cat_photo(tmp)

    # --- rate limit: nginx answers 429 in seer's JSON
    st = Stack(tmp, "rate", model, rate="2r/s", burst=2)
    st.start()
    try:
        codes = []
        for i in range(12):
            s, b = classify(st, cat)
            codes.append((s, b.get("error", {}).get("code")))
        ok((429, "rate_limited") in codes and codes[0][0] == 200,
           "12 quick requests at 2r/s burst 2: the first served, then 429 rate_limited", codes)
        time.sleep(1.5)
        s, b = classify(st, cat)
        ok(s == 200, "after a pause the same client is served again", b)
    finally:
        st.stop()

    # --- the pool under load: kill -9, SIGHUP, drain, timeouts, crash loop
    st = Stack(tmp, "pool", model, conf={"crash_loop_limit": "4", "crash_loop_window": "60",
                                        "respawn_delay_min": "0.05", "respawn_delay_max": "0.5"})
    st.start()
    try:
        p, out = wrk(st, tmp, img, 12, 64)
        time.sleep(4)
        victim = st.workers()[0]
        os.kill(victim, signal.SIGKILL)
        res = wrk_result(p, out)
        ok(res["statuses"].get(200, 0) > 0, "kill -9 of a worker under 64 connections: requests kept flowing",
           res["text"])
        five = sum(v for k, v in res["statuses"].items() if k >= 500)
        diag("kill -9 run: statuses %s, socket errors %s" % (res["statuses"], res.get("errors")))
        # the killed worker's requests fail (503): one, or the few it had gathered into a batch
        ok(five <= int(st.setting("batch_requests") or 1),
           "at most the killed worker's requests failed (%d 5xx)" % five, st.logs())
        ok(st.wait_ready(10) and len(st.workers()) == 2 and victim not in st.workers(),
           "the pool is back to 2 workers (a new one for the killed one)")
        ids = set(res["ids"])
        rows = {r[0] for r in st.rows("status = 200")}
        ok(ids <= rows and len(ids) == res["statuses"].get(200, 0),
           "every 200 answer of that run has its row (%d missing)" % len(ids - rows))
        ok(st.integrity() == "ok", "integrity_check ok after kill -9")

        # SIGHUP under load: new workers first, then the old ones finish
        old = set(st.workers())
        p, out = wrk(st, tmp, img, 10, 64)
        time.sleep(3)
        os.kill(st.supervisor(), signal.SIGHUP)
        time.sleep(3)
        os.kill(st.supervisor(), signal.SIGHUP)
        res = wrk_result(p, out)
        load_checks(st, res, "two SIGHUP reloads under 64 connections", 50)
        # the old generation finishes what it holds, then exits
        until(lambda: len(st.workers()) == 2 and not (set(st.workers()) & old))
        now = set(st.workers())
        ok(len(now) == 2 and not (now & old), "after the reloads: 2 new workers", [old, now])

        # drain on SIGTERM: requests being served and requests still queued complete.
        # Three whole requests go straight into seerd's socket (2 workers: one waits
        # in the queue), then SIGTERM. The bodies are encoded first: encoding one takes
        # Python longer than a worker takes to serve one, so none would be queued.
        big = np.asarray(Image.fromarray(sk("astronaut.png")).resize((6000, 4000)))
        bodies = [jpeg_bytes(big, 90, comment=b"drain %d" % i) for i in range(3)]
        socks = [fcgi_send(st.setting("socket"), "POST", "/api/classify", b) for b in bodies]
        time.sleep(0.02)
        sup = st.supervisor()
        os.kill(sup, signal.SIGTERM)
        codes = [fcgi_status(c) for c in socks]
        ok(codes == [200, 200, 200],
           "SIGTERM with 3 large images sent to 2 workers: all 3 answered 200 (served and queued)", codes)
        time.sleep(0.2)
        try:
            fcgi_send(st.setting("socket"), "GET", "/api/health").close()
            refused = False
        except OSError:
            refused = True
        ok(refused, "while draining, no new connection is taken (the socket's name is gone)")
        gone = False
        for _ in range(100):
            if not os.path.exists("/proc/%d" % sup):
                gone = True
                break
            time.sleep(0.1)
        ok(gone, "then seerd exits")
    finally:
        st.stop()

    # --- requests waiting together are batched, and each gets its own answer
    st = Stack(tmp, "batch", model, workers=1)
    st.start()
    try:
        sock = st.setting("socket")
        photos = [jpeg_bytes(sk(n), 90) for n in ("coffee.png", "rocket.jpg", "astronaut.png")]
        alone = [json.loads(fcgi_answer(fcgi_send(sock, "POST", "/api/classify", p))[1]) for p in photos]
        big = np.asarray(Image.fromarray(sk("chelsea.png")).resize((4000, 3000)))
        # Every body is encoded before the first is sent: the three must be queued while the
        # only worker still decodes the 12 MP photo, which takes tens of ms however fast the
        # machine. The photo's REQUEST_START lies in the future (it "has not waited"), so
        # its worker takes nothing else into its round even if the three come in early.
        # (seerd has run the requests above: its time per request is known.)
        later = {"REQUEST_START": "%.3f" % (time.time() + 600)}
        slow_body = jpeg_bytes(big, 90)
        bodies = [jpeg_bytes(sk(n), 90, comment=b"again") for n in ("coffee.png", "rocket.jpg", "astronaut.png")]
        slow = fcgi_send(sock, "POST", "/api/classify", slow_body, extra=later)
        waiting = [fcgi_send(sock, "POST", "/api/classify", b) for b in bodies]
        first = fcgi_answer(slow)
        together = [fcgi_answer(c) for c in waiting]
        bodies = [json.loads(b) for _, b in together]
        inf = {b["timings_ms"]["inference"] for b in bodies}
        ok(first[0] == 200 and all(c == 200 for c, _ in together) and len(inf) == 1,
           "3 requests waiting for the only worker ran through the network as one batch "
           "(one inference time: %s)" % sorted(inf), [first[0], [c for c, _ in together]])
        ok(all(same_topk(b["topk"], a["topk"]) for a, b in zip(alone, bodies)) and
           len({b["id"] for b in bodies}) == 3,
           "... and each got exactly the answer it gets alone, with its own row")
        # nginx's REQUEST_START says how long a request waited for a worker: one that has
        # waited less than a service time (here: claims to arrive in a minute) is a short
        # queue, where a batch would only delay the first answers
        slow_body = jpeg_bytes(big, 90, comment=b"slow2")
        bodies = [jpeg_bytes(sk(n), 90, comment=b"fresh") for n in ("coffee.png", "rocket.jpg", "astronaut.png")]
        fresh = {"REQUEST_START": "%.3f" % (time.time() + 60)}
        slow = fcgi_send(sock, "POST", "/api/classify", slow_body, extra=later)
        waiting = [fcgi_send(sock, "POST", "/api/classify", b, extra=fresh) for b in bodies]
        first = fcgi_answer(slow)
        one_by_one = [fcgi_answer(c) for c in waiting]
        inf = [json.loads(b)["timings_ms"]["inference"] for _, b in one_by_one]
        ok(first[0] == 200 and all(c == 200 for c, _ in one_by_one) and len(set(inf)) == 3,
           "3 requests that had not waited a service time ran one at a time (%s)" % inf,
           [first[0], [c for c, _ in one_by_one]])

        # a request whose client went away while it waited (nginx closes the connection)
        # is dropped unserved: no network, no row, counted in the metrics
        slow_body = jpeg_bytes(big, 90, comment=b"slow3")
        left = jpeg_bytes(sk("coffee.png"), 90, comment=b"left")
        stayed_body = jpeg_bytes(sk("rocket.jpg"), 90, comment=b"stayed")
        slow = fcgi_send(sock, "POST", "/api/classify", slow_body, extra=later)
        fcgi_send(sock, "POST", "/api/classify", left).close()
        stayed = fcgi_send(sock, "POST", "/api/classify", stayed_body)
        first, second = fcgi_answer(slow), fcgi_answer(stayed)
        gone_rows = st.rows("sha256 = '%s'" % hashlib.sha256(left).hexdigest())
        _, _, data = st.request("GET", "/metrics", auth=True)
        m = re.search(r"seer_requests_abandoned_total (\d+)", data.decode())
        ok(first[0] == 200 and second[0] == 200 and gone_rows == [] and m and m.group(1) == "1" and
           "the client went away while it waited" in st.logs(),
           "a request whose connection closed while it waited: dropped, no row, counted; "
           "the one behind it answered", [first[0], second[0], gone_rows, m and m.group(0)])
    finally:
        st.stop()

    # --- recycling, the queue timeout and log reopening, on a pool of small limits
    st = Stack(tmp, "recycle", model, conf={"max_requests": "5", "max_requests_jitter": "0",
                                           "queue_timeout": "2"})
    st.start()
    try:
        first = set(st.workers())
        codes = [classify(st, jpeg_bytes(sk("chelsea.png"), comment=b"r%d" % i))[0] for i in range(14)]
        # the recycled worker's successor is forked at once
        until(lambda: len(st.workers()) == 2 and set(st.workers()) != first)
        now = set(st.workers())
        s, h, data = st.request("GET", "/metrics", auth=True)
        m = re.search(r"seer_worker_restarts_total (\d+)", data.decode())
        # 14 requests over 2 workers: at least one served 7 and was replaced after its 5th
        ok(codes == [200] * 14 and len(now) == 2 and now != first and m and m.group(1) == "0",
           "max_requests = 5: 14 requests all answered, workers replaced, not counted as restarts",
           [codes, first, now, m.group(0) if m else None])
        sock = st.setting("socket")
        c = fcgi_send(sock, "POST", "/api/classify", cat, extra={"REQUEST_START": "%.3f" % (time.time() - 5)})
        ok(fcgi_status(c) == 503, "a request that waited 5 s for a worker (queue_timeout = 2) -> 503 overloaded")
        c = fcgi_send(sock, "POST", "/api/classify", cat, extra={"REQUEST_START": "%.3f" % (time.time() - 0.5)})
        ok(fcgi_status(c) == 200, "one that waited 0.5 s is served")
        log = st.setting("log_file")
        os.rename(log, log + ".1")
        os.kill(st.supervisor(), signal.SIGUSR1)
        found = False
        for _ in range(50):
            time.sleep(0.1)
            if os.path.exists(log) and "reopened" in open(log).read():
                found = True
                break
        ok(found, "SIGUSR1 after the log was rotated away: seerd writes a new log file")
    finally:
        st.stop()

    # --- request timeout and crash loop, on a pool with a short timeout
    st = Stack(tmp, "timeout", model, conf={"request_timeout": "1", "crash_loop_limit": "4",
                                           "crash_loop_window": "60", "respawn_delay_min": "0.05",
                                           "respawn_delay_max": "0.3"})
    st.start()
    try:
        # A request that stalls half-way through its body, straight on seerd's socket (nginx
        # would buffer it): the worker reading it counts as busy, so it runs over the
        # timeout however fast the machine, while a small photo stays far below it.
        before = set(st.workers())
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(st.setting("socket"))
        params = {"REQUEST_METHOD": "POST", "DOCUMENT_URI": "/api/classify", "REQUEST_URI": "/api/classify",
                  "QUERY_STRING": "", "CONTENT_TYPE": "image/jpeg", "CONTENT_LENGTH": str(1 << 20),
                  "REMOTE_ADDR": "127.0.0.1"}
        s.sendall(fcgi_record(1, struct.pack(">HB5x", 1, 0)) + fcgi_record(4, fcgi_params(params)) +
                  fcgi_record(4, b"") + fcgi_record(5, cat[:1000]))
        t0 = time.time()
        status, _ = fcgi_answer(s, timeout=30)
        took = time.time() - t0
        s.close()
        ok(status == 0 and 0.9 < took < 10,
           "a request over request_timeout (1 s; it stalls in its body): its worker is killed, the "
           "connection closed unanswered (after %.1f s)" % took, status)
        # reaped and respawned within a supervisor tick or two
        until(lambda: len(st.workers()) == 2 and len(set(st.workers()) & before) == 1)
        now = set(st.workers())
        ok(st.wait_ready(10) and len(now) == 2 and len(now & before) == 1, "the pool replaced that worker",
           [before, now])
        s, h, data = st.request("GET", "/metrics", auth=True)
        ok(re.search(r"seer_worker_timeouts_total [1-9]", data.decode()) is not None,
           "seer_worker_timeouts_total counts it")
        s, b = classify(st, cat)
        ok(s == 200, "small images are still served", b)
        # a worker that keeps dying: after crash_loop_limit crashes, not ready
        for i in range(4):
            ws = st.workers()
            target = max(ws)
            if not st.wait_waiting(target):
                diag("worker %d not seen waiting in poll() (wchan) before the kill" % target)
            os.kill(target, signal.SIGKILL)
            for _ in range(50):
                time.sleep(0.1)
                if target not in st.workers() and (i == 3 or len(st.workers()) == 2):
                    break
        time.sleep(0.6)
        s, b = st.json("GET", "/api/ready")
        ok(s == 503 and b.get("error", {}).get("code") == "not_ready",
           "4 crashes of one worker within the window: /api/ready -> 503 not_ready", b)
        s, b = classify(st, cat)
        ok(s == 200, "the other worker still serves", b)
        os.kill(st.supervisor(), signal.SIGHUP)
        ok(st.wait_ready(20), "a reload brings the pool back to ready")
    finally:
        st.stop()


def model_memory(pid, min_kb):
    """Rss, Pss and AnonHugePages (KiB) of pid's read-only anonymous mappings of at least
    min_kb (where seerd keeps the model), and whether all are advised for huge pages (hg).
    None when it has none."""
    found, cur = None, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$", line)
            if head:
                lo, hi, perms, inode, name = head.groups()
                size_kb = (int(hi, 16) - int(lo, 16)) // 1024
                cur = None
                if perms == "r--p" and inode == "0" and not name and size_kb >= min_kb:
                    found = found or {"Rss": 0, "Pss": 0, "AnonHugePages": 0, "hg": True}
                    cur = found
                continue
            m = re.match(r"^(Rss|Pss|AnonHugePages):\s+(\d+) kB", line)
            if m and cur is not None:
                cur[m.group(1)] += int(m.group(2))
            if line.startswith("VmFlags:") and cur is not None:
                cur["hg"] = cur["hg"] and "hg" in line.split()[1:]
    return found


def thp_enabled():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def group_model(tmp, model):
    """The model: loaded once by the supervisor into memory the workers share, replaced by a
    reload, and kept when the file on disk goes bad."""
    path = os.path.join(tmp, "model-swap.seer")
    shutil.copy(model, path)
    file_kb = os.path.getsize(path) // 1024
    cat, _ = cat_photo(tmp)
    st = Stack(tmp, "model", path)
    st.start()
    try:
        ok(st.wait_ready(20), "model stack ready")
        sup, ws = st.supervisor(), st.workers()
        mem = {pid: model_memory(pid, file_kb) for pid in [sup] + ws}
        ok(all(m is not None and m["Rss"] >= file_kb for m in mem.values()),
           "the supervisor and both workers hold the whole model in read-only memory", mem)
        ok(all(m is not None and m["Pss"] * 2 <= m["Rss"] for m in mem.values()),
           "... one copy shared by the three (proportional size at most half of resident)", mem)
        if thp_enabled():
            ok(all(m is not None and m["hg"] for m in mem.values()),
               "... advised for transparent huge pages (MADV_HUGEPAGE)", mem)
            # whether the kernel found free 2 MB pages is up to the machine: said, not asserted
            diag("model on huge pages (KiB): %s of %d" % (
                [m["AnonHugePages"] for m in mem.values() if m is not None], file_kb))
        else:
            skip("the model advised for transparent huge pages", "THP is off or absent here")

        s, b = classify(st, cat)
        ok(s == 200 and b.get("model") == "test-random", "classify answers with the first model", b)
        # a different model in its place, then SIGHUP: the new generation runs it
        other = os.path.join(tmp, "model-other.seer")
        subprocess.run([os.path.join(BUILD, "tests", "gen_model"), other, "--id", "test-other",
                        "--seed", "99"], check=True)
        os.chmod(other, 0o644)
        os.rename(other, path)
        old = set(st.workers())
        os.kill(st.supervisor(), signal.SIGHUP)
        until(lambda: st.json("GET", "/api/ready")[1].get("model") == "test-other" and
              not (set(st.workers()) & old))
        s, r = st.json("GET", "/api/ready")
        ok(s == 200 and r.get("model") == "test-other", "after a reload /api/ready names the new model", r)
        s, b2 = classify(st, cat)  # the same bytes: the cache is per model, so not cached
        classes = [[c.get("index") for c in x.get("topk", [])] for x in (b, b2)]
        ok(s == 200 and b2.get("model") == "test-other" and not b2.get("cached") and classes[0] != classes[1],
           "... and classify runs it: the same photo, not from the cache, other classes", [b, b2])
        # the file goes bad: a reload is refused, and a respawned worker still has the model
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(b"\xff" * 64)
        os.kill(st.supervisor(), signal.SIGHUP)
        found = until(lambda: "reload refused" in st.logs(), timeout=5)
        ok(found, "a reload with a damaged model file is refused", st.logs()[-2000:])
        victim = max(st.workers())
        if not st.wait_waiting(victim):
            diag("worker %d not seen waiting in poll() (wchan) before the kill" % victim)
        os.kill(victim, signal.SIGKILL)
        back = until(lambda: len(st.workers()) == 2 and victim not in st.workers() and st.wait_ready(1))
        s, b3 = classify(st, jpeg_bytes(sk("chelsea.png"), quality=80))
        ok(back and s == 200 and b3.get("model") == "test-other",
           "a worker killed after that comes back with the model in memory and serves", [back, s, b3])
    finally:
        st.stop()


def group_load(tmp, model):
    _, img = cat_photo(tmp)
    st = Stack(tmp, "load", model, rate="1000000r/s", burst=100000)
    st.start()
    try:
        before = len(st.rows())
        p, out = wrk(st, tmp, img, 25, 64, variants=100)
        res = wrk_result(p, out)
        diag("load: %s requests, statuses %s, p50 %.1f ms, p99 %.1f ms" % (
            res.get("requests"), res["statuses"], res.get("p50", 0) / 1e3, res.get("p99", 0) / 1e3))
        n200 = load_checks(st, res, "wrk, 64 connections, 25 s (100 distinct images, then cache hits)", 2000)
        # wrk stops at its deadline with up to one request in flight per connection:
        # the server still answers (and records) those, wrk no longer counts them.
        time.sleep(2)
        extra = len(st.rows()) - before - sum(v for k, v in res["statuses"].items() if k != 429)
        ok(0 <= extra <= 64,
           "as many new rows as answers, give or take the %d requests wrk abandoned at its deadline "
           "(at most one per connection)" % extra)
    finally:
        st.stop()


def main():
    if shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"):
        print("1..0 # SKIP nginx is not installed")
        return 77
    if GROUP in ("pool", "load") and shutil.which("wrk") is None:
        print("1..0 # SKIP wrk is not installed")
        return 77
    tmp = tempfile.mkdtemp(prefix="seer-service-")
    os.chmod(tmp, 0o755)  # the unprivileged service user must reach the run directory
    try:
        model = os.path.join(tmp, "model.seer")
        subprocess.run([os.path.join(BUILD, "tests", "gen_model"), model], check=True)
        os.chmod(model, 0o644)
        try:
            if GROUP == "api":
                group_api(tmp, model)
                group_retention(tmp, model)
                group_full_disk(tmp, model)
            elif GROUP == "pool":
                group_pool(tmp, model)
                group_model(tmp, model)
            else:
                group_load(tmp, model)
        except Exception as e:  # a crash of the harness is a failure, not a pass
            import traceback
            ok(False, "harness: %s" % e, traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % _n)
    return 1 if _failed else 0


if __name__ == "__main__":
    sys.exit(main())
