#!/usr/bin/python3
"""Python's file APIs under the shim, compared with the same calls on the local copy.
Usage (under LD_PRELOAD=libossshim.so): python_diff.py LOCAL_DIR VIRTUAL_DIR
Each probe returns a value; the probe passes when it returns the same on both directories."""
import glob, hashlib, inspect, io, json, mmap, multiprocessing as mp, os, pathlib, random, sqlite3
import struct, subprocess, sys, tarfile, threading, zipfile

import numpy as np
import torch

probes = []


def probe(fn):
    probes.append(fn)
    return fn


def h(data):
    return hashlib.sha256(data).hexdigest()[:16]


def rel(base, paths):
    return sorted(p[len(base):] for p in paths)


@probe
def read_whole(b):
    with open(f"{b}/bin/odd-size.bin", "rb") as f:
        return h(f.read())


@probe
def read_pieces_seek_tell(b):
    out = []
    with open(f"{b}/bin/random-5m.bin", "rb", buffering=0) as f:
        for off, n in [(0, 10), (1 << 20, 4096), (5 << 20, 100), (123457, 1 << 20), (-50, 100)]:
            f.seek(off, os.SEEK_END if off < 0 else os.SEEK_SET)
            out.append((f.tell(), h(f.read(n))))
        buf = bytearray(3000)
        f.seek(777)
        out.append((f.readinto(buf), h(buf), f.tell()))
    return out


@probe
def text_lines(b):
    with open(f"{b}/text/lorem.txt", encoding="utf-8") as f:
        lines = f.readlines()
    return len(lines), lines[4321]


@probe
def stat_fields(b):
    out = []
    for p in ["bin/odd-size.bin", "empty.dat", "deep/a", "names/ünïcødé-文件.txt"]:
        st = os.stat(f"{b}/{p}")
        out.append((p, st.st_size if not os.path.isdir(f"{b}/{p}") else "dir", oct(st.st_mode & 0o170777)))
    return out


@probe
def path_predicates(b):
    return [(p, os.path.exists(f"{b}/{p}"), os.path.isdir(f"{b}/{p}"), os.path.isfile(f"{b}/{p}"))
            for p in ["", "text", "text/hello.txt", "nope", "text/nope", "deep/a/b/c"]]


@probe
def realpath(b):
    return os.path.realpath(f"{b}/deep/a/../a/b/./c")[len(b):], os.path.getsize(f"{b}/text/hello.txt")


@probe
def listdir_scandir(b):
    names = sorted(os.listdir(f"{b}/names"))
    with os.scandir(f"{b}/deep/a/b") as it:
        entries = sorted((e.name, e.is_dir(), e.is_file()) for e in it)
    return names, entries


@probe
def walk(b):
    return sorted((d[len(b):], sorted(ds), sorted(fs)) for d, ds, fs in os.walk(b) if "sparse" not in d)


@probe
def globbing(b):
    return rel(b, glob.glob(f"{b}/**/*.txt", recursive=True)), rel(b, glob.glob(f"{b}/many/f1[0-2]?.txt"))


@probe
def pathlib_api(b):
    p = pathlib.Path(b)
    return (sorted(str(x.relative_to(p)) for x in p.rglob("*.json")), (p / "text/hello.txt").read_text(),
            sorted(x.name for x in (p / "deep").iterdir()), (p / "data").is_dir(), (p / "nope").exists())


@probe
def zip_members(b):
    with zipfile.ZipFile(f"{b}/data/archive.zip") as z:
        return sorted(z.namelist()), h(z.read("b.bin")), z.read("inner/a.txt")[:20].decode()


@probe
def tar_members(b):
    with tarfile.open(f"{b}/data/archive.tar.gz") as t:
        return [(m.name, m.size, h(t.extractfile(m).read())) for m in t.getmembers()]


@probe
def json_load(b):
    with open(f"{b}/data/config.json") as f:
        return json.load(f)


@probe
def sqlite_readonly(b):
    out = []
    for uri in [f"file:{b}/data/table.sqlite?mode=ro", f"file:{b}/data/table.sqlite?immutable=1"]:
        con = sqlite3.connect(uri, uri=True)
        out.append(con.execute("select count(*), sum(value), max(name) from t where id % 7 = 3").fetchone())
        con.close()
    return out


@probe
def numpy_load(b):
    a = np.load(f"{b}/data/array.npy")
    m = np.load(f"{b}/data/array.npy", mmap_mode="r")
    mm = np.memmap(f"{b}/bin/random-5m.bin", dtype=np.uint8, mode="r", offset=4096, shape=(1 << 20,))
    return float(a.sum()), float(m[1000:1010].sum()), int(mm.astype(np.uint64).sum())


@probe
def torch_load(b):
    sd = torch.load(f"{b}/data/state.pt")
    out = [float(sd["w"].sum()), int(sd["b"].sum())]
    if "mmap" in inspect.signature(torch.load).parameters:  # torch >= 2.1
        sd = torch.load(f"{b}/data/state.pt", mmap=True)
        out.append(float(sd["w"].sum()))
    return out


@probe
def safetensors_mmap(b):
    with open(f"{b}/model/model.safetensors", "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    (n,) = struct.unpack("<Q", m[:8])
    header = json.loads(m[8:8 + n])
    out = {}
    for name, t in sorted(header.items()):
        lo, hi = t["data_offsets"]
        arr = np.frombuffer(m, dtype=np.float32, count=(hi - lo) // 4, offset=8 + n + lo)
        out[name] = (t["shape"], round(float(arr.sum()), 3))
        del arr  # the mapping cannot close while a view exports it
    m.close()
    return out


@probe
def mmap_slices(b):
    with open(f"{b}/bin/odd-size.bin", "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        r = (len(m), h(m[:]), h(m[(1 << 20) - 5:(2 << 20) + 5]), m.find(b"\x00\x01"))
        m.close()
    return r


@probe
def sparse_reads(b):
    fd = os.open(f"{b}/sparse/huge.bin", os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return size, [os.pread(fd, 24, off) for off in (0, 1 << 20, (1 << 30) + 7, size - 4096, size - 1, size)]
    finally:
        os.close(fd)


@probe
def threads_pread(b):
    fd = os.open(f"{b}/bin/random-5m.bin", os.O_RDONLY)
    rng = random.Random(7)
    ranges = [(rng.randrange(5 << 20), rng.randrange(1, 300000)) for _ in range(64)]
    results = [None] * len(ranges)

    def work(k):
        for i in range(k, len(ranges), 8):
            off, n = ranges[i]
            results[i] = h(os.pread(fd, n, off))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    os.close(fd)
    return results


@probe
def fd_table(b):
    fd = os.open(f"{b}/text/lorem.txt", os.O_RDONLY | os.O_CLOEXEC)
    d = os.dup(fd)
    os.lseek(fd, 100, os.SEEK_SET)
    shared_offset = os.lseek(d, 0, os.SEEK_CUR)  # dup'd descriptors share one offset
    spare = os.open("/dev/null", os.O_RDONLY)
    os.dup2(fd, spare)
    r = [shared_offset, os.read(spare, 10), os.get_inheritable(fd), os.get_inheritable(d)]
    import fcntl
    r.append(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE)
    for x in (fd, d, spare):
        os.close(x)
    try:
        os.read(d, 1)
    except OSError as e:
        r.append(e.errno)
    return r


def _child_read(args):
    path, off, n = args
    with open(path, "rb") as f:
        f.seek(off)
        return h(f.read(n))


@probe
def multiprocessing_fork_and_spawn(b):
    out = []
    jobs = [(f"{b}/bin/random-5m.bin", i << 19, 100000) for i in range(6)]
    for method in ("fork", "spawn"):
        with mp.get_context(method).Pool(2) as pool:
            out.append(pool.map(_child_read, jobs))
    # A descriptor opened before fork keeps working in the child.
    fd = os.open(f"{b}/bin/odd-size.bin", os.O_RDONLY)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, h(os.pread(fd, 5000, 3 << 20)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    out.append(os.read(r, 100).decode())
    for x in (fd, r, w):
        os.close(x)
    return out


@probe
def subprocess_children(b):
    cat = subprocess.run(["cat", f"{b}/text/hello.txt"], capture_output=True).stdout
    with open(f"{b}/bin/odd-size.bin", "rb") as f:  # the virtual fd becomes the child's stdin
        f.seek(0)
        summed = subprocess.run(["sha256sum"], stdin=f, capture_output=True).stdout
    return cat, summed


@probe
def errors(b):
    out = []
    for fn in [lambda: open(f"{b}/nope"), lambda: open(f"{b}/text"), lambda: os.listdir(f"{b}/text/hello.txt"),
               lambda: open(f"{b}/text/hello.txt/x"), lambda: os.stat(f"{b}/nope/deeper")]:
        try:
            fn()
            out.append("no error")
        except OSError as e:
            out.append((type(e).__name__, e.errno))
    return out


def main():
    LOCAL, VIRTUAL = sys.argv[1], sys.argv[2]
    failures = 0
    for fn in probes:
        try:
            want = fn(LOCAL)
        except Exception as e:  # the local run must work: a broken probe is a test bug
            print(f"ERROR {fn.__name__}: local run raised {e!r}")
            failures += 1
            continue
        try:
            got = fn(VIRTUAL)
        except Exception as e:
            got = f"raised {e!r}"
        if got == want:
            print(f"ok   {fn.__name__}")
        else:
            failures += 1
            print(f"FAIL {fn.__name__}\n  local:   {str(want)[:400]}\n  virtual: {str(got)[:400]}")
    print(f"{len(probes) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
