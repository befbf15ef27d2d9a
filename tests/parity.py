#!/usr/bin/python3
"""Parity of seer's resnet18 with torchvision's, as a TAP test.

Writes seeded synthetic resnet18 weights (weights/make_synthetic.py), converts them with
`seer convert`, runs `seer forward` and torchvision's resnet18 (eval mode, same state_dict) on
seeded inputs and checks, per batch, max |seer - torch| <= 1e-3 * max |torch| and an identical
top-5 for every image.  The reference is torchvision run in float64, so the error printed is
seer's own; torch's float32 error is printed beside it for scale.  Then checks that the
converter refuses, with a non-zero exit and a one-line message, what is not a resnet18
checkpoint.

Usage: /usr/bin/python3 tests/parity.py [--seer PATH] [--keep DIR]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "weights"))
import make_synthetic  # noqa: E402

SEED = 20240611
REL_TOL = 1e-3
TIMEOUT = 600
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Tap:
    """Collects test functions, then runs them printing TAP."""

    def __init__(self):
        self.tests = []

    def add(self, name, fn):
        self.tests.append((name, fn))

    def run(self):
        print("1..%d" % len(self.tests), flush=True)
        failed = 0
        for i, (name, fn) in enumerate(self.tests, 1):
            try:
                ok, notes = fn()
            except Exception as e:  # a broken test is a failed test, the others still run
                ok, notes = False, ["%s: %s" % (type(e).__name__, e)]
            print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
            for note in notes:
                for line in str(note).splitlines():
                    print("# " + line)
            sys.stdout.flush()
            failed += not ok
        return 1 if failed else 0


def smooth_image(gen, n):
    """Return n image-like inputs: smooth colour fields and a gradient in [0, 1], normalised."""
    low = torch.rand(n, 3, 6, 6, generator=gen)
    img = torch.nn.functional.interpolate(low, size=(224, 224), mode="bicubic",
                                          align_corners=False)
    ramp = torch.linspace(0.0, 1.0, 224).view(1, 1, 1, 224)
    img = (0.7 * img + 0.3 * ramp).clamp(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (img - mean) / std


def make_batches():
    """Return {name: float32 NCHW tensor} of the parity inputs."""
    # This seed gives gaps of at least 3e-3 * max |logit| within every top-6, so logits within
    # the 1e-3 tolerance cannot reorder a top-5: the two checks agree.
    gen = torch.Generator().manual_seed(SEED + 10)
    noise = torch.randn(3, 3, 224, 224, generator=gen)
    smooth = smooth_image(gen, 2)
    return {
        "batch 1 (smooth image)": smooth[:1].contiguous(),
        "batch 4 (3 noise, 1 smooth)": torch.cat([noise, smooth[1:]]).contiguous(),
    }


def run(cmd):
    """Run cmd, return (exit status, stdout, stderr) as text."""
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr


def seer_forward(seer, model, x, threads, workdir):
    """Run `seer forward` on x; return its logits [N, 1000] or raise with seer's message."""
    fin = os.path.join(workdir, "in.f32")
    fout = os.path.join(workdir, "out.f32")
    x.numpy().astype("<f4").tofile(fin)
    if os.path.exists(fout):
        os.unlink(fout)
    rc, _, err = run([seer, "forward", "--model", model, "--threads", str(threads), fin, fout])
    if rc != 0:
        raise RuntimeError("seer forward exited %d: %s" % (rc, err.strip()))
    y = np.fromfile(fout, dtype="<f4")
    n = x.shape[0]
    if y.size != n * 1000:
        raise RuntimeError("seer forward wrote %d floats, expected %d" % (y.size, n * 1000))
    return torch.from_numpy(y.astype(np.float32).reshape(n, 1000))


def compare(name, got, ref, ref32):
    """Check got against the float64 reference; return (ok, notes)."""
    scale = ref.abs().max().item()
    rel = (got.double() - ref).abs().max().item() / scale
    rel32 = (ref32.double() - ref).abs().max().item() / scale
    notes = ["max rel err %.2e (torch float32: %.2e), max |logit| %.2f" % (rel, rel32, scale)]
    ok = rel <= REL_TOL
    if not ok:
        notes.append("%s: max |diff| exceeds %.0e * max |logit|" % (name, REL_TOL))
    return ok, notes


def check_top5(got, ref):
    """Check that every image has the same top-5, in order; return (ok, notes)."""
    ok, notes = True, []
    sorted_ref, idx_ref = ref.sort(dim=1, descending=True)
    gap = ((sorted_ref[:, :5] - sorted_ref[:, 1:6]).min().item() / ref.abs().max().item())
    for i in range(ref.shape[0]):
        a = idx_ref[i, :5].tolist()
        b = got[i].double().topk(5).indices.tolist()
        if a != b:
            ok = False
            notes.append("image %d: seer top-5 %s, torch %s" % (i, b, a))
    notes.append("smallest gap within the top-6, relative to max |logit|: %.1e" % gap)
    return ok, notes


def check_refused(seer, pth, workdir, what):
    """Check that `seer convert pth` fails with a one-line message and leaves no output."""
    out = os.path.join(workdir, "refused.seer")
    if os.path.exists(out):
        os.unlink(out)
    rc, stdout, err = run([seer, "convert", pth, out])
    lines = [line for line in err.splitlines() if line.strip()]
    notes = ["exit %d, stderr: %s" % (rc, " | ".join(lines) if lines else "(empty)")]
    ok = True
    if rc == 0 or rc < 0:
        ok = False
        notes.append("%s: expected a non-zero exit, got %d" % (what, rc))
    if len(lines) != 1:
        ok = False
        notes.append("%s: expected one line on stderr, got %d" % (what, len(lines)))
    if os.path.exists(out):
        ok = False
        notes.append("%s: a failed convert left %s behind" % (what, out))
    return ok, notes


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seer", default=os.path.join(".", "src", "seer"),
                    help="seer binary (default ./src/seer)")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    args = ap.parse_args(argv)

    seer = os.path.abspath(args.seer)
    if not os.access(seer, os.X_OK):
        print("Bail out! no seer binary at %s (build it first, or pass --seer)" % seer)
        return 1
    workdir = args.keep or tempfile.mkdtemp(prefix="seer-parity-")
    os.makedirs(workdir, exist_ok=True)
    torch.set_num_threads(1)

    pth = os.path.join(workdir, "synthetic.pth")
    model_path = os.path.join(workdir, "synthetic.seer")
    torch.save(make_synthetic.make_model(SEED).state_dict(), pth)
    state = torch.load(pth)  # the tensors exactly as the converter reads them
    net = torchvision.models.resnet18()
    net.load_state_dict(state)
    net.eval()
    net64 = torchvision.models.resnet18()
    net64.load_state_dict(state)
    net64.double().eval()

    tap = Tap()
    converted = {}

    def t_convert():
        rc, _, err = run([seer, "convert", pth, model_path])
        converted["ok"] = rc == 0 and os.path.getsize(model_path) > 0
        return converted["ok"], ([] if rc == 0 else ["exit %d: %s" % (rc, err.strip())])

    tap.add("seer convert accepts a torchvision resnet18 state_dict", t_convert)

    results = {}
    for name, x in make_batches().items():
        def t_logits(name=name, x=x):
            if not converted.get("ok"):
                return False, ["skipped: convert failed"]
            with torch.no_grad():
                ref = net64(x.double())
                ref32 = net(x)
            threads = 1 if x.shape[0] == 1 else 2
            got = seer_forward(seer, model_path, x, threads, workdir)
            results[name] = (got, ref, x)
            ok, notes = compare(name, got, ref, ref32)
            return ok, ["--threads %d: %s" % (threads, notes[0])] + notes[1:]

        def t_top5(name=name):
            if name not in results:
                return False, ["skipped: no logits"]
            got, ref, _ = results[name]
            return check_top5(got, ref)

        tap.add("%s: logits match torchvision within %.0e relative" % (name, REL_TOL), t_logits)
        tap.add("%s: same top-5 as torchvision for every image" % name, t_top5)

    def t_threads():
        name = next(n for n in results if results[n][2].shape[0] > 1) if results else None
        if name is None:
            return False, ["skipped: no logits"]
        got2, ref, x = results[name]
        got1 = seer_forward(seer, model_path, x, 1, workdir)
        diff = (got1 - got2).abs().max().item() / ref.abs().max().item()
        return diff <= REL_TOL, ["--threads 1 vs 2: max rel diff %.2e" % diff]

    tap.add("batch 4: seer forward --threads 1 agrees with --threads 2", t_threads)

    def refused(what, make):
        def t():
            path = make()
            return check_refused(seer, path, workdir, what)
        tap.add("seer convert refuses %s" % what, t)

    def save(name, sd):
        path = os.path.join(workdir, name)
        torch.save(sd, path)
        return path

    def truncated():
        path = os.path.join(workdir, "truncated.pth")
        with open(pth, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
        return path

    torch.manual_seed(SEED)
    refused("a resnet34 state_dict",
            lambda: save("resnet34.pth", torchvision.models.resnet34().state_dict()))
    refused("a resnet18 state_dict with 10 classes",
            lambda: save("resnet18-10.pth", torchvision.models.resnet18(num_classes=10)
                         .state_dict()))
    refused("a torch.nn.Linear state_dict",
            lambda: save("linear.pth", torch.nn.Linear(4, 2).state_dict()))
    refused("a .pth truncated to half its size", truncated)

    status = tap.run()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
