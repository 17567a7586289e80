#!/usr/bin/env python3
"""What preloading libossshim.so costs a process that never touches the prefix: for /bin/true,
`sh -c :` and `python3 -c pass`, plain and under ossrun side by side, the shared libraries the
process maps, the system calls it makes and the CPU it uses.

  tools/bench/passthrough_cost.py [--build DIR] [--runs N] [--library PATH]

"Under ossrun" is the environment ossrun gives the program it runs (LD_PRELOAD and the
configuration), captured once with `ossrun -- env -0` and then used directly, so that ossrun's own
start-up is not counted. Libraries: objects the dynamic loader maps (LD_DEBUG=files). System
calls: `strace -f -c` totals (strace itself is not counted). CPU: user + system time of each run
from wait4(), the median over --runs runs. No network: the endpoint is never contacted."""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

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


def cpu_ms(cmd, env, runs):
    samples = []
    for _ in range(runs):
        pid = os.posix_spawn(cmd[0], cmd, env, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
        _, status, ru = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"passthrough_cost: {' '.join(cmd)} failed")
        samples.append((ru.ru_utime + ru.ru_stime) * 1000)
    return statistics.median(samples)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(here, "../../build"), help="meson build directory")
    ap.add_argument("--runs", type=int, default=200, help="runs per command for the CPU median")
    ap.add_argument("--library", help="libossshim.so to preload (default: ossrun's choice)")
    args = ap.parse_args()
    plain_env = dict(os.environ)
    plain_env.pop("LD_PRELOAD", None)
    shim_env = ossrun_env(os.path.abspath(args.build), args.library)
    print(f"preload: {shim_env.get('LD_PRELOAD')}; CPU: median of {args.runs} runs")
    print(f"{'command':<18} {'libraries':>15} {'syscalls':>15} {'CPU ms':>17}")
    print(f"{'':<18} {'plain  ossrun':>15} {'plain  ossrun':>15} {'plain  ossrun':>17}  ratio")
    with tempfile.TemporaryDirectory(prefix="ossshim-passthrough-") as work:
        for cmd in COMMANDS:
            row = []
            for measure in (lambda e: libraries(cmd, e), lambda e: syscalls(cmd, e, work)):
                row.append((measure(plain_env), measure(shim_env)))
            cpu = (cpu_ms(cmd, plain_env, args.runs), cpu_ms(cmd, shim_env, args.runs))
            (lp, ls), (sp, ss) = row
            print(f"{' '.join(cmd):<18} {lp:>6} {ls:>7} {sp:>7} {ss:>7} {cpu[0]:>8.2f} {cpu[1]:>7.2f}"
                  f"  {cpu[1] / cpu[0] if cpu[0] else float('nan'):.2f}")


if __name__ == "__main__":
    main()
