#!/usr/bin/env python3
"""What preloading libossshim.so costs a process that never touches the prefix: for /bin/true,
`sh -c :` and `python3 -c pass`, side by side: plain, with an empty preloaded library (the floor
any LD_PRELOAD pays: the loader opens and maps one more object), and under ossrun. The shim's own
cost is the last column minus the middle one.

  tools/bench/passthrough_cost.py [--build DIR] [--runs N] [--library PATH] [--workload]

"Under ossrun" is the environment ossrun gives the program it runs (LD_PRELOAD and the
configuration), captured once with `ossrun -- env -0` and then used directly, so that ossrun's own
start-up is not counted. The empty library is compiled here from a one-line C file into the build
directory (DIR/tools/bench/empty-preload.so; nothing of it is in the source tree). Libraries:
objects the dynamic loader maps (LD_DEBUG=files). System calls: `strace -f -c` totals (strace
itself is not counted). CPU: `perf stat -e task-clock` when perf works here, else user + system
time from wait4(); plain, empty and shim alternate in 10 rounds of N/10 runs each (perf's mean or
the median of each round), and the median of the rounds is printed. --workload also
runs build/examples/passthrough_bench (stat + open + read + close of local files) with the empty
library and the shim. No network: the endpoint is never contacted."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile

ROUNDS = 10  # CPU: plain, empty and shim alternate this many times, runs/ROUNDS runs each
COMMANDS = [["/bin/true"], ["/bin/sh", "-c", ":"], ["/usr/bin/python3", "-c", "pass"]]


def ossrun_env(build, library):
    """The environment ossrun execs its command with."""
    env = dict(os.environ)
    # ossrun checks the configuration first: a syntactically valid one that is never used.
    env.setdefault("OSSSHIM_ENDPOINT", "http://127.0.0.1:9")
    env.setdefault("OSSSHIM_REGION", "cn-hangzhou")
    env.setdefault("OSS_ACCESS_KEY_ID", "bench")
    env.setdefault("OSS_ACCESS_KEY_SECRET", "bench")
    cmd = [os.path.join(build, "tools/ossrun/ossrun")] + (["--library", library] if library else [])
    out = subprocess.run(cmd + ["--", "/usr/bin/env", "-0"], env=env, check=True, capture_output=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def empty_library(build):
    """An empty shared library, built from a one-line C file in the build directory."""
    out_dir = os.path.join(build, "tools/bench")
    os.makedirs(out_dir, exist_ok=True)
    src, lib = os.path.join(out_dir, "empty-preload.c"), os.path.join(out_dir, "empty-preload.so")
    with open(src, "w") as f:
        f.write("void ossshim_bench_empty(void) {}\n")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise SystemExit("passthrough_cost: no C compiler (cc, gcc, clang) to build the empty library")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", lib, src], check=True)
    return lib


def libraries(cmd, env):
    env = dict(env, LD_DEBUG="files")
    err = subprocess.run(cmd, env=env, capture_output=True, check=True).stderr.decode()
    return len(re.findall(r"generating link map", err))


def syscalls(cmd, env, work):
    out = os.path.join(work, "strace.out")
    subprocess.run(["strace", "-f", "-c", "-o", out] + cmd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        for line in f:
            if line.rstrip().endswith("total"):
                fields = line.split()
                return int(fields[3])  # % time, seconds, usecs/call, calls, [errors,] total
    raise SystemExit(f"passthrough_cost: no total in strace's summary of {' '.join(cmd)}")


def perf_works():
    perf = shutil.which("perf")
    if not perf:
        return False
    r = subprocess.run([perf, "stat", "-x", ",", "-e", "task-clock", "--", "/bin/true"], capture_output=True)
    return r.returncode == 0 and re.search(rb"^[0-9.]+,msec,task-clock", r.stderr, re.M) is not None


def cpu_perf(cmd, env, runs):
    """(mean ms, spread %) of task-clock over `runs` runs."""
    r = subprocess.run(["perf", "stat", "-r", str(runs), "-x", ",", "-e", "task-clock", "--"] + cmd, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    m = re.search(r"^([0-9.]+),msec,task-clock,([0-9.]*)%?", r.stderr.decode(), re.M)
    if not m:
        raise SystemExit(f"passthrough_cost: no task-clock in perf's output for {' '.join(cmd)}")
    return float(m.group(1)), m.group(2)


def cpu_rusage(cmd, env, runs):
    samples = []
    for _ in range(runs):
        pid = os.posix_spawn(cmd[0], cmd, env, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
        _, status, ru = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"passthrough_cost: {' '.join(cmd)} failed")
        samples.append((ru.ru_utime + ru.ru_stime) * 1000)
    return statistics.median(samples), ""


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(here, "../../build"), help="meson build directory")
    ap.add_argument("--runs", type=int, default=200, help="runs per command and library for CPU")
    ap.add_argument("--library", help="libossshim.so to preload (default: ossrun's choice)")
    ap.add_argument("--workload", action="store_true", help="also run examples/passthrough_bench")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    plain_env = dict(os.environ)
    plain_env.pop("LD_PRELOAD", None)
    shim_env = ossrun_env(build, args.library)
    empty = empty_library(build)
    empty_env = dict(plain_env, LD_PRELOAD=empty)
    envs = (plain_env, empty_env, shim_env)
    use_perf = perf_works()
    cpu = cpu_perf if use_perf else cpu_rusage
    how = (f"perf stat task-clock" if use_perf else "rusage") + f", {ROUNDS} alternating rounds of {args.runs // ROUNDS} runs"
    print(f"shim: {shim_env.get('LD_PRELOAD')}\nempty: {empty}\nCPU: {how}")
    print(f"{'command':<18} {'libraries':>17} {'syscalls':>17} {'CPU ms':>26}")
    print(f"{'':<18} {'plain empty shim':>17} {'plain empty shim':>17} {'plain   empty    shim':>26}"
          f"  shim-empty")
    with tempfile.TemporaryDirectory(prefix="ossshim-passthrough-") as work:
        for cmd in COMMANDS:
            libs = [libraries(cmd, e) for e in envs]
            calls = [syscalls(cmd, e, work) for e in envs]
            # Interleaved in rounds, so that a change of load on the machine hits all three alike;
            # the median over the rounds of each one's figure.
            rounds = [[cpu(cmd, e, max(1, args.runs // ROUNDS))[0] for e in envs] for _ in range(ROUNDS)]
            ms = [statistics.median(r[i] for r in rounds) for i in range(3)]
            print(f"{' '.join(cmd):<18} {libs[0]:>5} {libs[1]:>5} {libs[2]:>5} {calls[0]:>5} {calls[1]:>5} "
                  f"{calls[2]:>5} {ms[0]:>8.3f} {ms[1]:>7.3f} {ms[2]:>7.3f}  {ms[2] - ms[1]:+.3f} ms, "
                  f"{calls[2] - calls[1]:+d} calls")
    if args.workload:
        bench = os.path.join(build, "examples/passthrough_bench")
        lib = shim_env.get("LD_PRELOAD", "").split(":")[0]
        subprocess.run([bench, lib, "2000", "20", empty], check=True)


if __name__ == "__main__":
    main()
