#!/usr/bin/env python3
"""Writes a synthetic safetensors model: SHARDS files of about SIZE bytes in total.

Layout of each shard (the safetensors format): 8-byte little-endian header length, a JSON header
mapping tensor names to dtype/shape/data_offsets (plus "__metadata__"), then the raw tensor bytes.
Data are deterministic (seeded), so runs are comparable. Standard library only.

usage: make_model.py DIR [--size 1g] [--shards 4] [--seed 1]
"""
import argparse
import json
import os
import random
import re
import struct
import sys


def parse_size(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?", text.strip().lower())
    if not m:
        sys.exit(f"make_model.py: bad size '{text}' (expected e.g. 512m, 1g)")
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)])


def write_shard(path, tensors, rng):
    header = {"__metadata__": {"format": "pt", "generator": "ossshim make_model.py"}}
    offset = 0
    for name, rows, cols in tensors:
        nbytes = rows * cols * 2  # F16
        header[name] = {"dtype": "F16", "shape": [rows, cols], "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # tensor data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, rows, cols in tensors:
            left = rows * cols * 2
            while left:
                n = min(left, 8 << 20)
                f.write(rng.randbytes(n))
                left -= n
    return 8 + len(raw) + offset


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--size", default="1g", help="total bytes, e.g. 512m, 1g (default 1g)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    total = parse_size(args.size)
    if args.shards < 1 or total < args.shards * (1 << 20):
        sys.exit("make_model.py: need at least 1 MiB per shard")
    os.makedirs(args.dir, exist_ok=True)
    rng = random.Random(args.seed)
    per_shard = total // args.shards
    cols = 4096
    layer = 0
    written = 0
    for s in range(args.shards):
        tensors = []
        budget = per_shard
        while budget >= cols * 2:
            rows = min(max(1, budget // (cols * 2)), 4096)
            for part in ("attn.qkv", "mlp.up")[: 1 if rows < 2048 else 2]:
                r = rows // (1 if rows < 2048 else 2)
                tensors.append((f"model.layers.{layer}.{part}.weight", r, cols))
                budget -= r * cols * 2
            layer += 1
        name = f"model-{s + 1:05d}-of-{args.shards:05d}.safetensors"
        written += write_shard(os.path.join(args.dir, name), tensors, rng)
    with open(os.path.join(args.dir, "config.json"), "w") as f:
        json.dump({"model_type": "synthetic", "num_hidden_layers": layer, "torch_dtype": "float16"}, f)
    print(f"make_model.py: {args.shards} shards, {layer} layers, {written} bytes in {args.dir}")


if __name__ == "__main__":
    main()
