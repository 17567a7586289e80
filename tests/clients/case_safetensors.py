"""safetensors (the Rust library) on a directory: `save DIR` writes files with save_file (numpy
and torch, every common dtype, multi-MiB tensors that cross the shim's chunks) and with
save_model; `read DIR` reads them back with safe_open (framework np and pt), get_tensor,
get_slice for 8 tensor-parallel ranks (rows and columns), load_file and load(bytes), printing a
checksum of every result."""
import hashlib
import os
import sys

import numpy as np
import safetensors
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import load as pt_load
from safetensors.torch import load_file as pt_load_file
from safetensors.torch import save_file as pt_save_file

RANKS = 8


def digest(t):
    if isinstance(t, torch.Tensor):
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        t = t.numpy()
    return f"{t.dtype}{list(t.shape)}:{hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest()[:16]}"


def save(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    arrays = {"f32": rng.standard_normal((64, 48), dtype=np.float32),
              "f16": rng.standard_normal((33, 17)).astype(np.float16),
              "f64": rng.standard_normal((5,)),
              "i64": rng.integers(-2**40, 2**40, size=(100,), dtype=np.int64),
              "u8": rng.integers(0, 255, size=(7, 5, 3), dtype=np.uint8),
              "bool": rng.integers(0, 2, size=(10,)).astype(bool),
              "empty": np.zeros((0, 4), dtype=np.float32)}
    np_save_file(arrays, os.path.join(d, "np.safetensors"), metadata={"source": "numpy"})
    g = torch.Generator().manual_seed(7)
    tensors = {"embed.weight": torch.randn(2048, 1024, generator=g),             # 8 MiB
               "layers.0.qkv.weight": torch.randn(768, 256, generator=g).to(torch.bfloat16),
               "layers.0.o.weight": torch.randn(256, 256, generator=g).half(),
               "layers.0.norm.weight": torch.randn(256, generator=g),
               "lm_head.weight": torch.randn(1000, 640, generator=g),             # 2.4 MiB, odd rows
               "step": torch.tensor(12345, dtype=torch.int64),
               "mask": torch.rand(17, 3, generator=g) > 0.5,
               "int8": torch.randint(-128, 127, (99, 7), generator=g, dtype=torch.int8)}
    pt_save_file(tensors, os.path.join(d, "pt.safetensors"), metadata={"format": "pt"})
    torch.manual_seed(7)
    safetensors.torch.save_model(torch.nn.Linear(300, 200).requires_grad_(False), os.path.join(d, "model.safetensors"))
    for name in sorted(os.listdir(d)):
        print(name, os.path.getsize(os.path.join(d, name)))


def slices(sl):
    shape = sl.get_shape()
    out = []
    if len(shape) >= 1 and shape[0] > 0:
        rows = (shape[0] + RANKS - 1) // RANKS
        out += [digest(sl[r * rows:min((r + 1) * rows, shape[0])]) for r in range(RANKS) if r * rows < shape[0]]
    if len(shape) >= 2 and shape[0] > 0:
        cols = (shape[1] + RANKS - 1) // RANKS
        out += [digest(sl[:, r * cols:min((r + 1) * cols, shape[1])]) for r in range(RANKS) if r * cols < shape[1]]
        if shape[0] >= 3 and shape[1] >= 9:
            out.append(digest(sl[1:3, 5:9]))
    return out


def read(d):
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        for fw in ("np", "pt"):
            with safe_open(path, framework=fw) as f:
                print(name, fw, f.metadata(), sorted(f.keys()))
                for k in sorted(f.keys()):
                    if fw == "np" and name != "np.safetensors" and "bf" in str(f.get_slice(k).get_dtype()).lower():
                        continue  # numpy has no bfloat16
                    sl = f.get_slice(k)
                    print(" ", k, sl.get_dtype(), sl.get_shape(), digest(f.get_tensor(k)), *slices(sl))
        if name != "np.safetensors":
            whole = pt_load_file(path)
            with open(path, "rb") as f:
                data = f.read()
            fromb = pt_load(data)
            print(name, "load_file", [(k, digest(v)) for k, v in sorted(whole.items())])
            print(name, "load(bytes)", all(torch.equal(whole[k], fromb[k]) for k in whole))
        else:
            print(name, "numpy load_file", [(k, digest(v)) for k, v in sorted(np_load_file(path).items())])


{"save": save, "read": read}[sys.argv[1]](sys.argv[2])
