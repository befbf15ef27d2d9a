#!/usr/bin/env python3
"""Write the seed corpus for fuzz/fuzz_wfile.c: small seer weight files built
from weights/FORMAT.md alone (an independent writer, so the document is
checked too), plus damaged variants. usage: make_wfile_corpus.py OUTDIR"""
import os
import struct
import sys
import zlib

HEADER, ENTRY, ALIGN = 128, 96, 64


def align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def build(tensors, arch=b"resnet18", model=b"corpus", version=1):
    """tensors: list of (name, dims, float values)."""
    table_end = HEADER + ENTRY * len(tensors)
    data_off = align(table_end)
    data = b""
    entries = b""
    for name, dims, values in tensors:
        start = align(len(data))
        data += b"\0" * (start - len(data))
        payload = struct.pack("<%df" % len(values), *values)
        entries += struct.pack("<56sII4IQQ", name, 1, len(dims), *(list(dims) + [0] * (4 - len(dims))),
                               start, len(payload))
        data += payload
    data += b"\0" * (align(len(data)) - len(data))
    file_bytes = data_off + len(data)
    head = struct.pack("<8sIIIIQQQQII16s48s", b"SEERWGTS", version, HEADER, ENTRY, len(tensors),
                       HEADER, data_off, len(data), file_bytes, 0, 0, arch, model)
    meta = head + entries + b"\0" * (data_off - table_end)
    meta_crc = zlib.crc32(meta)
    data_crc = zlib.crc32(data)
    meta = meta[:56] + struct.pack("<II", meta_crc, data_crc) + meta[64:]
    return meta + data


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    small = [(b"fc.bias", [4], [0.5, -1.0, 2.0, 3.5]), (b"layer.w", [2, 3], [float(i) for i in range(6)])]
    files = {
        "valid-small.seer": build(small),
        "valid-other-arch.seer": build(small, arch=b"resnet34"),
        "version2.seer": build(small, version=2),
        "one-tensor.seer": build([(b"conv1.bias", [64], [0.0] * 64)]),
        "wrong-shape-conv1.seer": build([(b"conv1.bias", [63], [0.0] * 63),
                                         (b"conv1.weight", [64, 3, 7, 7], [0.01] * (64 * 3 * 49))]),
    }
    good = files["valid-small.seer"]
    files["truncated-header.seer"] = good[:100]
    files["truncated-data.seer"] = good[:-10]
    files["flipped-table.seer"] = good[:140] + bytes([good[140] ^ 1]) + good[141:]
    files["empty.seer"] = b""
    files["zip-magic.seer"] = b"PK\x03\x04" + good[4:]
    for name, blob in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
