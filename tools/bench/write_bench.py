#!/usr/bin/env python3
"""Benchmark of ossshim's write path: a GB-scale file written sequentially to the local OSS emulator.

The same file is written through the shim and by independent multipart uploaders.

Generates SIZE random bytes on local disk (the work dir, under $TMPDIR), reads them once so the
page cache holds them, starts the emulator (its --root is in the work dir) and runs each row, one
at a time, uncapped and then with the emulator's faults bandwidth=CAP&first_byte_ms=LATENCY:

  shim-dd    ossrun -- dd if=SRC of=/oss/bkt/bench/shim-dd bs=4M
  shim-cp    ossrun -- cp SRC /oss/bkt/bench/shim-cp
  shim-cp-nospool  the same with OSSSHIM_SPOOL_WRITES=false: what the local copy of uploaded parts
             (kept so that a program can turn back) costs
  shim-py    ossrun -- /usr/bin/python3 -c '...': open(DST.incomplete, 'wb') + shutil.copyfileobj with
             1 MiB buffers, then os.replace(DST.incomplete, DST) (a downloader's pattern); the
             write (up to and including close) and the rename are timed apart
  alioss-4   ali-oss (the official Node.js client) multipartUpload, partSize 8 MiB, parallel 4
  alioss-16  the same with parallel 16
  aws        aws s3 cp against the emulator's S3 mode (SigV4, path style), multipart_chunksize 8MB,
             max_concurrent_requests 10 (a private AWS_CONFIG_FILE in the work dir)

Per row: wall seconds of the client process (start to exit; for dd/cp/python close() must return
only once the object is complete in OSS), GB/s = SIZE / wall (10^9 bytes), the fraction of the cap
(capped runs), the row's GB/s over the best baseline (ali-oss, aws) of the same run, CPU seconds
of the client (user+sys, wait4: the process and what it waited for) and of the emulator, the
client's peak RSS, the peak bytes under the shim's private cache dir (shim rows), the emulator's
bytes_in / SIZE and request count, and a check: the file the emulator stores under its --root
must equal the source byte for byte (and no DST.incomplete may remain). Rows that fail are
reported with their exit status and stderr; the exit status is then 1.

Uploads are capped only if the emulator applies its bandwidth cap to request bodies: the report
says whether the capped rows ran at the cap or well above it.

usage: write_bench.py [--size 2g] [--cap 250m] [--latency 10] [--rows shim,baseline|NAME,...]
                      [--phases uncapped,capped] [--part-size S] [--upload-concurrency N]
                      [--timeout 600] [--build build] [--work-dir DIR]
Standard library only (plus node for the ali-oss rows and awscli for the aws row).
"""
import argparse
import http.client
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1 << 20
BUCKET = "bkt"
PYTHON = "/usr/bin/python3"

ROWS = ["shim-dd", "shim-cp", "shim-cp-nospool", "shim-py", "alioss-4", "alioss-16", "aws"]
GROUPS = {"shim": ["shim-dd", "shim-cp", "shim-cp-nospool", "shim-py"], "baseline": ["alioss-4", "alioss-16", "aws"],
          "alioss": ["alioss-4", "alioss-16"], "all": ROWS}
BASELINES = set(GROUPS["baseline"])

# The Python row: the downloader pattern. Prints the two timings for the report.
PY_WRITER = """\
import os, shutil, sys, time
src, dst = sys.argv[1], sys.argv[2]
tmp = dst + '.incomplete'
t0 = time.monotonic()
with open(src, 'rb') as fi, open(tmp, 'wb') as fo:
    shutil.copyfileobj(fi, fo, 1 << 20)
t1 = time.monotonic()
os.replace(tmp, dst)
t2 = time.monotonic()
print(f'write {t1 - t0:.3f} rename {t2 - t1:.3f}')
"""


PY_WRITER_NAME = "$PY_WRITER"


def parse_size(text):
    """Sizes as ossshim and the emulator read them: k/m/g/t are powers of 1024."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", str(text).strip().lower())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size '{text}' (expected e.g. 256m, 1g, 2g)")
    return int(float(m.group(1)) * (1024 ** " kmgt".index(m.group(2) or " ")))


def human(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}".replace(".00 ", " ")
    return f"{n} B"


def proc_cpu(pid):
    """user+sys seconds of a running process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_busy():
    """Seconds all CPUs of the machine spent busy (not idle, not waiting for I/O)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def self_cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def tree_bytes(top):
    """Bytes allocated under top (st_blocks * 512, hard links once); 0 if missing."""
    seen, total = set(), 0
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


def first_difference(a, b, block=8 * MiB):
    """None if the files are equal, else a description of the first difference."""
    sa, sb = os.path.getsize(a), os.path.getsize(b)
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        off = 0
        while True:
            x, y = fa.read(block), fb.read(block)
            if x != y:
                n = min(len(x), len(y))
                i = next((k for k in range(n) if x[k] != y[k]), n)
                return f"differs at byte {off + i} (sizes {sa} vs {sb})"
            if not x:
                return None
            off += len(x)


class Sampler(threading.Thread):
    """Peak bytes under a directory, every 50 ms."""

    def __init__(self, top):
        super().__init__(daemon=True)
        self.top, self.peak, self.halt = top, 0, threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, tree_bytes(self.top))
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join()
        self.peak = max(self.peak, tree_bytes(self.top))
        return self.peak


class Bench:
    def __init__(self, args):
        self.a = args
        self.work = None
        self.shm = None
        self.emu = None
        self.child = None          # (pid, done flag) of the running row, for the timeout and signals
        self.child_lock = threading.Lock()
        self.rows = []
        self.errors = []

    # -- processes --------------------------------------------------------------------------

    def kill_child(self):
        with self.child_lock:
            if self.child and not self.child[1]:
                try:
                    os.killpg(self.child[0], signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def run_client(self, argv, env, out_path, err_path):
        """Runs argv in its own session; returns (exit code, rusage, wall s, timed out)."""
        timed_out = []
        with open(out_path, "w") as out, open(err_path, "w") as err:
            start = time.monotonic()
            p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 start_new_session=True)
            with self.child_lock:
                self.child = [p.pid, False]

            def expire():
                timed_out.append(True)
                self.kill_child()

            timer = threading.Timer(self.a.timeout, expire)
            timer.start()
            try:
                # Wait without reaping, mark the child done, then reap: the timer never signals a reused pid.
                os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
                end = time.monotonic()
                with self.child_lock:
                    self.child[1] = True
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
            finally:
                timer.cancel()
        return p.returncode, ru, end - start, bool(timed_out)

    # -- emulator ---------------------------------------------------------------------------

    def admin(self, method, what):
        req = urllib.request.Request(f"{self.endpoint}/_admin/{what}", method=method,
                                     data=b"" if method in ("POST", "PUT") else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def start_emulator(self):
        self.emu, self.endpoint = benchlib.start_emulator(self.build, self.root, self.work, "write_bench.py")

    def stop_emulator(self):
        benchlib.stop_emulator(self.emu)

    def put_seconds(self, data, key):
        """One unsigned PutObject of data (the emulator runs with --anonymous); seconds."""
        host, port = self.endpoint[len("http://"):].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=self.a.timeout)
        try:
            start = time.monotonic()
            conn.request("PUT", f"/{BUCKET}/{key}", body=data, headers={"Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            r.read()
            seconds = time.monotonic() - start
        finally:
            conn.close()
        if r.status != 200:
            raise OSError(f"probe PUT {key}: HTTP {r.status}")
        stored = os.path.join(self.root, BUCKET, key)
        if os.path.lexists(stored):
            os.remove(stored)
        return seconds

    def probe_upload_cap(self):
        """Are request bodies paced by the emulator's bandwidth fault? A 32 MiB PutObject uncapped, then
        with bandwidth set to a quarter of that rate (at most --cap): paced uploads take >= 4 x longer."""
        data = os.urandom(32 * MiB)
        self.put_seconds(data, "bench/probe")  # warm-up (connection, page cache)
        fast = min(self.put_seconds(data, "bench/probe") for _ in range(2))
        rate = len(data) / fast
        probe_cap = int(min(self.cap, rate / 4))
        self.admin("POST", f"faults?bandwidth={probe_cap}")
        try:
            slow = self.put_seconds(data, "bench/probe")
        finally:
            self.admin("DELETE", "faults")
        expected = len(data) / probe_cap
        capped = slow >= 0.8 * expected
        self.upload_capped = capped
        self.probe_line = (f"upload-cap probe (one 32 MiB PutObject): uncapped {rate / 1e9:.2f} GB/s; with "
                           f"bandwidth={human(probe_cap)}/s {len(data) / slow / 1e9:.3f} GB/s ({slow:.2f} s, "
                           f"{expected:.2f} s if paced) -> uploads are "
                           f"{'capped' if capped else 'NOT capped'} by the emulator")
        print(self.probe_line, flush=True)

    def measure_startup(self):
        """Wall seconds of a no-op run of each client (not subtracted from anything: context for small sizes)."""
        cases = []
        rows = self.a.rows
        if any(n in rows for n in ("shim-dd", "shim-cp", "shim-cp-nospool")):
            cases.append(("ossrun -- true", [self.ossrun, "--", "true"], self.shim_env))
        if "shim-py" in rows:
            cases.append(("ossrun -- python3 -c pass", [self.ossrun, "--", PYTHON, "-c", "pass"], self.shim_env))
        if any(n.startswith("alioss") for n in rows):
            mod = os.path.join(REPO, "tests/interop/node_modules/ali-oss")
            cases.append(("node require('ali-oss')", [self.node, "-e", f"require({json.dumps(mod)})"], self.oss_env))
        if "aws" in rows:
            cases.append(("aws s3 ls (empty prefix)", [self.aws, "--endpoint-url", self.endpoint, "s3", "ls",
                                                       f"s3://{BUCKET}/none/"], self.aws_env))
        parts = []
        for label, argv, env in cases:
            out = os.path.join(self.work, "startup.out")
            try:
                _, _, wall, _ = self.run_client(argv, env, out, out)
                parts.append(f"{label} {wall:.2f} s")
            except OSError as e:
                parts.append(f"{label}: {e}")
        self.startup_line = "client start-up (a no-op run, included in wall): " + ", ".join(parts) if parts else ""
        if parts:
            print(self.startup_line, flush=True)

    # -- rows -------------------------------------------------------------------------------

    def command(self, name):
        """(argv, env, key) of a row."""
        a = self.a
        key = f"bench/{name}"
        dst = f"/oss/{BUCKET}/{key}"
        shim = [self.ossrun, "--"]
        if name == "shim-dd":
            return shim + ["dd", f"if={self.src}", f"of={dst}", "bs=4M"], self.shim_env, key
        if name == "shim-cp":
            return shim + ["cp", self.src, dst], self.shim_env, key
        if name == "shim-cp-nospool":
            return shim + ["cp", self.src, dst], dict(self.shim_env, OSSSHIM_SPOOL_WRITES="false"), key
        if name == "shim-py":
            return shim + [PYTHON, "-c", PY_WRITER, self.src, dst], self.shim_env, key
        if name.startswith("alioss-"):
            parallel = name.split("-")[1]
            return ([self.node, os.path.join(HERE, "alioss_upload.js"), self.endpoint, BUCKET, key, self.src,
                     str(8 * MiB), parallel], self.oss_env, key)
        if name == "aws":
            return ([self.aws, "--endpoint-url", self.endpoint, "s3", "cp", "--only-show-errors", self.src,
                     f"s3://{BUCKET}/{key}"], self.aws_env, key)
        raise ValueError(name)

    def row(self, phase, name):
        a = self.a
        argv, env, key = self.command(name)
        stored = os.path.join(self.root, BUCKET, key)
        for p in (stored, stored + ".incomplete"):
            if os.path.lexists(p):
                os.remove(p)
        shutil.rmtree(self.cache_dir, ignore_errors=True)  # the shim creates it (mode 0700)
        os.sync()
        self.admin("POST", "reset")
        sampler = Sampler(self.cache_dir) if name.startswith("shim") else None
        if sampler:
            sampler.start()
        emu0, busy0, me0 = proc_cpu(self.emu.pid), cpu_busy(), self_cpu()
        tag = f"{phase}.{name}"
        out_path, err_path = os.path.join(self.work, f"{tag}.out"), os.path.join(self.work, f"{tag}.err")
        try:
            rc, ru, wall, timed_out = self.run_client(argv, env, out_path, err_path)
        except OSError as e:  # e.g. the binary is being rebuilt right now
            with open(err_path, "a") as f:
                f.write(f"cannot start {argv[0]}: {e}\n")
            rc, ru, wall, timed_out = 127, None, 0.0, False
        emu_cpu, busy, me = proc_cpu(self.emu.pid) - emu0, cpu_busy() - busy0, self_cpu() - me0
        cache_peak = sampler.stop() if sampler else None
        stats = self.admin("GET", "stats")
        with open(out_path, errors="replace") as f:
            out = f.read()
        with open(err_path, errors="replace") as f:
            err = f.read()

        notes = []
        status = "ok"
        if timed_out or rc != 0:
            why = f"killed after --timeout {a.timeout:g} s" if timed_out else f"exit {rc}"
            tail = " | ".join(l.strip() for l in err.strip().splitlines()[-6:])
            status = "FAILED"
            self.error(f"{tag}: {why}" + (f": {tail[-400:]}" if tail else ""))
            lines = [l.strip() for l in err.strip().splitlines()
                     if l.strip() and not re.search(r"records (in|out)$|bytes.*copied", l)]
            short = " | ".join(lines[-2:])
            notes.append(why + (f": {short[-300:]}" if short else ""))
        elif not os.path.exists(stored):
            status = "MISSING"
            self.error(f"{tag}: exit 0 but {stored} does not exist (object not complete when the client exited)")
        else:
            bad = first_difference(self.src, stored)
            if bad:
                status = "MISMATCH"
                self.error(f"{tag}: the stored object {bad}")
            elif os.path.lexists(stored + ".incomplete"):
                status = "LEFTOVER"
                self.error(f"{tag}: {key}.incomplete still exists after os.replace")
            else:
                status = "ok (cmp)"
        if name == "shim-py":
            m = re.search(r"write ([\d.]+) rename ([\d.]+)", out)
            if m:
                w, r = float(m.group(1)), float(m.group(2))
                notes.append(f"write+close {w:.2f} s ({self.size / w / 1e9:.2f} GB/s), os.replace {r:.2f} s")
        if name.startswith("alioss"):
            m = re.search(r"in ([\d.]+) s", out)
            if m:
                notes.append(f"multipartUpload call {float(m.group(1)):.2f} s")
        if status.startswith("ok"):
            said = {}
            for line in err.splitlines():
                line = re.sub(r"^ossshim\[\d+\]", "ossshim", line.strip())
                if line and " -> http" not in line and not re.search(r"records (in|out)$|bytes.*copied", line):
                    said[line] = said.get(line, 0) + 1
            for line, n in list(said.items())[:3]:
                notes.append(f"stderr{f' ({n} x)' if n > 1 else ''}: {line[:160]}")
        cpu = (ru.ru_utime + ru.ru_stime) if ru else 0.0
        other = max(0.0, busy - cpu - emu_cpu - me)
        ncpu = os.cpu_count() or 1
        if other > 0.1 * wall * ncpu and other > 0.2:
            notes.append(f"other processes used {other:.1f} CPU s meanwhile ({other / wall / ncpu * 100:.0f}% of "
                         f"the machine): disturbed")
        ops = stats.get("ops", {})
        ops.pop("Admin", None)
        r = dict(phase=phase, name=name, argv=argv, wall=wall, gbps=self.size / max(wall, 1e-9) / 1e9,
                 cpu=cpu, other=other, rss=(ru.ru_maxrss * 1024) if ru else 0,
                 emu_cpu=emu_cpu, cache_peak=cache_peak, bytes_in=stats.get("bytes_in", 0) / self.size,
                 requests=sum(ops.values()), ops=ops, status=status, notes=notes)
        if phase == "capped":
            r["of_cap"] = self.size / max(wall, 1e-9) / self.cap
        self.rows.append(r)
        self.print_row(r)
        for p in (stored, stored + ".incomplete"):
            if os.path.lexists(p):
                os.remove(p)
        return r

    def error(self, msg):
        self.errors.append(msg)
        print(f"write_bench.py: error: {msg}", file=sys.stderr, flush=True)

    HEAD = (f"{'phase':<9} {'row':<10} {'wall s':>7} {'GB/s':>6} {'÷cap':>5} {'CPU s':>6} {'emu s':>6} {'other':>6} "
            f"{'peak RSS':>9} {'cache pk':>9} {'in÷size':>7} {'reqs':>5}  check")

    def print_row(self, r):
        if r["status"] == "FAILED":
            print(f"{r['phase']:<9} {r['name']:<10} {r['wall']:>7.2f}  FAILED: {r['notes'][0] if r['notes'] else ''}",
                  flush=True)
            return
        cap = f"{r['of_cap']:.2f}" if "of_cap" in r else "-"
        cache = f"{r['cache_peak'] / MiB:.0f} MiB" if r["cache_peak"] is not None else "-"
        print(f"{r['phase']:<9} {r['name']:<10} {r['wall']:>7.2f} {r['gbps']:>6.2f} {cap:>5} {r['cpu']:>6.1f} "
              f"{r['emu_cpu']:>6.1f} {r['other']:>6.1f} {r['rss'] / MiB:>5.0f} MiB {cache:>9} {r['bytes_in']:>7.2f} {r['requests']:>5}  "
              f"{r['status']}", flush=True)
        ops = ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items(), key=lambda kv: -kv[1]))
        for line in r["notes"] + ([f"requests: {ops}"] if ops else []):
            print(f"    {line}", flush=True)

    # -- the run ----------------------------------------------------------------------------

    def make_source(self):
        block = 64 * MiB
        left = self.size
        with open(self.src, "wb") as f:
            while left > 0:
                n = min(block, left)
                f.write(os.urandom(n))
                left -= n
        os.sync()
        # Read it once so the page cache holds it for every row.
        with open(self.src, "rb", buffering=0) as f:
            while f.read(8 * MiB):
                pass

    def run(self):
        a = self.a
        self.build = a.build if os.path.isabs(a.build) else os.path.join(REPO, a.build)
        self.ossrun = os.path.join(self.build, "tools/ossrun/ossrun")
        self.size = a.size
        self.cap = parse_size(a.cap)
        need_shim = any(n.startswith("shim") for n in a.rows)
        for exe in ([self.ossrun] if need_shim else []) + [os.path.join(self.build, "tools/emulator/oss-emulator")]:
            if not os.access(exe, os.X_OK):
                raise SystemExit(f"write_bench.py: {exe} missing: build first (ninja -C {a.build})")
        self.node = shutil.which("node") or shutil.which("nodejs")
        if any(n.startswith("alioss") for n in a.rows):
            if not self.node:
                raise SystemExit("write_bench.py: node not found (needed by the ali-oss rows)")
            if not os.path.isdir(os.path.join(REPO, "tests/interop/node_modules/ali-oss")):
                raise SystemExit("write_bench.py: tests/interop/node_modules/ali-oss missing "
                                 "(npm ci --prefix tests/interop)")
        self.aws = "/usr/bin/aws" if os.access("/usr/bin/aws", os.X_OK) else shutil.which("aws")
        if "aws" in a.rows and not self.aws:
            raise SystemExit("write_bench.py: aws (awscli) not found (needed by the aws row)")

        self.work = tempfile.mkdtemp(prefix="ossshim-writebench-", dir=a.work_dir)
        self.shm = tempfile.mkdtemp(prefix=f"ossshim-writebench-{os.getpid()}-", dir="/dev/shm")
        self.cache_dir = os.path.join(self.shm, "cache")
        self.root = os.path.join(self.work, "root")
        os.makedirs(os.path.join(self.root, BUCKET, "bench"))
        self.src = os.path.join(self.work, "src.bin")
        print(f"write_bench.py: work dir {self.work}, shim cache dir {self.cache_dir}", flush=True)
        t = time.monotonic()
        self.make_source()
        print(f"write_bench.py: {human(self.size)} of random bytes in {time.monotonic() - t:.1f} s", flush=True)

        self.start_emulator()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OSS_", "ALIBABA_CLOUD_"))}
        self.oss_env = dict(base, OSS_ACCESS_KEY_ID="test-ak", OSS_ACCESS_KEY_SECRET="test-sk")
        self.shim_env = dict(self.oss_env, OSSSHIM_ENDPOINT=self.endpoint, OSSSHIM_REGION="cn-hangzhou",
                             OSSSHIM_CACHE_DIR=self.cache_dir)
        self.shim_env.pop("OSSSHIM_CONFIG", None)
        if a.part_size:
            self.shim_env["OSSSHIM_PART_SIZE"] = a.part_size
        if a.upload_concurrency:
            self.shim_env["OSSSHIM_UPLOAD_CONCURRENCY"] = str(a.upload_concurrency)
        aws_config = os.path.join(self.work, "aws-config")
        with open(aws_config, "w") as f:
            f.write("[default]\nregion = cn-hangzhou\ns3 =\n  multipart_chunksize = 8MB\n"
                    "  max_concurrent_requests = 10\n  addressing_style = path\n")
        self.aws_env = dict(base, AWS_CONFIG_FILE=aws_config,
                            AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.work, "aws-credentials"),
                            AWS_ACCESS_KEY_ID="test-ak", AWS_SECRET_ACCESS_KEY="test-sk",
                            AWS_DEFAULT_REGION="cn-hangzhou", AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")

        try:
            rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                                 text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            rev = "?"
        part = self.shim_env.get("OSSSHIM_PART_SIZE", "default")
        conc = self.shim_env.get("OSSSHIM_UPLOAD_CONCURRENCY", "default")
        with open("/proc/meminfo") as f:
            ram = int(f.readline().split()[1]) * 1024
        self.setup_line = (f"{human(self.size)} random file (page cache) -> emulator --root on "
                           f"{self.work}; cap {human(self.cap)}/s + {a.latency} ms first byte; "
                           f"shim OSSSHIM_PART_SIZE={part}, OSSSHIM_UPLOAD_CONCURRENCY={conc}; "
                           f"{os.cpu_count()} CPUs, {human(ram)} RAM; build {a.build} @ {rev}")
        print(self.setup_line)
        self.probe_upload_cap()
        self.measure_startup()
        print(f"{self.endpoint}; GB/s = {self.size} bytes / wall / 1e9\n")
        print(self.HEAD, flush=True)

        for phase in a.phases:
            if phase == "capped":
                self.admin("POST", f"faults?bandwidth={self.cap}&first_byte_ms={a.latency}")
            try:
                for name in a.rows:
                    self.row(phase, name)
            finally:
                if phase == "capped":
                    self.admin("DELETE", "faults")
        self.report()

    # -- the report -------------------------------------------------------------------------

    def upload_cap_verdict(self):
        capped = [r for r in self.rows if r["phase"] == "capped" and r["status"].startswith("ok")]
        fastest = max(capped, key=lambda r: r["of_cap"]) if capped else None
        if not self.upload_capped:
            return ("**The emulator does NOT cap uploads** (probe above): the capped run differs from the "
                    "uncapped one only by first_byte_ms, and ÷ cap is the rate a client reached over the cap it "
                    "was not held to." + (f" Fastest capped row: {fastest['name']}, {fastest['of_cap']:.2f} × the cap."
                                          if fastest else ""))
        if not fastest:
            return "The emulator caps uploads (probe above); no capped row succeeded."
        if fastest["of_cap"] > 1.1:
            return (f"**Inconsistent**: the probe says uploads are capped, but {fastest['name']} wrote at "
                    f"{fastest['of_cap']:.2f} × the cap in the capped run.")
        return (f"The emulator caps uploads (probe above); the fastest capped row, {fastest['name']}, reached "
                f"{fastest['of_cap']:.2f} × the cap.")

    def report(self):
        a = self.a
        print("\n## Benchmark: write path\n")
        print(f"command: `{self.cmdline}`\n")
        print(self.setup_line + ".\n")
        print(self.probe_line + ".\n")
        if self.startup_line:
            print(self.startup_line + ".\n")
        best = {}
        for r in self.rows:
            if r["name"] in BASELINES and r["status"].startswith("ok"):
                best[r["phase"]] = max(best.get(r["phase"], 0), r["gbps"])
        print("| run | row | wall s | GB/s | ÷ cap | ÷ best baseline | CPU s client / emulator / other | "
              "client peak RSS | shim cache peak | bytes in ÷ size | requests | check | notes |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for r in self.rows:
            if r["status"] == "FAILED":
                notes = "; ".join(r["notes"]).replace("|", "\\|")
                print(f"| {r['phase']} | {r['name']} | {r['wall']:.2f} | | | | | | | | | FAILED | {notes} |")
                continue
            cap = f"{r['of_cap']:.2f}" if "of_cap" in r else ""
            rel = f"{r['gbps'] / best[r['phase']]:.2f}" if r["phase"] in best else ""
            cache = f"{r['cache_peak'] / MiB:.0f} MiB" if r["cache_peak"] is not None else ""
            notes = "; ".join(r["notes"]).replace("|", "\\|")
            print(f"| {r['phase']} | {r['name']} | {r['wall']:.2f} | {r['gbps']:.2f} | {cap} | {rel} | "
                  f"{r['cpu']:.1f} / {r['emu_cpu']:.1f} / {r['other']:.1f} | {r['rss'] / MiB:.0f} MiB | {cache} | {r['bytes_in']:.2f} | "
                  f"{r['requests']} | {r['status']} | {notes} |")
        print("\nwall: the client process from start to exit (node and aws start-up included). GB/s: size ÷ wall. "
              "÷ best baseline: GB/s over the fastest ali-oss/aws row of the same run. CPU: user+sys of the "
              "client (with what it waited for), of the emulator, and of anything else on the machine meanwhile "
              "(a large figure means the row was disturbed). shim cache peak: bytes under the "
              "shim's private OSSSHIM_CACHE_DIR (sampled every 50 ms). bytes in: the emulator's request-body "
              "bytes ÷ size. check: the object under the emulator's --root compared byte for byte with the "
              "source.\n")
        verdict = self.upload_cap_verdict()
        if verdict:
            print(verdict + "\n")
        print("rows:")
        seen = set()
        for r in self.rows:
            if r["name"] not in seen:
                seen.add(r["name"])
                argv = [PY_WRITER_NAME if x == PY_WRITER else x for x in r["argv"]]
                print(f"  {r['name']:<10} {shlex.join(argv).replace(self.work, '$WORK')}")
        if "shim-py" in seen:
            print(f"  where {PY_WRITER_NAME} is:")
            for line in PY_WRITER.splitlines():
                print(f"    {line}")
        if self.errors:
            print(f"\nwrite_bench.py: {len(self.errors)} error(s):", file=sys.stderr)
            for e in self.errors:
                print(f"  {e}", file=sys.stderr)

    def cleanup(self):
        self.kill_child()
        self.stop_emulator()
        for d in (self.shm, self.work):
            if d:
                shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="rows: " + ", ".join(ROWS) + "; groups: shim, baseline, alioss, all")
    ap.add_argument("--size", type=parse_size, default=parse_size("2g"), help="file size, e.g. 256m, 1g (default 2g)")
    ap.add_argument("--cap", default="250m", help="emulator bandwidth cap in bytes/s for the capped run (default 250m)")
    ap.add_argument("--latency", type=int, default=10, help="emulator first_byte_ms for the capped run (default 10)")
    ap.add_argument("--rows", default="all", help="comma-separated rows or groups (default all)")
    ap.add_argument("--phases", default="uncapped,capped", help="uncapped, capped or both (default both, in that order)")
    ap.add_argument("--part-size", default=None, help="OSSSHIM_PART_SIZE for the shim rows (default: the shim's)")
    ap.add_argument("--upload-concurrency", type=int, default=None,
                    help="OSSSHIM_UPLOAD_CONCURRENCY for the shim rows (default: the shim's)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per row, then the client is killed (default 600)")
    ap.add_argument("--build", default="build", help="build directory, relative to the repository (default build)")
    ap.add_argument("--work-dir", default=None, help="where the temp dir (source, emulator root) goes (default $TMPDIR or /tmp)")
    args = ap.parse_args()
    parse_size(args.cap)
    if args.part_size:
        parse_size(args.part_size)
    rows = []
    for word in args.rows.split(","):
        word = word.strip()
        for n in GROUPS.get(word, [word]):
            if n not in ROWS:
                ap.error(f"unknown row '{word}' (rows: {', '.join(ROWS)}; groups: {', '.join(GROUPS)})")
            if n not in rows:
                rows.append(n)
    args.rows = rows
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phases or any(p not in ("uncapped", "capped") for p in args.phases):
        ap.error("--phases takes uncapped, capped or uncapped,capped")
    if args.size < 1:
        ap.error("--size must be positive")

    bench = Bench(args)
    argv0 = os.environ.get("WRITE_BENCH_ARGV0") or os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
    bench.cmdline = shlex.join([argv0] + sys.argv[1:])

    return benchlib.run(bench, "write_bench.py", "client killed, temp dirs removed")


if __name__ == "__main__":
    sys.exit(main())
