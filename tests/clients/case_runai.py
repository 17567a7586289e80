"""runai-model-streamer (its C++ reader, through the shim) on safetensors files under a
directory: `save DIR` writes two shards with safetensors; `read DIR` streams them with
SafetensorsStreamer (stream_file, then stream_files over both) and prints a checksum of every
tensor, next to the same tensors read with safe_open. Under the shim the streamer needs
RUNAI_STREAMER_FS_STRATEGY=sync_buffered (pread): its default, io_uring_direct, submits reads on
the shim's descriptor straight to the kernel, which answers EBADF (see clients.sh)."""
import hashlib
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def digest(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return f"{t.dtype}{list(t.shape)}:{hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]}"


def save(d):
    g = torch.Generator().manual_seed(3)
    save_file({"embed.weight": torch.randn(1500, 1024, generator=g),
               "norm.weight": torch.randn(1024, generator=g)}, os.path.join(d, "model-00001-of-00002.safetensors"))
    save_file({"layers.0.mlp.weight": torch.randn(2048, 512, generator=g).to(torch.bfloat16),
               "layers.0.bias": torch.randn(3, generator=g).half()}, os.path.join(d, "model-00002-of-00002.safetensors"))
    print(sorted(os.listdir(d)))


def read(d):
    import runai_model_streamer
    from runai_model_streamer import SafetensorsStreamer
    files = sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".safetensors"))
    ref = {}
    for f in files:
        with safe_open(f, framework="pt") as s:
            ref.update({k: digest(s.get_tensor(k)) for k in s.keys()})
    got = {}
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(files[0])
        for name, t in streamer.get_tensors():
            got[name] = digest(t)
    print("stream_file", sorted(got.items()))
    got = {}
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(files)
        for name, t in streamer.get_tensors():
            got[name] = digest(t)
    print("stream_files", sorted(got.items()))
    print("same as safe_open", got == ref)
    from importlib.metadata import version
    print("runai-model-streamer", version("runai-model-streamer"), os.environ.get("RUNAI_STREAMER_FS_STRATEGY"))


{"save": save, "read": read}[sys.argv[1]](sys.argv[2])
