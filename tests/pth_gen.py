#!/usr/bin/python3
"""pth_gen.py - write the inputs of tests/test_pth.c into the directory argv[1].

Real torch.save files (small, resnet18, non-contiguous, protocol 4, legacy)
come from torch itself; hostile files are built with zipfile and hand-written
pickle bytes, so nothing here ever unpickles or runs them. Run it with the
interpreter that has torch (/usr/bin/python3 on Debian).
"""
import collections
import os
import struct
import sys
import warnings
import zipfile

import torch


# ---- real checkpoints ----------------------------------------------------

def small_state_dict():
    """A state_dict with known values; test_pth.c recomputes each formula."""
    sd = torch.nn.Linear(4, 3).state_dict()  # an OrderedDict with _metadata
    sd["weight"] = (torch.arange(12, dtype=torch.float32) * 0.5 - 1).reshape(3, 4)
    sd["bias"] = torch.tensor([0.25, -0.5, 1.0])
    sd["conv.weight"] = torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 8
    sd["b.f64"] = torch.arange(5, dtype=torch.float64) * 1.5 + 0.1
    sd["b.f16"] = torch.tensor([[0.5, -2.0, 3.25], [1024.0, 2.0 ** -10, -0.125]],
                               dtype=torch.float16)
    sd["b.bf16"] = torch.tensor([1.0, -2.5, 65280.0], dtype=torch.bfloat16)
    sd["bn.num_batches_tracked"] = torch.tensor(12345, dtype=torch.long)
    sd["c.i32"] = torch.tensor([-7, 0, 2 ** 31 - 1, -2 ** 31], dtype=torch.int32)
    sd["c.i64"] = torch.tensor([2 ** 40, -2 ** 50 + 3], dtype=torch.int64)
    sd["c.i16"] = torch.tensor([-32768, 32767], dtype=torch.int16)
    sd["c.i8"] = torch.tensor([-128, 127, 5], dtype=torch.int8)
    sd["c.u8"] = torch.arange(250, 256, dtype=torch.uint8)
    sd["m.mask"] = torch.tensor([True, False, True])
    # two views of one storage: torch saves it once, the second at offset 8
    base = torch.arange(20, dtype=torch.float32) + 100
    sd["shared.full"] = base
    sd["shared.tail"] = base[8:].view(3, 4)
    # shape (1, 4) with strides (1, 1): contiguous by torch's rule
    sd["u.row"] = torch.arange(4, dtype=torch.float32).view(4, 1).t()
    sd["e.empty"] = torch.zeros(0, 3)
    assert sd["shared.tail"].storage_offset() == 8
    assert sd["u.row"].stride() == (1, 1) and sd["u.row"].is_contiguous()
    return sd


def write_real(out):
    sd = small_state_dict()
    torch.save(sd, os.path.join(out, "small.pth"))
    torch.save(sd, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(collections.OrderedDict(w=sd["weight"]), os.path.join(out, "proto4.pth"),
               pickle_protocol=4)
    nc = collections.OrderedDict(t=torch.arange(6, dtype=torch.float32).view(2, 3).t())
    torch.save(nc, os.path.join(out, "noncontig.pth"))

    import torchvision
    torch.manual_seed(0)
    rsd = torchvision.models.resnet18().state_dict()
    torch.save(rsd, os.path.join(out, "resnet18.pth"))
    # manifest: name dtype ndim shape... first last sum abssum
    names = {torch.float32: "f32", torch.int64: "i64"}
    with open(os.path.join(out, "resnet18.txt"), "w") as f:
        for k, t in rsd.items():
            flat = t.reshape(-1).double()
            f.write("%s %s %d %s %r %r %r %r\n" % (
                k, names[t.dtype], t.dim(), " ".join(str(d) for d in t.shape),
                flat[0].item(), flat[-1].item(), flat.sum().item(), flat.abs().sum().item()))


# ---- hand-built pickles and zips -----------------------------------------

def p_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def p_int(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    if -2 ** 31 <= n < 2 ** 31:
        return b"J" + struct.pack("<i", n)
    return p_long1(n)


def p_long1(n):
    return b"\x8a\x08" + struct.pack("<q", n)


def p_tuple(items):
    return b"(" + b"".join(items) + b"t"


def p_global(mod, name):
    return b"c" + ("%s\n%s\n" % (mod, name)).encode()


def p_odict():
    return p_global("collections", "OrderedDict") + b")R"


def p_tensor(stype, key, numel, offset, size, stride, grad=False, numel_op=p_int):
    """The bytes torch writes for one tensor value in a state_dict."""
    pid = p_tuple([p_str("storage"), p_global("torch", stype), p_str(key), p_str("cpu"),
                   numel_op(numel)])
    return (p_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"Q" +
            p_int(offset) + p_tuple([p_int(d) for d in size]) +
            p_tuple([p_int(d) for d in stride]) + (b"\x88" if grad else b"\x89") +
            p_odict() + b"tR")


def p_state_dict(pairs):
    """PROTO 2, OrderedDict of (key bytes, value bytes), _metadata via BUILD, STOP."""
    body = b"".join(p_str(k) + v for k, v in pairs)
    meta = b"}" + p_str("_metadata") + p_odict() + b"sb"
    return b"\x80\x02" + p_odict() + b"q\x00(" + body + b"u" + meta + b"."


def write_zip(path, pkl, storages, extra=(), method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("archive/data.pkl", pkl)
        for key, data in storages.items():
            z.writestr("archive/data/" + key, data)
        for name, data in extra:
            z.writestr("archive/" + name, data)
        z.writestr("archive/version", b"3\n")


W_DATA = struct.pack("<6f", *[float(i) for i in range(6)])
N_DATA = struct.pack("<q", 42)


def ok_pairs():
    return [("w", p_tensor("FloatStorage", "0", 6, 0, (2, 3), (3, 1), grad=True)),
            ("n", p_tensor("LongStorage", "1", 1, 0, (), (), numel_op=p_long1))]


def ok_storages():
    return {"0": W_DATA, "1": N_DATA}


def evil_pickle(mod, name, arg):
    return b"\x80\x02" + p_global(mod, name) + p_str(arg) + b"\x85R."


def write_hostile(out):
    def path(name):
        return os.path.join(out, name)

    write_zip(path("handmade_ok.pth"), p_state_dict(ok_pairs()), ok_storages())
    for mod, name in (("os", "system"), ("posix", "system"), ("builtins", "eval")):
        write_zip(path("evil_%s_%s.pth" % (mod, name)),
                  evil_pickle(mod, name, "touch /tmp/seer-pwned"), {})
    # a forbidden global deep inside an otherwise good state_dict
    pairs = ok_pairs() + [("x", p_global("torch._utils", "_rebuild_parameter") + b")R")]
    write_zip(path("evil_param.pth"), p_state_dict(pairs), ok_storages())
    write_zip(path("deflate.pth"), p_state_dict(ok_pairs()), ok_storages(),
              method=zipfile.ZIP_DEFLATED)

    # one flipped byte inside storage 0
    write_zip(path("badcrc.pth"), p_state_dict(ok_pairs()), ok_storages())
    with zipfile.ZipFile(path("badcrc.pth")) as z:
        info = z.getinfo("archive/data/0")
    with open(path("badcrc.pth"), "r+b") as f:
        f.seek(info.header_offset + 26)
        nlen, elen = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + nlen + elen + 5)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x40]))

    pairs = [("w", p_tensor("FloatStorage", "7", 6, 0, (2, 3), (3, 1)))]
    write_zip(path("badkey.pth"), p_state_dict(pairs), ok_storages())
    pairs = [("w", p_tensor("FloatStorage", "0", 6, 0, (2, 4), (4, 1)))]
    write_zip(path("extent.pth"), p_state_dict(pairs), ok_storages())
    pairs = [("w", p_tensor("FloatStorage", "0", 6, 4, (3,), (1,)))]
    write_zip(path("extent_offset.pth"), p_state_dict(pairs), ok_storages())
    pairs = [("w", p_tensor("FloatStorage", "0", 8, 0, (2, 3), (3, 1)))]
    write_zip(path("storage_size.pth"), p_state_dict(pairs), ok_storages())
    pairs = ok_pairs() + [("w", p_tensor("FloatStorage", "0", 6, 0, (6,), (1,)))]
    write_zip(path("dupkey.pth"), p_state_dict(pairs), ok_storages())
    pairs = ok_pairs() + [("v", p_int(7))]
    write_zip(path("notensor.pth"), p_state_dict(pairs), ok_storages())
    pairs = ok_pairs() + [("l", b"]")]  # EMPTY_LIST
    write_zip(path("opcode.pth"), p_state_dict(pairs), ok_storages())
    pairs = ok_pairs() + [("m", b"h\x09")]  # BINGET of a memo slot never set
    write_zip(path("memo.pth"), p_state_dict(pairs), ok_storages())
    write_zip(path("big_endian.pth"), p_state_dict(ok_pairs()), ok_storages(),
              extra=[("byteorder", b"big")])

    # zip64 markers in the end record
    write_zip(path("zip64.pth"), p_state_dict(ok_pairs()), ok_storages())
    with open(path("zip64.pth"), "r+b") as f:
        f.seek(-22 + 8, 2)
        f.write(b"\xff\xff\xff\xff")

    pairs = [("w", p_tensor("FloatStorage", "0", 6, 0, (-1, 6), (6, 1)))]
    write_zip(path("bad_shape.pth"), p_state_dict(pairs), ok_storages())
    pairs = [("w", p_tensor("FloatStorage", "0", 6, 0, (1,) * 8 + (6,), (6,) * 8 + (1,)))]
    write_zip(path("dims9.pth"), p_state_dict(pairs), ok_storages())
    body = p_int(2) + p_tensor("FloatStorage", "0", 6, 0, (6,), (1,))
    write_zip(path("keyint.pth"), b"\x80\x02}(" + body + b"u.", ok_storages())
    with zipfile.ZipFile(path("nopkl.pth"), "w") as z:
        z.writestr("archive/data/0", W_DATA)
        z.writestr("archive/version", b"3\n")
    with zipfile.ZipFile(path("nofolder.pth"), "w") as z:
        z.writestr("data.pkl", p_state_dict([]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate
        write_zip(path("dupentry.pth"), p_state_dict(ok_pairs()), ok_storages(),
                  extra=[("data/0", W_DATA)])
    # resource bombs: stack depth, memo index, object memory
    write_zip(path("bomb_stack.pth"), b"\x80\x02" + b"K\x00" * 70000 + b".", {})
    write_zip(path("bomb_memo.pth"), b"\x80\x02K\x00r\xff\xff\xff\xff.", {})
    write_zip(path("bomb_arena.pth"), b"\x80\x02}" + b"}}s" * 2500000 + b".", {})

    with open(path("notzip.pth"), "wb") as f:
        f.write(b"this is not a checkpoint\n")
    open(path("empty.pth"), "wb").close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: pth_gen.py OUTDIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    write_hostile(sys.argv[1])
    write_real(sys.argv[1])


if __name__ == "__main__":
    main()
