"""Pieces the benchmark programs share: the local emulator, started and stopped; running a
benchmark with signals turned into a clean stop."""
import os
import re
import signal
import subprocess
import time


def start_emulator(build, root, work, who):
    """Starts oss-emulator (anonymous access, quiet) serving `root`; returns (process, endpoint).
    Its output goes to work/emulator.out and .err; exits naming `who` if it does not start."""
    exe = os.path.join(build, "tools/emulator/oss-emulator")
    out = os.path.join(work, "emulator.out")
    with open(out, "w") as o, open(os.path.join(work, "emulator.err"), "w") as e:
        proc = subprocess.Popen([exe, "--root", root, "--listen", "127.0.0.1:0", "--quiet", "--anonymous"],
                                stdin=subprocess.DEVNULL, stdout=o, stderr=e, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(out) as f:
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", f.read())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(os.path.join(work, "emulator.err")) as f:
        raise SystemExit(f"{who}: oss-emulator did not start: {f.read().strip()}")


def stop_emulator(proc):
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run(bench, who, interrupted):
    """Runs bench.run() and always bench.cleanup(); returns the exit status (130 when interrupted,
    1 on an error or when bench.errors is set)."""
    import sys
    import urllib.error

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        bench.run()
    except KeyboardInterrupt:
        print(f"\n{who}: interrupted; {interrupted}", file=sys.stderr)
        return 130
    except (subprocess.SubprocessError, OSError, urllib.error.URLError) as e:
        print(f"{who}: {e}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    return 1 if bench.errors else 0
