#!/usr/bin/python3
"""img_pil.py - compare seer's image pipeline with PIL + torchvision (TAP).

For every test image, tests/img_dump writes the 224x224x3 uint8 crop that
seer feeds the network; the reference is
    CenterCrop(224)(Resize(256)(Image.open(path).convert('RGB')))
with the EXIF orientation applied on both sides (ImageOps.exif_transpose)
or on neither (--no-exif-rotate). A case passes with >= 99.9% identical
bytes and none off by more than 1; the aim, and the usual result, is 100%.

Images: the photos shipped in skimage/data (PNG and JPEG, plus the PNGs
re-encoded as JPEG at quality 90), and generated ones of awkward sizes,
modes and encodings (1x1, 3x1000, 225x10000, 4000x3000, gray, LA, palette,
RGBA, 16-bit, interlaced, CMYK/YCCK, progressive, the 8 EXIF orientations).
"""
import argparse
import glob
import os
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zlib

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image, ImageOps

SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
RESIZE_CROP = T.Compose([T.Resize(256), T.CenterCrop(224)])
TO_TENSOR_NORM = T.Compose([
    T.ToTensor(),
    T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


# --------------------------------------------------------------------------
# A small PNG writer for what PIL cannot write (16-bit RGB, interlacing,
# 2/4-bit gray and palette, palettes shorter than the indices used).
# --------------------------------------------------------------------------

def _chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _pack_rows(a, depth):
    """a: [h][w][c] ints -> list of packed row bytes."""
    h, w, c = a.shape
    rows = []
    for y in range(h):
        flat = a[y].reshape(-1)
        if depth == 16:
            rows.append(flat.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(flat.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            out = bytearray((len(flat) * depth + 7) // 8)
            for i, v in enumerate(flat):
                out[i // per] |= int(v) << (8 - depth * (i % per + 1))
            rows.append(bytes(out))
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(a, depth, color_type, plte=None, trns=None, interlace=False):
    """Encode a [h][w][c] array as PNG with the given depth and colour type."""
    h, w, _ = a.shape
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = a[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += b"".join(b"\0" + r for r in _pack_rows(sub, depth))
    else:
        raw = b"".join(b"\0" + r for r in _pack_rows(a, depth))
    s = b"\x89PNG\r\n\x1a\n"
    s += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0,
                                     1 if interlace else 0))
    if plte is not None:
        s += _chunk(b"PLTE", bytes(plte))
    if trns is not None:
        s += _chunk(b"tRNS", bytes(trns))
    s += _chunk(b"IDAT", zlib.compress(raw, 6))
    return s + _chunk(b"IEND", b"")


# --------------------------------------------------------------------------
# Test images
# --------------------------------------------------------------------------

def smooth_noise(rng, h, w, c, lo=0, hi=255):
    """A photo-like field: smooth gradients plus noise, [h][w][c] int32."""
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    ph = rng.uniform(0, 6.28, size=(1, 1, c)).astype(np.float32)
    v = np.sin(7 * xx + 5 * yy + ph)
    v *= np.cos(3 * yy - 2 * xx + ph)
    v *= 0.35
    v += 0.5
    v += 0.08 * rng.standard_normal((h, w, c), dtype=np.float32)
    np.clip(v, 0, 1, out=v)
    v *= hi - lo
    v += lo
    return np.rint(v).astype(np.int32)


def exif_bytes(orientation, big_endian):
    """An APP1 Exif payload holding only IFD0 with the orientation tag."""
    if big_endian:
        tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
        tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        return exif.tobytes()
    return b"Exif\x00\x00" + tiff


def set_adobe_transform(data, transform):
    """Rewrite the Adobe APP14 colour transform flag of a JPEG."""
    i = data.find(b"\xff\xeeAdobe")
    if i < 0:
        i = data.find(b"Adobe") - 4
    assert i >= 0, "no Adobe marker"
    b = bytearray(data)
    b[i + 15] = transform
    return bytes(b)


def build_cases(work, rng):
    """Write the images into work; return [(label, path, exif_rotate)]."""
    cases = []

    def add(label, path, exif=True):
        cases.append((label, path, exif))

    def save(name, im, **kw):
        p = os.path.join(work, name)
        im.save(p, **kw)
        return p

    def raw(name, data):
        p = os.path.join(work, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    # the skimage photos as shipped, and the PNGs re-encoded as JPEG q90
    for p in sorted(glob.glob(os.path.join(SKIMAGE_DATA, "*.png")) +
                    glob.glob(os.path.join(SKIMAGE_DATA, "*.jpg"))):
        name = os.path.basename(p)
        if name == "truncated.jpg":
            continue
        add(name, p)
        if name.endswith(".png"):
            with Image.open(p) as im:
                im.load()
                mode = "L" if im.mode in ("1", "L", "LA", "I", "I;16") else "RGB"
                if im.mode in ("I", "I;16"):
                    im = im.point(lambda v: v / 256)
                j = im.convert(mode)
            add(name[:-4] + ".q90.jpg", save(name[:-4] + ".q90.jpg", j, quality=90))

    chelsea = Image.open(os.path.join(SKIMAGE_DATA, "chelsea.png")).convert("RGB")
    astro = Image.open(os.path.join(SKIMAGE_DATA, "astronaut.png")).convert("RGB")

    # JPEG encodings
    add("chelsea progressive", save("prog.jpg", chelsea, quality=90, progressive=True))
    for ss in (0, 1, 2):
        add("chelsea subsampling %d" % ss,
            save("ss%d.jpg" % ss, chelsea, quality=85, subsampling=ss))
    add("chelsea q100 4:4:4", save("q100.jpg", chelsea, quality=100, subsampling=0))
    add("chelsea gray JPEG", save("gray.jpg", chelsea.convert("L"), quality=90))
    cmyk = save("cmyk.jpg", chelsea.convert("CMYK"), quality=90)
    add("chelsea CMYK JPEG (Adobe, inverted)", cmyk)
    with open(cmyk, "rb") as f:
        cmyk_data = f.read()
    add("chelsea YCCK JPEG (Adobe transform 2)",
        raw("ycck.jpg", set_adobe_transform(cmyk_data, 2)))
    add("chelsea progressive CMYK",
        save("cmykprog.jpg", chelsea.convert("CMYK"), quality=80, progressive=True))

    # EXIF orientations, both byte orders, applied and not
    small = chelsea.resize((301, 200), Image.BILINEAR)
    for o in range(1, 9):
        for be in (False, True):
            p = save("exif%d%s.jpg" % (o, "mm" if be else "ii"), small, quality=90,
                     exif=exif_bytes(o, be))
            tag = "EXIF orientation %d (%s)" % (o, "MM" if be else "II")
            add(tag + " rotated", p, True)
            if not be:
                add(tag + " not rotated", p, False)

    # awkward sizes
    sizes = [(1, 1), (2, 2), (3, 1000), (1000, 3), (225, 10000), (10000, 225),
             (223, 223), (224, 224), (255, 257), (256, 256), (256, 257), (256, 259),
             (257, 256), (300, 256), (256, 5000), (257, 1000), (641, 479), (500, 333),
             (333, 500), (1023, 767), (4000, 3000)]
    for w, h in sizes:
        a = smooth_noise(rng, h, w, 3).astype(np.uint8)
        im = Image.fromarray(a, "RGB")
        add("RGB %dx%d PNG" % (w, h), save("rgb%dx%d.png" % (w, h), im, compress_level=1))
        if w * h >= 100000 or (w, h) in ((3, 1000), (1, 1)):
            add("RGB %dx%d JPEG" % (w, h), save("rgb%dx%d.jpg" % (w, h), im, quality=90))
    big = astro.resize((4000, 3000), Image.BICUBIC)
    big_np = np.asarray(big).astype(np.int16) + rng.integers(-6, 7, (3000, 4000, 3),
                                                             dtype=np.int16)
    big = Image.fromarray(np.clip(big_np, 0, 255).astype(np.uint8), "RGB")
    add("astronaut 4000x3000 JPEG", save("big.jpg", big, quality=90))

    # PNG modes PIL writes
    g = smooth_noise(rng, 330, 410, 1)[:, :, 0].astype(np.uint8)
    add("gray (L) PNG", save("L.png", Image.fromarray(g, "L")))
    la = np.dstack([g, 255 - g]).astype(np.uint8)
    add("gray+alpha (LA) PNG", save("LA.png", Image.fromarray(la, "LA")))
    rgba = np.dstack([np.asarray(small), smooth_noise(rng, 200, 301, 1)]).astype(np.uint8)
    add("RGBA PNG", save("RGBA.png", Image.fromarray(rgba, "RGBA")))
    add("palette (P) PNG", save("P.png", small.quantize(200)))
    pt = small.quantize(64)
    pt.info["transparency"] = 3
    add("palette + tRNS PNG", save("Ptrns.png", pt, transparency=3))
    add("1-bit PNG", save("1.png", Image.fromarray(g, "L").convert("1")))
    add("L + tRNS PNG", save("Ltrns.png", Image.fromarray(g, "L"), transparency=17))
    g16 = smooth_noise(rng, 300, 280, 1, 0, 700)[:, :, 0].astype(np.uint16)
    add("16-bit gray PNG (PIL writes I;16)",
        save("I16.png", Image.fromarray(g16, "I;16")))

    # PNG variants written by hand
    rgb16 = smooth_noise(rng, 260, 310, 3, 0, 65535)
    add("16-bit RGB PNG", raw("rgb16.png", png_bytes(rgb16, 16, 2)))
    rgba16 = smooth_noise(rng, 260, 310, 4, 0, 65535)
    add("16-bit RGBA PNG", raw("rgba16.png", png_bytes(rgba16, 16, 6)))
    ga16 = smooth_noise(rng, 250, 270, 2, 0, 65535)
    add("16-bit gray+alpha PNG", raw("ga16.png", png_bytes(ga16, 16, 4)))
    gray16 = smooth_noise(rng, 270, 250, 1, 0, 1000)
    add("16-bit gray PNG, values past 255", raw("g16.png", png_bytes(gray16, 16, 0)))
    add("16-bit gray PNG + tRNS",
        raw("g16t.png", png_bytes(gray16, 16, 0, trns=b"\x00\x10")))
    for d in (1, 2, 4):
        a = smooth_noise(rng, 240, 300, 1, 0, (1 << d) - 1)
        add("%d-bit gray PNG" % d, raw("g%d.png" % d, png_bytes(a, d, 0)))
        add("%d-bit gray PNG, interlaced" % d,
            raw("g%di.png" % d, png_bytes(a, d, 0, interlace=True)))
        pal = rng.integers(0, 256, 3 * (1 << d)).tolist()
        add("%d-bit palette PNG" % d, raw("p%d.png" % d, png_bytes(a, d, 3, plte=pal)))
    idx = smooth_noise(rng, 270, 290, 1, 0, 255)
    short_pal = rng.integers(0, 256, 3 * 100).tolist()
    add("palette PNG, indices past PLTE",
        raw("pshort.png", png_bytes(idx, 8, 3, plte=short_pal)))
    add("palette PNG, tRNS, interlaced",
        raw("pti.png", png_bytes(idx, 8, 3, plte=rng.integers(0, 256, 768).tolist(),
                                 trns=bytes(range(0, 256, 2)), interlace=True)))
    rgb8 = smooth_noise(rng, 333, 257, 3)
    add("RGB PNG, interlaced", raw("rgbi.png", png_bytes(rgb8, 8, 2, interlace=True)))
    add("RGBA 16-bit PNG, interlaced",
        raw("rgba16i.png", png_bytes(rgba16, 16, 6, interlace=True)))
    add("gray+alpha 8-bit PNG, interlaced",
        raw("ga8i.png", png_bytes(smooth_noise(rng, 230, 260, 2), 8, 4, interlace=True)))
    add("1x1 16-bit gray PNG", raw("g16_1.png", png_bytes(np.array([[[300]]]), 16, 0)))
    return cases


def reference(path, exif):
    with Image.open(path) as im:
        if exif:
            im = ImageOps.exif_transpose(im)
        return RESIZE_CROP(im.convert("RGB"))


def run_dump(dump, path, out, exif, f32=None):
    # --both: img_decode_crop() and img_decode() + img_resize_crop() must agree
    cmd = [dump, path, out, "--both"]
    if not exif:
        cmd.append("--no-exif-rotate")
    if f32:
        cmd += ["--f32", f32]
    return subprocess.run(cmd, capture_output=True, text=True)


def main():
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", default=os.path.join(os.environ.get("builddir", "."),
                                                   "tests", "img_dump"))
    ap.add_argument("--keep", help="write the images here and keep them")
    ap.add_argument("--bench", action="store_true",
                    help="also time the 4000x3000 JPEG against PIL + torchvision (a comment, not a test)")
    args = ap.parse_args()

    tmp = None
    work = args.keep
    if work:
        os.makedirs(work, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="img_pil.")
        work = tmp.name
    rng = np.random.default_rng(20240601)
    cases = build_cases(work, rng)
    ntests = len(cases) + 2
    print("1..%d" % ntests)
    n = 0
    failed = 0
    tot_bytes = tot_same = 0
    out = os.path.join(work, "out.u8")

    for label, path, exif in cases:
        n += 1
        with Image.open(path) as im:
            desc = "%dx%d %s %s" % (im.size[0], im.size[1], im.format, im.mode)
        r = run_dump(args.dump, path, out, exif)
        if r.returncode != 0:
            failed += 1
            print("not ok %d - %s (%s): img_dump failed: %s" % (n, label, desc, r.stderr.strip()))
            continue
        got = np.fromfile(out, np.uint8).reshape(224, 224, 3)
        ref = np.asarray(reference(path, exif))
        diff = np.abs(got.astype(np.int16) - ref.astype(np.int16))
        same = int((diff == 0).sum())
        tot_same += same
        tot_bytes += diff.size
        pct = 100.0 * same / diff.size
        ok = pct >= 99.9 and int(diff.max()) <= 1
        failed += not ok
        print("%s %d - %s (%s) exif=%s: %.3f%% identical, %d off by 1, max diff %d" % (
            "ok" if ok else "not ok", n, label, desc, "on" if exif else "off",
            pct, int((diff == 1).sum()), int(diff.max())))

    # normalisation against ToTensor + Normalize
    n += 1
    worst = 0.0
    for p in (os.path.join(SKIMAGE_DATA, "coffee.png"), os.path.join(work, "big.jpg")):
        f32 = os.path.join(work, "out.f32")
        r = run_dump(args.dump, p, out, True, f32)
        got = np.fromfile(f32, np.float32).reshape(3, 224, 224) if r.returncode == 0 else None
        ref = TO_TENSOR_NORM(reference(p, True)).numpy()
        worst = max(worst, float("inf") if got is None else float(np.abs(got - ref).max()))
    ok = worst == 0.0
    failed += not ok
    print("%s %d - ToTensor+Normalize float32 bit-exact (max abs diff %g)" % (
        "ok" if ok else "not ok", n, worst))

    # a truncated JPEG fails on both sides
    n += 1
    p = os.path.join(SKIMAGE_DATA, "truncated.jpg")
    r = run_dump(args.dump, p, out, True)
    try:
        reference(p, True)
        pil_failed = False
    except OSError:
        pil_failed = True
    ok = r.returncode != 0 and "truncated" in r.stderr and pil_failed
    failed += not ok
    print("%s %d - skimage truncated.jpg refused by both (%s)" % (
        "ok" if ok else "not ok", n, r.stderr.strip()))

    if args.bench:
        p = os.path.join(work, "big.jpg")
        r = subprocess.run([args.dump, p, out, "--bench", "7"], capture_output=True, text=True)
        seer_ms = float("nan")
        for line in r.stderr.splitlines():
            if "median" in line:
                seer_ms = float(line.split("median")[1].split()[0])
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            TO_TENSOR_NORM(reference(p, True))
            times.append((time.perf_counter() - t0) * 1e3)
        pil_ms = sorted(times)[len(times) // 2]
        print("# speed, 4000x3000 JPEG, decode+resize+crop+normalize: seer %.1f ms, "
              "PIL+torchvision %.1f ms (%.1fx), torch threads %d" % (
                  seer_ms, pil_ms, pil_ms / seer_ms, torch.get_num_threads()))
        print("# " + r.stderr.strip().replace("\n", "\n# "))

    print("# %d cases, %.4f%% of %d bytes identical overall, %d failed" % (
        len(cases), 100.0 * tot_same / max(tot_bytes, 1), tot_bytes, failed))
    if tmp:
        tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
