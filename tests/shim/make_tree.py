#!/usr/bin/python3
"""Builds the bucket the shim tests read: ROOT/bkt/... with every kind of data the read path must
serve (text, binary across chunk boundaries, empty, odd names, deep nesting, many small files,
archives, JSON, SQLite, numpy, torch, safetensors, and a sparse multi-GB object).
Deterministic: the same bytes on every run. Needs Debian's python3 (numpy, torch)."""
import io, json, os, random, sqlite3, struct, sys, tarfile, zipfile

root = os.path.join(sys.argv[1], "bkt")
huge = int(sys.argv[2]) if len(sys.argv) > 2 else 3 << 30
rng = random.Random(20261125)


def put(rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


put("text/hello.txt", b"hello, oss\n")
put("text/lorem.txt", ("".join(f"line {i}: lorem ipsum dolor sit amet\n" for i in range(5000))).encode())
put("bin/random-5m.bin", rng.randbytes(5 << 20))
put("bin/odd-size.bin", rng.randbytes((3 << 20) + 12345))  # not a multiple of any chunk size
put("empty.dat", b"")
put("names/with space.txt", b"space\n")
put("names/ünïcødé-文件.txt", "non-ascii ✓\n".encode())
put("names/plus+and%percent&amp.txt", b"specials\n")
put("names/#hash?query=1.txt", b"hash\n")
put("deep/a/b/c/d/e/f/g/h/i/j/leaf.txt", b"deep leaf\n")
for i in range(150):
    put(f"many/f{i:03d}.txt", f"small file {i}\n".encode() * (i % 7 + 1))

put("data/config.json", json.dumps({"model": "demo", "layers": 4, "dims": [1, 2, 3]}, indent=2).encode())

zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("inner/a.txt", "zip member a\n" * 100)
    z.writestr("b.bin", rng.randbytes(100000))
put("data/archive.zip", zbuf.getvalue())
tbuf = io.BytesIO()
with tarfile.open(fileobj=tbuf, mode="w:gz") as t:
    for name, payload in [("t/one.txt", b"one\n"), ("t/two.bin", rng.randbytes(50000))]:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        info.mtime = 1700000000
        t.addfile(info, io.BytesIO(payload))
put("data/archive.tar.gz", tbuf.getvalue())

db = put("data/table.sqlite", b"")
os.remove(db)
con = sqlite3.connect(db)
con.execute("create table t(id integer primary key, name text, value real)")
con.executemany("insert into t values(?,?,?)", [(i, f"row{i}", i * 0.5) for i in range(20000)])
con.commit()
con.close()

import numpy as np
import torch

np.save(os.path.join(root, "data/array.npy"), np.arange(1 << 20, dtype=np.float32).reshape(1024, 1024))
torch.manual_seed(0)
torch.save({"w": torch.randn(256, 256), "b": torch.arange(256, dtype=torch.int64)}, os.path.join(root, "data/state.pt"))

# safetensors: 8-byte little-endian header length, JSON header, raw tensor bytes.
tensors, offset, blobs = {}, 0, []
for name, shape in [("embed.weight", (512, 256)), ("layer0.weight", (256, 256)), ("layer0.bias", (256,))]:
    arr = np.random.default_rng(len(name)).standard_normal(shape).astype(np.float32)
    raw = arr.tobytes()
    tensors[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
header = json.dumps(tensors).encode()
header += b" " * (-len(header) % 8)
put("model/model.safetensors", struct.pack("<Q", len(header)) + header + b"".join(blobs))

# A sparse multi-GB object with marks at known offsets: reading it sparsely must fetch little.
path = put("sparse/huge.bin", b"")
with open(path, "r+b") as f:
    f.truncate(huge)
    for off in (0, 1 << 20, (1 << 30) + 7, huge - 4096):
        f.seek(off)
        f.write(f"mark@{off}".encode())
