#!/usr/bin/python3
"""img_fast.py - seer's fast path (img_decode_opts.fast) on real photos (TAP).

The fast path decodes a JPEG at 1/s of its size with libjpeg-turbo's DCT
scaling, s the largest of 8, 4, 2, 1 with 256 * s <= the shorter side, then
does the exact Resize(256) + CenterCrop(224) on the smaller image. For every
photo, tests/img_dump must

  1. decode it at ceil(w / s) x ceil(h / s), the shorter side still >= 256
     (--size, which prints the size img_decode() returns);
  2. give the crop PIL gives after im.draft('RGB', (256, 256)), which asks
     libjpeg for the same scale and otherwise decodes as usual (>= 99.9% of
     the bytes identical, none off by more than 1): the fast path is what it
     claims to be;
  3. stay close to the exact path: PSNR of the fast crop against the exact
     crop >= --min-psnr dB (30 by default), and identical when s = 1.
The PSNR of each photo is printed; --keep DIR keeps the JPEGs and writes
NAME.exact.f32 and NAME.fast.f32 (3x224x224 float32, normalised, as `seer
preprocess` writes them) and psnr.tsv, for comparing the network's top-1 on
both paths.

Photos: skimage's data/*.png (at least 100 px a side) upscaled to 4000x3000
(bicubic) and saved as JPEG q90, the 12 MP photo of bench/bench_img.py (with
film grain), one with EXIF orientation 6; and at native size chelsea, coffee,
astronaut (q90), rocket.jpg, retina.jpg and hubble_deep_field.jpg as shipped.
"""
import argparse
import glob
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torchvision.transforms as T
from PIL import Image, ImageOps

SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
RESIZE_CROP = T.Compose([T.Resize(256), T.CenterCrop(224)])


def fast_denom(w, h):
    """The scale the fast path (and PIL's draft) picks."""
    short = min(w, h)
    for s in (8, 4, 2):
        if short // s >= 256:
            return s
    return 1


def psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def to_jpeg_mode(im):
    """The mode a JPEG of this image is saved in: L for gray ones, else RGB."""
    if im.mode in ("I", "I;16"):
        im = im.point(lambda v: v / 256)
    return im.convert("L" if im.mode in ("1", "L", "LA", "I", "I;16") else "RGB")


def exif_orientation_bytes(o):
    exif = Image.Exif()
    exif[0x0112] = o
    return exif.tobytes()


def build_photos(work):
    """Write the photos into work; return [(name, path)]."""
    photos = []

    def save(name, im, **kw):
        p = os.path.join(work, name + ".jpg")
        im.save(p, quality=90, **kw)
        photos.append((name, p))

    for p in sorted(glob.glob(os.path.join(SKIMAGE_DATA, "*.png"))):
        with Image.open(p) as im:
            im.load()
            if min(im.size) < 100:
                continue
            im = to_jpeg_mode(im)
        save(os.path.basename(p)[:-4] + "_4000x3000", im.resize((4000, 3000), Image.BICUBIC))

    with Image.open(os.path.join(SKIMAGE_DATA, "astronaut.png")) as im:
        big = np.asarray(im.convert("RGB").resize((4000, 3000), Image.BICUBIC), np.float32)
    grain = np.random.default_rng(1).normal(0, 6, big.shape).astype(np.float32)
    save("astronaut_4000x3000_grain",
         Image.fromarray(np.clip(np.rint(big + grain), 0, 255).astype(np.uint8)))
    with Image.open(os.path.join(SKIMAGE_DATA, "chelsea.png")) as im:
        save("chelsea_4000x3000_exif6", im.convert("RGB").resize((4000, 3000), Image.BICUBIC),
             exif=exif_orientation_bytes(6))

    for name in ("chelsea", "coffee", "astronaut"):
        with Image.open(os.path.join(SKIMAGE_DATA, name + ".png")) as im:
            save(name, im.convert("RGB"))
    for name in ("rocket", "retina", "hubble_deep_field"):
        photos.append((name, os.path.join(SKIMAGE_DATA, name + ".jpg")))
    return photos


def pil_draft_crop(path):
    """PIL's crop of the image decoded at the draft scale, EXIF applied."""
    with Image.open(path) as im:
        im.draft("RGB", (256, 256))
        im = ImageOps.exif_transpose(im)
        return np.asarray(RESIZE_CROP(im.convert("RGB")))


def run_dump(dump, path, out, f32, *flags):
    r = subprocess.run([dump, path, out, "--f32", f32] + list(flags), capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stdout + r.stderr
    return np.fromfile(out, np.uint8).reshape(224, 224, 3), r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", default=os.path.join(os.environ.get("builddir", "."), "tests", "img_dump"))
    ap.add_argument("--keep", help="keep the photos, crops and tensors here")
    ap.add_argument("--min-psnr", type=float, default=30.0)
    args = ap.parse_args()

    tmp = None
    work = args.keep
    if work:
        os.makedirs(work, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="img_fast.")
        work = tmp.name
    photos = build_photos(work)
    print("1..%d" % (len(photos) + 1))
    failed = 0
    rows = []
    for n, (name, path) in enumerate(photos, 1):
        with Image.open(path) as im:
            w, h = im.size
            orient = im.getexif().get(0x0112, 1)
        s = fast_denom(w, h)
        sw, sh = -(-w // s), -(-h // s)
        if orient in (5, 6, 7, 8):
            sw, sh = sh, sw
        base = os.path.join(work, name)
        exact, msg = run_dump(args.dump, path, base + ".exact.u8", base + ".exact.f32")
        # --both: img_decode_crop() and img_decode() + img_resize_crop() agree
        fast, out = run_dump(args.dump, path, base + ".fast.u8", base + ".fast.f32",
                             "--fast", "--size", "--both")
        if exact is None or fast is None:
            failed += 1
            print("not ok %d - %s: img_dump failed: %s" % (n, name, (msg if exact is None else out).strip()))
            continue
        size = out.strip()
        ref = pil_draft_crop(path)
        diff = np.abs(fast.astype(np.int16) - ref.astype(np.int16))
        same = 100.0 * float((diff == 0).mean())
        db = psnr(fast, exact)
        ok = (size == "%dx%d" % (sw, sh) and min(sw, sh) >= 256 and same >= 99.9 and
              int(diff.max()) <= 1 and db >= args.min_psnr and (s > 1 or db == math.inf))
        failed += not ok
        rows.append((name, w, h, s, size, db, same))
        print("%s %d - %s %dx%d: 1/%d -> %s; vs PIL draft %.3f%% identical (max diff %d); "
              "PSNR vs exact %s dB" % ("ok" if ok else "not ok", n, name, w, h, s, size, same,
                                       int(diff.max()), "inf" if db == math.inf else "%.1f" % db))

    scaled = [r[5] for r in rows if r[3] > 1]
    ok = len(scaled) > 0 and min(scaled) >= args.min_psnr
    failed += not ok
    print("%s %d - %d scaled photos: PSNR fast vs exact min %.1f dB, median %.1f dB (floor %.0f)" % (
        "ok" if ok else "not ok", len(photos) + 1, len(scaled), min(scaled, default=0),
        float(np.median(scaled)) if scaled else 0, args.min_psnr))
    if args.keep:
        with open(os.path.join(work, "psnr.tsv"), "w") as f:
            f.write("name\twidth\theight\tscale\tdecoded\tpsnr_db\tpct_same_as_pil_draft\n")
            for r in rows:
                f.write("%s\t%d\t%d\t1/%d\t%s\t%.2f\t%.3f\n" % r)
    if tmp:
        tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
