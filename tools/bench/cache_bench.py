#!/usr/bin/env python3
"""Benchmark of ossshim's node-wide shared cache: what N processes reading one model cost.

Builds a synthetic safetensors model (examples/make_model.py), serves it from the local OSS
emulator and runs, one after another in this invocation:

  (a)  1 reader reading every shard sequentially through the shim (cold cache)
  (b)  N readers doing the same at once (cold)
  (c)  N tensor-parallel ranks (examples/load_safetensors.py --rank r --ranks N) at once (cold)
  (d)  (c) again without clearing the cache (warm relaunch)
  (e)  baselines: aria2c downloading the shards from the emulator; the local model read from the
       page cache by cat, by the reader (1 and N processes) and by the N ranks
  then (a), (b), (c) again with the emulator's bandwidth cap and first-byte latency.

The reader is this file's `read` mode: a Python process reading each shard with 8 MiB readinto
calls and checksumming the bytes (crc32 by default, --checksum). Every case's checksums are
compared with the same program on the local copy; a mismatch is an error (exit status 1).

Per case: wall seconds, GB/s (model bytes / wall: per model, not per process), origin bytes /
model bytes (emulator /_admin/stats bytes_out, reset before the case), CPU seconds of the case's
processes (user+sys from wait4), of the emulator and of anything else on the machine meanwhile,
the largest process's peak RSS, bytes under OSSSHIM_CACHE_DIR at the end of the case, the peak of
system memory in use (MemTotal - MemAvailable, sampled every 50 ms) above its value before the
case, and the peak of the case's processes' Pss_Anon plus the cache directory. Ends with Markdown
tables of the figures and of the targets, each marked met or missed (README.md, "Benchmark:
shared cache").

usage: cache_bench.py [--size 4g] [--shards 4] [--procs 8] [--cache-size 1.5x] [--cap 250m]
                      [--latency-ms 10] [--timeout 600] [--build build] ...
       cache_bench.py read [--checksum crc32|sha256|none] FILE...   (the reader)
Standard library only.
"""
import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SELF = os.path.abspath(__file__)
MiB = 1 << 20
READ_BLOCK = 8 << 20


# ---------------------------------------------------------------------------------------------
# The reader (runs as a child, under the shim or on the local copy)

def checksum_files(paths, algo):
    """Reads the files in order with 8 MiB readinto calls; returns (bytes, hex checksum)."""
    buf = bytearray(READ_BLOCK)
    view = memoryview(buf)
    sha = hashlib.sha256() if algo == "sha256" else None
    crc = 0
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                if sha is not None:
                    sha.update(view[:n])
                elif algo == "crc32":
                    crc = zlib.crc32(view[:n], crc)
                total += n
    if sha is not None:
        return total, sha.hexdigest()[:16]
    return total, f"{crc:08x}" if algo == "crc32" else "-"


def reader_main(argv):
    ap = argparse.ArgumentParser(prog="cache_bench.py read")
    ap.add_argument("--checksum", choices=("crc32", "sha256", "none"), default="crc32")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    total, digest = checksum_files(a.files, a.checksum)
    print(f"bytes {total} {a.checksum} {digest}")


# ---------------------------------------------------------------------------------------------
# Helpers

def parse_size(text):
    """Sizes as ossshim and the emulator read them: k/m/g/t are powers of 1024."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", str(text).strip().lower())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size '{text}' (expected e.g. 512m, 4g, 1.5g)")
    return int(float(m.group(1)) * (1024 ** " kmgt".index(m.group(2) or " ")))


def human(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}".replace(".00 ", " ")
    return f"{n} B"


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    return out


def mem_used():
    m = meminfo()
    return m["MemTotal"] - m["MemAvailable"]


def tree_bytes(top):
    """Bytes allocated under top (st_blocks * 512, hard links counted once); 0 if missing."""
    seen, total = set(), 0
    if not os.path.lexists(top):
        return 0
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def proc_cpu(pid):
    """user+sys seconds of a running process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def anon_pss(pid):
    """Proportional share of the process's anonymous memory (Pss_Anon), bytes; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def self_cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_busy():
    """Seconds all CPUs of the machine spent busy (not idle, not waiting for I/O)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


class MemSampler(threading.Thread):
    """Every 50 ms: system memory in use (MemTotal - MemAvailable), Shmem, and the case's own memory
    (its processes' Pss_Anon + the bytes under the cache directory). Calls on_low once if
    MemAvailable drops below min_free."""

    def __init__(self, min_free, on_low, pids, cache_dir):
        super().__init__(daemon=True)
        self.base = mem_used()
        self.base_shmem = meminfo()["Shmem"]
        self.peak = self.base
        self.peak_shmem = self.base_shmem
        self.peak_case = 0
        self.min_free = min_free
        self.on_low = on_low
        self.pids = pids
        self.cache_dir = cache_dir
        self.low = False
        self.halt = threading.Event()

    def sample(self):
        m = meminfo()
        self.peak = max(self.peak, m["MemTotal"] - m["MemAvailable"])
        self.peak_shmem = max(self.peak_shmem, m["Shmem"])
        own = sum(anon_pss(p) for p in self.pids()) + (tree_bytes(self.cache_dir) if self.cache_dir else 0)
        self.peak_case = max(self.peak_case, own)
        return m

    def run(self):
        while not self.halt.is_set():
            m = self.sample()
            if m["MemAvailable"] < self.min_free and not self.low:
                self.low = True
                self.on_low()
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join()
        self.sample()
        return self.peak - self.base


class Bench:
    def __init__(self, args):
        self.a = args
        self.live = set()          # pids of running children (each leads its own process group)
        self.live_lock = threading.Lock()
        self.emu = None
        self.work = None
        self.shm_parent = None
        self.errors = []
        self.rows = []
        self.ref = {}              # local reference checksums

    # -- processes --------------------------------------------------------------------------

    def spawn(self, argv, env, out, err):
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             start_new_session=True)
        with self.live_lock:
            self.live.add(p.pid)
        return p

    def kill_all(self):
        with self.live_lock:
            pids = list(self.live)
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def run_procs(self, argvs, env, timeout, discard_stdout=False):
        """Starts every argv at once; waits (bounded). Returns wall, per-process results, note."""
        outs = []
        procs = []
        results = [None] * len(argvs)
        note = []

        def live_pids():
            with self.live_lock:
                return list(self.live)

        sampler = MemSampler(self.a.min_free, lambda: (note.append("killed: MemAvailable below --min-free"),
                                                       self.kill_all()), live_pids, self.cache_dir)
        sampler.start()
        threads = []

        def reap(i, p):
            # Wait without reaping, forget the pid, then reap: kill_all never signals a reused pid.
            os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
            end = time.monotonic()
            with self.live_lock:
                self.live.discard(p.pid)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            results[i] = (p.returncode, ru, end)

        start = time.monotonic()
        try:
            for i, argv in enumerate(argvs):
                o = open(os.devnull if discard_stdout else os.path.join(self.work, f"out.{len(self.rows)}.{i}"),
                         "w+", errors="replace")
                e = open(os.path.join(self.work, f"err.{len(self.rows)}.{i}"), "w+", errors="replace")
                outs.append((o, e))
                p = self.spawn(argv, env, o, e)
                procs.append(p)
                t = threading.Thread(target=reap, args=(i, p), daemon=True)
                t.start()
                threads.append(t)
            deadline = start + timeout
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            if any(t.is_alive() for t in threads):
                note.append(f"killed: timeout after {timeout:g} s")
                self.kill_all()
                for t in threads:
                    t.join()
        except BaseException:
            self.kill_all()
            raise
        finally:
            mem_delta = sampler.stop()
        ends = [r[2] for r in results if r]
        wall = (max(ends) if ends else time.monotonic()) - start
        per = []
        for (o, e), r in zip(outs, results):
            o.seek(0)
            e.seek(0)
            per.append({"rc": r[0], "ru": r[1], "out": o.read(), "err": e.read()})
            o.close()
            e.close()
        shmem_delta = sampler.peak_shmem - sampler.base_shmem
        return wall, per, note, mem_delta, shmem_delta, sampler.peak_case

    # -- emulator ---------------------------------------------------------------------------

    def admin(self, method, what):
        req = urllib.request.Request(f"{self.endpoint}/_admin/{what}", method=method,
                                     data=b"" if method in ("POST", "PUT") else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def start_emulator(self):
        self.emu, self.endpoint = benchlib.start_emulator(self.build, os.path.join(self.work, "root"), self.work, "cache_bench.py")

    def stop_emulator(self):
        benchlib.stop_emulator(self.emu)

    # -- cases ------------------------------------------------------------------------------

    def case(self, key, label, argvs, *, env=None, cold=False, capped=False, check=None, after=None,
             discard_stdout=False):
        a = self.a
        env = env or self.env
        if cold:
            shutil.rmtree(self.cache_dir, ignore_errors=True)
        self.admin("POST", "reset")
        emu_cpu, busy, me = proc_cpu(self.emu.pid), cpu_busy(), self_cpu()
        wall, per, note, mem_delta, shmem_delta, case_mem = self.run_procs(argvs, env, a.timeout, discard_stdout)
        emu_cpu, busy, me = proc_cpu(self.emu.pid) - emu_cpu, cpu_busy() - busy, self_cpu() - me
        origin = self.admin("GET", "stats").get("bytes_out", 0)
        shm = tree_bytes(self.cache_dir)
        cpu = sum(p["ru"].ru_utime + p["ru"].ru_stime for p in per if p["ru"])
        rss = max((p["ru"].ru_maxrss * 1024 for p in per if p["ru"]), default=0)
        status = "ok"
        failed = [i for i, p in enumerate(per) if p["rc"] != 0]
        if note or failed:
            status = "; ".join(note + [f"process {i} exit {per[i]['rc']}" +
                                       (f": {per[i]['err'].strip()[-300:]}" if per[i]["err"].strip() else "")
                                       for i in failed[:3]])
            self.error(f"{key} {label}: {status}")
            status = "FAILED"
        elif check:
            bad = check(per)
            if bad:
                self.error(f"{key} {label}: checksum mismatch: {bad}")
                status = "MISMATCH"
        if after:
            after(status == "ok")
        notes = []
        said = {}
        for p in per:
            for line in p["err"].splitlines():
                line = re.sub(r"^ossshim\[\d+\]", "ossshim", line.strip())
                if line and " -> http" not in line:  # the shim's start-up line at OSSSHIM_LOG=info
                    said[line] = said.get(line, 0) + 1
        for line, count in sorted(said.items(), key=lambda kv: -kv[1])[:4]:
            notes.append(f"stderr{f' ({count} x)' if count > 1 else ''}: {line[:240]}")
        if len(said) > 4:
            notes.append(f"... and {len(said) - 4} other stderr lines")
        if shmem_delta > shm + 64 * MiB:
            notes.append(f"Shmem grew by {human(shmem_delta)} at peak but the cache directory holds {human(shm)}: "
                         "shared memory used elsewhere?")
        other = max(0.0, busy - cpu - emu_cpu - me)
        ncpu = os.cpu_count() or 1
        if other > 0.1 * wall * ncpu and other > 0.2:
            notes.append(f"other processes on this machine used {other:.1f} CPU s meanwhile "
                         f"({other / wall / ncpu * 100:.0f}% of its CPUs): figures disturbed")
        row = dict(key=key, label=label, procs=len(argvs), wall=wall, gbps=self.model / wall / 1e9,
                   origin=origin / self.model, cpu=cpu, emu_cpu=emu_cpu, other_cpu=other, rss=rss, shm=shm,
                   mem=mem_delta, case_mem=case_mem,
                   capped=capped, status=status, outs=[p["out"] for p in per])
        if capped:
            row["of_cap"] = self.model / wall / self.cap
        self.rows.append(row)
        self.print_row(row)
        for line in notes:
            print(f"    note: {line}", flush=True)
        return row

    def error(self, msg):
        self.errors.append(msg)
        print(f"cache_bench.py: error: {msg}", file=sys.stderr, flush=True)

    HEAD = (f"{'case':<42} {'procs':>5} {'wall s':>7} {'GB/s':>6} {'origin/model':>12} {'CPU s':>6} "
            f"{'emu':>5} {'other':>5} {'max RSS':>9} {'shm':>9} {'sys mem Δ':>10} {'anon+cache':>10} {'÷cap':>5}  check")

    def print_row(self, r):
        cap = f"{r['of_cap']:.2f}" if "of_cap" in r else "-"
        print(f"{r['key'] + ' ' + r['label']:<42} {r['procs']:>5} {r['wall']:>7.2f} {r['gbps']:>6.2f} "
              f"{r['origin']:>12.2f} {r['cpu']:>6.1f} {r['emu_cpu']:>5.1f} {r['other_cpu']:>5.1f} "
              f"{r['rss'] / MiB:>5.0f} MiB {r['shm'] / MiB:>5.0f} MiB {r['mem'] / MiB:>6.0f} MiB "
              f"{r['case_mem'] / MiB:>6.0f} MiB {cap:>5}  {r['status']}", flush=True)

    # -- checks -----------------------------------------------------------------------------

    def check_reader(self, per):
        want = self.ref["reader"]
        bad = [f"process {i}: '{p['out'].strip()}' != '{want}'" for i, p in enumerate(per) if p["out"].strip() != want]
        return "; ".join(bad[:3])

    def check_ranks(self, per):
        bad = []
        for r, p in enumerate(per):
            m = re.search(r"sha256 ([0-9a-f]+)", p["out"])
            if not m or m.group(1) != self.ref["ranks"][r]:
                bad.append(f"rank {r}: {m.group(1) if m else p['out'].strip()!r} != {self.ref['ranks'][r]}")
        return "; ".join(bad[:3])

    # -- the run ----------------------------------------------------------------------------

    def run(self):
        a = self.a
        self.build = a.build if os.path.isabs(a.build) else os.path.join(REPO, a.build)
        ossrun = os.path.join(self.build, "tools/ossrun/ossrun")
        for exe in (ossrun, os.path.join(self.build, "tools/emulator/oss-emulator")):
            if not os.access(exe, os.X_OK):
                raise SystemExit(f"cache_bench.py: {exe} missing: build first (ninja -C {a.build})")
        aria2c = shutil.which("aria2c")
        self.work = tempfile.mkdtemp(prefix="ossshim-bench-", dir=a.work_dir)
        self.shm_parent = tempfile.mkdtemp(prefix=f"ossshim-bench-{os.getpid()}-", dir="/dev/shm")
        self.cache_dir = os.path.join(self.shm_parent, "cache")
        model_dir = os.path.join(self.work, "root/models/bench-model")

        print(f"cache_bench.py: work dir {self.work}, cache dir {self.cache_dir}", flush=True)
        subprocess.run([a.python, os.path.join(REPO, "examples/make_model.py"), model_dir, "--size", a.size,
                        "--shards", str(a.shards)], check=True, timeout=max(a.timeout, 3600), stdout=subprocess.DEVNULL)
        names = sorted(n for n in os.listdir(model_dir) if n.endswith(".safetensors"))
        local = [os.path.join(model_dir, n) for n in names]
        virtual = [f"/oss/models/bench-model/{n}" for n in names]
        self.model = sum(os.path.getsize(p) for p in local)
        # The shim's shared cache needs at least 8 chunks (64 MiB at the default chunk size).
        cache_size = a.cache_size if a.cache_size is not None else max(int(self.model * 1.5), 128 * MiB)
        self.cap = parse_size(a.cap)
        avail = meminfo()["MemAvailable"]
        if 2.5 * self.model > avail:
            print(f"  warning: MemAvailable {human(avail)} < 2.5 x the model: the local copy in the page cache "
                  f"and the shared cache may not both fit", flush=True)

        self.start_emulator()
        self.env = dict(os.environ, OSSSHIM_ENDPOINT=self.endpoint, OSSSHIM_REGION="cn-hangzhou",
                        OSS_ACCESS_KEY_ID="test-ak", OSS_ACCESS_KEY_SECRET="test-sk",
                        OSSSHIM_CACHE_DIR=self.cache_dir, OSSSHIM_CACHE_SIZE=str(cache_size))
        # The emulator computes each object's CRC64 once, on first access: do it now, untimed.
        for n in names:
            req = urllib.request.Request(f"{self.endpoint}/models/bench-model/{n}", method="HEAD")
            urllib.request.urlopen(req, timeout=a.timeout).close()

        try:
            rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                                 text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            rev = "?"
        self.setup_line = (f"model {len(names)} shards, {human(self.model)}; {a.procs} processes; "
                           f"cache {human(cache_size)}; cap {human(self.cap)}/s + {a.latency_ms} ms first byte; "
                           f"reader: python, 8 MiB readinto, {a.checksum}; {os.cpu_count()} CPUs, "
                           f"{human(meminfo()['MemTotal'])} RAM; build {a.build} @ {rev}")
        print(self.setup_line)
        print(f"GB/s = model bytes / wall (per model, not per process); {self.endpoint}\n")
        print(self.HEAD, flush=True)

        n = a.procs
        reader = [a.python, SELF, "read", "--checksum", a.checksum]
        ranks = lambda d: [[a.python, os.path.join(REPO, "examples/load_safetensors.py"), d, "--rank", str(r),
                            "--ranks", str(n)] for r in range(n)]
        shim = [ossrun, "--"]

        # (e) local baselines: the page cache (also the reference checksums).
        subprocess.run(["cat"] + local, stdout=subprocess.DEVNULL, check=True, timeout=a.timeout)
        self.case("(e)", "page cache: cat (machine limit)", [["cat"] + local], discard_stdout=True)
        r = self.case("(e)", "page cache: reader x1", [reader + local])
        if r["status"] != "ok":
            raise SystemExit("cache_bench.py: the reader failed on the local copy")
        self.ref["reader"] = r["outs"][0].strip()
        self.case("(e)", f"page cache: reader x{n}", [reader + local] * n, check=self.check_reader)
        r = self.case("(e)", f"page cache: {n} ranks", ranks(model_dir))
        self.ref["ranks"] = [(re.findall(r"sha256 ([0-9a-f]+)", o) or [None])[0] for o in r["outs"]]
        if r["status"] != "ok" or None in self.ref["ranks"]:
            raise SystemExit("cache_bench.py: load_safetensors.py failed on the local copy")
        if aria2c:
            dl = os.path.join(self.work, "aria2")

            def verify_download(finished):
                if finished:
                    got = checksum_files([os.path.join(dl, x) for x in names], a.checksum)
                    want = self.ref["reader"].split()
                    if [str(got[0]), got[1]] != [want[1], want[3]]:
                        self.error(f"aria2c: downloaded bytes differ from the local copy ({got} vs {want})")
                shutil.rmtree(dl, ignore_errors=True)

            urls = [f"{self.endpoint}/models/bench-model/{x}" for x in names]
            self.case("(e)", "aria2c -x16 -s16 -k1M (to local disk)",
                      [[aria2c, "-x16", "-s16", "-k1M", "--allow-overwrite=true", "--file-allocation=none", "-q",
                        f"-j{a.aria2_jobs}", "-Z", "-d", dl] + urls], after=verify_download)
        else:
            print("  note: aria2c not found: no aria2c baseline (tools/install-deps.sh installs it)")

        # (a)-(d) through the shim, uncapped.
        self.case("(a)", "shim: 1 reader, cold", [shim + reader + virtual], cold=True, check=self.check_reader)
        self.case("(b)", f"shim: {n} readers, cold", [shim + reader + virtual] * n, cold=True,
                  check=self.check_reader)
        self.case("(c)", f"shim: {n} ranks, cold", [shim + c for c in ranks("/oss/models/bench-model")], cold=True,
                  check=self.check_ranks)
        self.case("(d)", f"shim: {n} ranks, warm relaunch", [shim + c for c in ranks("/oss/models/bench-model")],
                  check=self.check_ranks)

        # (a)-(c) with the bandwidth cap and first-byte latency.
        self.admin("POST", f"faults?bandwidth={self.cap}&first_byte_ms={a.latency_ms}")
        try:
            self.case("(a)", "capped: 1 reader, cold", [shim + reader + virtual], cold=True, capped=True,
                      check=self.check_reader)
            self.case("(b)", f"capped: {n} readers, cold", [shim + reader + virtual] * n, cold=True, capped=True,
                      check=self.check_reader)
            self.case("(c)", f"capped: {n} ranks, cold", [shim + c for c in ranks("/oss/models/bench-model")],
                      cold=True, capped=True, check=self.check_ranks)
        finally:
            self.admin("DELETE", "faults")
        self.report()

    # -- the report -------------------------------------------------------------------------

    def find(self, key, capped=False, local=None):
        for r in self.rows:
            if r["key"] == key and r["capped"] == capped and (local is None or local in r["label"]):
                return r
        return None

    def targets(self):
        out = []

        def add(name, row_ok, figure, ok):
            if not row_ok:
                out.append((name, figure or "case missing or failed", False))
            else:
                out.append((name, figure, ok))

        n = self.a.procs
        for capped in (False, True):
            tag = "capped " if capped else ""
            for key in ("(b)", "(c)"):
                r = self.find(key, capped)
                good = r is not None and r["status"] == "ok"
                add(f"{tag}{key} origin ÷ model ≤ 1.01", good, good and f"{r['origin']:.2f}",
                    good and r["origin"] <= 1.01)
            ra, rb = self.find("(a)", capped), self.find("(b)", capped)
            good = all(x is not None and x["status"] == "ok" for x in (ra, rb))
            l1, ln = self.find("(e)", local="page cache: reader x1"), self.find("(e)", local=f"page cache: reader x{n}")
            local = (f" (page cache, same readers: {ln['wall'] / l1['wall']:.2f} ×)"
                     if l1 and ln and l1["status"] == ln["status"] == "ok" else "")
            add(f"{tag}wall (b) ≤ 1.2 × wall (a)", good,
                good and f"{rb['wall']:.2f} s vs {ra['wall']:.2f} s = {rb['wall'] / ra['wall']:.2f} ×{local}",
                good and rb["wall"] <= 1.2 * ra["wall"])
        for key in ("(a)", "(b)"):
            r = self.find(key, True)
            good = r is not None and r["status"] == "ok"
            add(f"capped {key} ≥ 90% of the cap", good, good and f"{r['of_cap'] * 100:.0f}% of the cap",
                good and r["of_cap"] >= 0.9)
        ra, rx = self.find("(a)"), self.find("(e)", local="aria2c")
        good = all(x is not None and x["status"] == "ok" for x in (ra, rx))
        add("(a) GB/s ≥ aria2c GB/s", good, good and f"{ra['gbps']:.2f} vs {rx['gbps']:.2f} GB/s",
            good and ra["gbps"] >= rx["gbps"])
        rc = self.find("(c)")
        good = rc is not None and rc["status"] == "ok"
        add("(c) system memory ≈ 1 × model (≤ 1.2 ×, also anon + cache)", good,
            good and f"{human(rc['mem'])} = {rc['mem'] / self.model:.2f} × model (anon + cache: "
                     f"{rc['case_mem'] / self.model:.2f} ×)",
            good and max(rc["mem"], rc["case_mem"]) <= 1.2 * self.model)
        rd, rl = self.find("(d)"), self.find("(e)", local=f"page cache: {n} ranks")
        good = all(x is not None and x["status"] == "ok" for x in (rd, rl))
        add("(d) at memory speed (≥ 80% of page-cache ranks GB/s)", good,
            good and f"{rd['gbps']:.2f} vs {rl['gbps']:.2f} GB/s", good and rd["gbps"] >= 0.8 * rl["gbps"])
        good = rd is not None and rd["status"] == "ok"
        add("(d) origin ÷ model ≤ 0.01 (served from the cache)", good, good and f"{rd['origin']:.2f}",
            good and rd["origin"] <= 0.01)
        return out

    def report(self):
        print("\n## Benchmark: shared cache\n")
        print(self.setup_line + ".\n")
        print("| case | procs | wall s | GB/s | origin ÷ model | CPU s (procs / emulator / other) | max RSS | "
              "shm used | sys mem peak Δ | anon + cache peak | ÷ cap | check |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in self.rows:
            cap = f"{r['of_cap']:.2f}" if "of_cap" in r else ""
            print(f"| {r['key']} {r['label']} | {r['procs']} | {r['wall']:.2f} | {r['gbps']:.2f} | {r['origin']:.2f} | "
                  f"{r['cpu']:.1f} / {r['emu_cpu']:.1f} / {r['other_cpu']:.1f} | {r['rss'] / MiB:.0f} MiB | "
                  f"{r['shm'] / MiB:.0f} MiB | {r['mem'] / MiB:.0f} MiB ({r['mem'] / self.model:.2f} ×) | "
                  f"{r['case_mem'] / MiB:.0f} MiB ({r['case_mem'] / self.model:.2f} ×) | {cap} | {r['status']} |")
        print("\nGB/s: model bytes ÷ wall (per model, not per process). origin: the emulator's bytes_out "
              "(it counts an unthrottled response in full when queued, so aria2c's aborted open-ended ranges "
              "count more than it received). CPU: user+sys of the case's processes, of the emulator, and of "
              "anything else on the machine meanwhile. max RSS: the largest process. shm: bytes under "
              "OSSSHIM_CACHE_DIR at the end. sys mem: peak of MemTotal − MemAvailable above its value before "
              "the case (machine-wide, so disturbed by anything else). anon + cache: peak of the case's processes' "
              "Pss_Anon plus the bytes under OSSSHIM_CACHE_DIR (a warm case includes what was cached before).\n")
        print("| target | figure | |")
        print("|---|---|---|")
        for name, figure, ok in self.targets():
            print(f"| {name} | {figure} | {'met' if ok else '**missed**'} |")
        if self.errors:
            print(f"\ncache_bench.py: {len(self.errors)} error(s):", file=sys.stderr)
            for e in self.errors:
                print(f"  {e}", file=sys.stderr)

    def cleanup(self):
        self.kill_all()
        self.stop_emulator()
        for d in (self.shm_parent, self.work):
            if d:
                shutil.rmtree(d, ignore_errors=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "read":
        return reader_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4g", help="model size, e.g. 512m, 4g (default 4g)")
    ap.add_argument("--shards", type=int, default=4, help="model shards (default 4)")
    ap.add_argument("--procs", type=int, default=8, help="processes in (b), ranks in (c) and (d) (default 8)")
    ap.add_argument("--cache-size", type=parse_size, default=None,
                    help="OSSSHIM_CACHE_SIZE (default 1.5 x the model, at least 128m)")
    ap.add_argument("--cap", default="250m", help="emulator bandwidth cap in bytes/s for the capped cases (default 250m = 250 MiB/s)")
    ap.add_argument("--latency-ms", type=int, default=10, help="emulator first-byte delay for the capped cases (default 10)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per case, then its processes are killed (default 600)")
    ap.add_argument("--build", default="build", help="build directory, relative to the repository (default build)")
    ap.add_argument("--checksum", choices=("crc32", "sha256", "none"), default="crc32",
                    help="what the reader computes over the bytes it reads (default crc32)")
    ap.add_argument("--python", default=sys.executable, help="Python for the reader and the ranks (default: this one)")
    ap.add_argument("--aria2-jobs", type=int, default=1, help="aria2c -j: shards downloaded at once (default 1)")
    ap.add_argument("--work-dir", default=None, help="where the temp dir (model, downloads) goes (default $TMPDIR)")
    ap.add_argument("--min-free", type=parse_size, default=None,
                    help="kill a case when MemAvailable drops below this (default max(512m, 3%% of RAM))")
    args = ap.parse_args()
    parse_size(args.cap)
    if args.procs < 1 or args.shards < 1:
        ap.error("--procs and --shards must be >= 1")
    if args.min_free is None:
        args.min_free = max(512 * MiB, meminfo()["MemTotal"] * 3 // 100)

    bench = Bench(args)

    return benchlib.run(bench, "cache_bench.py", "children killed, temp dirs removed")


if __name__ == "__main__":
    sys.exit(main())
