#!/usr/bin/env python3
"""The tensor-parallel loading pattern of SGLang and vLLM with the real safetensors library:
N ranks (default 8) at once, each opening every shard of a multi-shard model with
safe_open(framework="pt") and taking its 1/N of every tensor with get_slice (column-parallel
tensors split on dim 0, row-parallel ones - o_proj, down_proj - on dim 1, norms whole), as the
loaders' weight iterators do. Run on the local copy, then under the shim with a cold cache
(ossrun, against the local OSS emulator, the ranks launched at once), then warm.

Per case: wall seconds, origin bytes / model bytes (emulator /_admin/stats bytes_out), bytes under
OSSSHIM_CACHE_DIR (the shared cache, tmpfs) at the end; each rank's PSS growth from after its
imports to its peak (read from /proc/self/smaps_rollup after each shard, the shard still mapped),
summed over the ranks, with its anonymous, file and shmem parts; the peak of the ranks' summed PSS
(sampled every 20 ms, imports included) and of system memory in use (MemTotal - MemAvailable)
above its value before the case - both noisy on a shared machine; a baseline of N ranks that only
import torch and safetensors is printed for them. Every rank's digest of its slices must equal the
local run's (exit status 1 otherwise); --max-origin X fails the run when a shim case's origin
bytes exceed X times the model (the clients test uses it).

usage: tp_load.py [--size 1g] [--shards 4] [--ranks 8] [--python VENV_PYTHON] [--build build]
       tp_load.py rank R N DIR      (one rank; needs safetensors and torch)
The driver needs only the standard library; the ranks run under --python (default: the venv of
tools/install-deps.sh, ~/.cache/ossshim-venv or $OSSSHIM_VENV).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SELF = os.path.abspath(__file__)
MiB = 1 << 20
ROW_PARALLEL = ("o_proj", "down_proj")


def own_rollup():
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Pss:", "Pss_Anon:", "Pss_File:", "Pss_Shmem:"):
                out[parts[0][:-1]] = int(parts[1]) * 1024
    return out


def rank_main(r, n, d):
    import torch
    from safetensors import safe_open
    start = own_rollup()
    peak = dict(start)
    t0 = time.monotonic()
    h = hashlib.sha256()
    got = 0
    shards = sorted(f for f in os.listdir(d) if f.endswith(".safetensors")) if r >= 0 else []  # -1: imports only
    for name in shards:
        with safe_open(os.path.join(d, name), framework="pt") as f:
            for k in sorted(f.keys()):
                sl = f.get_slice(k)
                shape = sl.get_shape()
                if len(shape) == 2 and k.split(".")[-2] in ROW_PARALLEL:
                    step = (shape[1] + n - 1) // n
                    t = sl[:, r * step:min((r + 1) * step, shape[1])]
                elif len(shape) == 2:
                    step = (shape[0] + n - 1) // n
                    t = sl[r * step:min((r + 1) * step, shape[0])]
                else:
                    t = sl[:]
                t = t.contiguous()
                if t.dtype == torch.bfloat16:
                    t = t.view(torch.int16)
                b = t.numpy().tobytes()
                got += len(b)
                h.update(k.encode() + b)
            now = own_rollup()  # with the shard still open (mapped)
            peak = {k: max(v, now.get(k, 0)) for k, v in peak.items()}
    grown = {k: peak[k] - start[k] for k in start}
    print(json.dumps({"rank": r, "bytes": got, "digest": h.hexdigest(), "seconds": time.monotonic() - t0,
                      "grown": grown}), flush=True)


def make_model(d, size, shards, py):
    """A Llama-shaped bf16 model of about `size` bytes in `shards` files, written by safetensors."""
    code = r'''
import os, sys, torch
from safetensors.torch import save_file
d, size, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hidden, inter = 1024, 2816
per_layer = 2 * (hidden * hidden * 2 + hidden * 256 * 2 * 2 + 3 * hidden * inter) + 4 * hidden
vocab = 8192
layers = max(1, (size - 2 * 2 * vocab * hidden) // per_layer)
names = [("model.embed_tokens.weight", (vocab, hidden))]
for i in range(layers):
    p = f"model.layers.{i}."
    names += [(p + "self_attn.q_proj.weight", (hidden, hidden)), (p + "self_attn.k_proj.weight", (256, hidden)),
              (p + "self_attn.v_proj.weight", (256, hidden)), (p + "self_attn.o_proj.weight", (hidden, hidden)),
              (p + "mlp.gate_proj.weight", (inter, hidden)), (p + "mlp.up_proj.weight", (inter, hidden)),
              (p + "mlp.down_proj.weight", (hidden, inter)), (p + "input_layernorm.weight", (hidden,)),
              (p + "post_attention_layernorm.weight", (hidden,))]
names += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
g = torch.Generator().manual_seed(1)
per = (len(names) + shards - 1) // shards
for s in range(shards):
    part = {k: torch.randn(*shape, generator=g).to(torch.bfloat16) for k, shape in names[s * per:(s + 1) * per]}
    save_file(part, os.path.join(d, f"model-{s + 1:05d}-of-{shards:05d}.safetensors"), metadata={"format": "pt"})
print(layers)
'''
    os.makedirs(d, exist_ok=True)
    subprocess.run([py, "-c", code, d, str(size), str(shards)], check=True, stdout=subprocess.DEVNULL)


def parse_size(text):
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower()
    return int(float(t[:-1]) * mult[t[-1]]) if t[-1] in mult else int(t)


def mem_used():
    m = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            m[k] = int(v.split()[0]) * 1024
    return m["MemTotal"] - m["MemAvailable"]


def rollup(pid):
    """(Pss, Rss) of a process in bytes; (0, 0) once it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if parts[0] in ("Pss:", "Rss:"):
                    out[parts[0]] = int(parts[1]) * 1024
    except OSError:
        pass
    return out.get("Pss:", 0), out.get("Rss:", 0)


def tree_bytes(top):
    total = 0
    for root, _dirs, files in os.walk(top):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class Bench:
    def __init__(self, a):
        self.a = a
        self.errors = []
        self.work = tempfile.mkdtemp(prefix="ossshim-tp-")
        self.cache_dir = tempfile.mkdtemp(prefix="ossshim-tp-cache-", dir="/dev/shm")
        self.emu = None

    def cleanup(self):
        benchlib.stop_emulator(self.emu)
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def admin(self, method, what):
        req = urllib.request.Request(f"{self.endpoint}/_admin/{what}", method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body.strip().startswith(b"{") else {}

    def case(self, label, d, shim, baseline=False):
        a = self.a
        argv = [a.python, SELF, "rank"]
        pre = [os.path.join(a.build, "tools/ossrun/ossrun"), "--"] if shim else []
        self.admin("POST", "reset")
        base = mem_used()
        peak = {"pss": 0, "rss": 0, "mem": 0}
        t0 = time.monotonic()
        procs = [subprocess.Popen(pre + argv + [str(-1 if baseline else r), str(a.ranks), d], env=self.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for r in range(a.ranks)]
        done = threading.Event()

        def sample():
            while not done.is_set():
                pss = rss = 0
                for p in procs:
                    # ossrun execs the program: the rank is the process itself.
                    ps, rs = rollup(p.pid)
                    pss, rss = pss + ps, max(rss, rs)
                peak["pss"], peak["rss"] = max(peak["pss"], pss), max(peak["rss"], rss)
                peak["mem"] = max(peak["mem"], mem_used() - base)
                done.wait(0.02)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        outs = []
        for p in procs:
            try:
                o, e = p.communicate(timeout=a.timeout)
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                raise SystemExit(f"tp_load.py: {label}: a rank ran longer than {a.timeout}s")
            if p.returncode != 0:
                self.errors.append(f"{label}: a rank exited {p.returncode}: {e.strip()[-500:]}")
            outs.append(o)
        wall = time.monotonic() - t0
        done.set()
        th.join()
        ranks = {}
        for o in outs:
            for line in o.splitlines():
                if line.startswith("{"):
                    j = json.loads(line)
                    ranks[len(ranks) if baseline else j["rank"]] = j
        origin = self.admin("GET", "stats").get("bytes_out", 0)
        grown = {k: sum(j.get("grown", {}).get(k, 0) for j in ranks.values()) for k in ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem")}
        row = {"case": label, "wall": wall, "origin": origin / self.model, "cache": tree_bytes(self.cache_dir),
               "pss": peak["pss"], "rss": peak["rss"], "mem": peak["mem"], "ranks": ranks, "grown": grown}
        print(f"  {label:<22} {wall:7.2f} s  origin {row['origin']:.3f} x  cache {row['cache'] / MiB:7.1f} MiB  "
              f"ranks' PSS peak {peak['pss'] / MiB:7.1f} MiB  largest RSS {peak['rss'] / MiB:7.1f} MiB  "
              f"sys mem +{peak['mem'] / MiB:7.1f} MiB", flush=True)
        return row

    def run(self):
        a = self.a
        root = os.path.join(self.work, "root")
        local = os.path.join(root, "bkt", "tp-model")
        make_model(local, a.size, a.shards, a.python)
        self.model = sum(os.path.getsize(os.path.join(local, f)) for f in os.listdir(local))
        print(f"tp_load: model {self.model / MiB:.1f} MiB in {a.shards} shards, {a.ranks} ranks, "
              f"safe_open(framework='pt') + get_slice", flush=True)
        self.emu, self.endpoint = benchlib.start_emulator(a.build, root, self.work, "tp_load.py")
        self.env = dict(os.environ, OSSSHIM_ENDPOINT=self.endpoint, OSSSHIM_REGION="cn-hangzhou",
                        OSSSHIM_SIGNATURE="none", OSSSHIM_CACHE_DIR=self.cache_dir,
                        OSSSHIM_CACHE_SIZE=str(max(int(self.model * 1.5), 128 * MiB)), OMP_NUM_THREADS="1")
        for k in ("OSSSHIM_CONFIG", "OSSSHIM_PREFIX", "OSSSHIM_CHUNK_SIZE"):
            self.env.pop(k, None)
        for f in sorted(os.listdir(local)):  # the emulator computes each CRC64 on first access: untimed
            urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/bkt/tp-model/{f}", method="HEAD"),
                                   timeout=60).close()
        rows = [self.case("imports only (baseline)", local, False, baseline=True),
                self.case("local copy", local, False),
                self.case("shim, cold cache", "/oss/bkt/tp-model", True),
                self.case("shim, warm relaunch", "/oss/bkt/tp-model", True)]
        base = rows.pop(0)
        ref = rows[0]["ranks"]
        if len(ref) != a.ranks:
            self.errors.append(f"local copy: {len(ref)} of {a.ranks} ranks reported")
        for row in rows[1:]:
            for r in range(a.ranks):
                if row["ranks"].get(r, {}).get("digest") != ref.get(r, {}).get("digest"):
                    self.errors.append(f"{row['case']}: rank {r}'s slices differ from the local copy's")
        if a.max_origin is not None and rows[1]["origin"] > a.max_origin:
            self.errors.append(f"shim, cold cache: origin {rows[1]['origin']:.3f} x the model > {a.max_origin}")
        m = self.model
        print("\n| case | wall s | origin / model | shared cache / model | ranks' PSS growth / model (anon, file, shmem) | "
              "ranks' PSS peak, MiB | sys mem peak, MiB |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            g = r["grown"]
            print(f"| {r['case']} | {r['wall']:.2f} | {r['origin']:.3f} | {r['cache'] / m:.2f} | {g['Pss'] / m:.2f} "
                  f"({g['Pss_Anon'] / m:.2f}, {g['Pss_File'] / m:.2f}, {g['Pss_Shmem'] / m:.2f}) | {r['pss'] / MiB:.0f} | "
                  f"{r['mem'] / MiB:.0f} |")
        print(f"(baseline: {a.ranks} ranks that only import torch and safetensors: PSS {base['pss'] / MiB:.1f} MiB, "
              f"sys mem +{base['mem'] / MiB:.1f} MiB)")
        print(f"(model {self.model / MiB:.1f} MiB; every rank's slices equal the local copy's: "
              f"{'yes' if not self.errors else 'NO'})")
        for e in self.errors:
            print("tp_load.py: " + e, file=sys.stderr)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "rank":
        rank_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    venv = os.environ.get("OSSSHIM_VENV", os.path.expanduser("~/.cache/ossshim-venv"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=parse_size("1g"), help="model bytes, about (default 1g)")
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--ranks", type=int, default=8)
    p.add_argument("--python", default=os.path.join(venv, "bin/python"), help="the ranks' interpreter")
    p.add_argument("--build", default=os.path.join(REPO, "build"))
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--max-origin", type=float, help="fail if the cold shim case's origin bytes exceed this x the model")
    a = p.parse_args()
    return benchlib.run(Bench(a), "tp_load.py", "partial figures above")


if __name__ == "__main__":
    sys.exit(main())
