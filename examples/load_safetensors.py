#!/usr/bin/env python3
"""Loads a safetensors model the way a tensor-parallel rank does: mmaps every shard, parses the
header (8-byte little-endian length, JSON), and reads its 1/RANKS slice of every tensor's bytes.
Prints one line: rank, tensors, bytes touched, seconds, and a checksum of the slices (equal
runs give equal checksums, whether the model is local or under the shim). Standard library only.

usage: load_safetensors.py MODEL_DIR [--rank R] [--ranks N]
"""
import argparse
import glob
import hashlib
import json
import mmap
import os
import struct
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--ranks", type=int, default=1)
    args = ap.parse_args()
    shards = sorted(glob.glob(os.path.join(args.model_dir, "*.safetensors")))
    if not shards:
        raise SystemExit(f"load_safetensors.py: no *.safetensors in {args.model_dir}")
    start = time.monotonic()
    digest, tensors, touched = hashlib.sha256(), 0, 0
    for shard in shards:
        with open(shard, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        (n,) = struct.unpack("<Q", m[:8])
        header = json.loads(m[8:8 + n])
        for name in sorted(k for k in header if k != "__metadata__"):
            lo, hi = header[name]["data_offsets"]
            part = (hi - lo) // args.ranks
            a = 8 + n + lo + part * args.rank
            b = 8 + n + hi if args.rank == args.ranks - 1 else a + part
            digest.update(m[a:b])
            tensors += 1
            touched += b - a
        m.close()
    took = time.monotonic() - start
    print(f"rank {args.rank}/{args.ranks}: {tensors} tensors from {len(shards)} shards, "
          f"{touched / 2**20:.1f} MiB in {took:.2f} s, sha256 {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
