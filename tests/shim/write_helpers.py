"""Python programs for tests/shim/write.sh (Debian's python3, with numpy and torch).

`write_helpers.py COMMAND ARGS...`. Checking commands print one line per check, `ok NAME` or
`FAIL NAME: why`, and write.sh counts them; the others print what write.sh compares.
"""
import errno
import hashlib
import os
import shutil
import sqlite3
import stat
import sys
import time

failures = 0


def report(name, good, why=""):
    global failures
    if good:
        print(f"ok {name}")
    else:
        failures += 1
        print(f"FAIL {name}: {why}")
    sys.stdout.flush()


def errno_of(fn):
    """errno raised by fn(), or None when it succeeds."""
    try:
        fn()
    except OSError as e:
        return e.errno
    return None


def expect_errno(name, fn, want):
    got = errno_of(fn)
    report(name, got == want,
           f"expected {errno.errorcode[want]}, got {errno.errorcode.get(got, got) if got else 'success'}")


def put(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def get(path):
    with open(path, "rb") as f:
        return f.read()


def pattern(n, seed):
    """n deterministic pseudo-random bytes."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


# ---------------------------------------------------------------------------- namespace


def namespace(base, emu):
    """os.mkdir/rmdir/unlink/rename/open('x')/utime/chmod on BASE (virtual), cross-checked
    against EMU, the same directory in the emulator's root."""
    os.mkdir(base)

    d1 = f"{base}/d1"
    os.mkdir(d1)
    report("mkdir: listdir shows it", "d1" in os.listdir(base), f"listdir {os.listdir(base)}")
    st = errno_of(lambda: os.stat(d1))
    report("mkdir: stat is a directory", st is None and stat.S_ISDIR(os.stat(d1).st_mode),
           f"stat: {errno.errorcode.get(st, 'mode %o' % os.stat(d1).st_mode if st is None else st)}")
    report("mkdir: in the emulator", os.path.isdir(f"{emu}/d1"), f"{emu}/d1 is not a directory")
    expect_errno("mkdir of an existing directory", lambda: os.mkdir(d1), errno.EEXIST)
    put(f"{base}/plain", b"plain")
    expect_errno("mkdir of an existing file", lambda: os.mkdir(f"{base}/plain"), errno.EEXIST)

    os.mkdir(f"{base}/d2")
    put(f"{base}/d2/f.txt", b"x")
    expect_errno("rmdir of a non-empty directory", lambda: os.rmdir(f"{base}/d2"), errno.ENOTEMPTY)
    report("rmdir of a non-empty directory keeps its file", get(f"{base}/d2/f.txt") == b"x"
           if os.path.exists(f"{base}/d2/f.txt") else False, "d2/f.txt is gone")

    os.mkdir(f"{base}/d3")
    e = errno_of(lambda: os.rmdir(f"{base}/d3"))
    report("rmdir of an empty directory", e is None, f"rmdir: {errno.errorcode.get(e, e)}")
    expect_errno("stat after rmdir", lambda: os.stat(f"{base}/d3"), errno.ENOENT)
    report("rmdir: gone from the listing", "d3" not in os.listdir(base), f"listdir {os.listdir(base)}")
    report("rmdir: gone from the emulator", not os.path.exists(f"{emu}/d3"), f"{emu}/d3 exists")

    put(f"{base}/gone.txt", b"soon gone")
    e = errno_of(lambda: os.unlink(f"{base}/gone.txt"))
    report("unlink of a file", e is None, f"unlink: {errno.errorcode.get(e, e)}")
    expect_errno("stat after unlink", lambda: os.stat(f"{base}/gone.txt"), errno.ENOENT)
    expect_errno("open after unlink", lambda: open(f"{base}/gone.txt", "rb"), errno.ENOENT)
    report("unlink: gone from the listing", "gone.txt" not in os.listdir(base), f"listdir {os.listdir(base)}")
    report("unlink: gone from the emulator", not os.path.exists(f"{emu}/gone.txt"), f"{emu}/gone.txt exists")
    expect_errno("unlink of a missing file", lambda: os.unlink(f"{base}/never.txt"), errno.ENOENT)

    put(f"{base}/a.txt", b"AAA")
    put(f"{base}/b.txt", b"BBBBBBBB")
    os.stat(f"{base}/b.txt")  # cached metadata of the target must not survive the rename
    e = errno_of(lambda: os.rename(f"{base}/a.txt", f"{base}/b.txt"))
    report("rename onto an existing file", e is None, f"rename: {errno.errorcode.get(e, e)}")
    report("rename onto an existing file: new content", get(f"{base}/b.txt") == b"AAA",
           f"b.txt holds {get(f'{base}/b.txt')!r}")
    report("rename onto an existing file: new size", os.stat(f"{base}/b.txt").st_size == 3,
           f"st_size {os.stat(f'{base}/b.txt').st_size}")
    expect_errno("rename: source gone", lambda: os.stat(f"{base}/a.txt"), errno.ENOENT)
    report("rename: emulator", not os.path.exists(f"{emu}/a.txt") and get(f"{emu}/b.txt") == b"AAA",
           f"emulator has a.txt={os.path.exists(f'{emu}/a.txt')}, b.txt={get(f'{emu}/b.txt')!r}")

    os.mkdir(f"{base}/r1")
    os.mkdir(f"{base}/r1/sub")
    tree = {"x": b"x" * 10, "y": pattern(300000, "y"), "sub/z": b"z", "sub/empty": b""}
    for k, v in tree.items():
        put(f"{base}/r1/{k}", v)
    os.listdir(f"{base}/r1")  # a cached listing of the source must not survive the rename
    e = errno_of(lambda: os.rename(f"{base}/r1", f"{base}/r2"))
    report("rename of a directory", e is None, f"rename: {errno.errorcode.get(e, e)}")
    got = {}
    for k in tree:
        try:
            got[k] = get(f"{base}/r2/{k}")
        except OSError as ex:
            got[k] = ex
    report("rename of a directory: files moved", got == tree,
           "; ".join(f"{k}: {got[k]!r:.60}" for k in tree if got[k] != tree[k]))
    report("rename of a directory: listing",
           sorted(os.listdir(f"{base}/r2")) == ["sub", "x", "y"] and
           sorted(os.listdir(f"{base}/r2/sub")) == ["empty", "z"],
           f"{sorted(os.listdir(f'{base}/r2'))} {sorted(os.listdir(f'{base}/r2/sub'))}")
    expect_errno("rename of a directory: source gone", lambda: os.stat(f"{base}/r1"), errno.ENOENT)
    expect_errno("rename of a directory: source file gone", lambda: os.stat(f"{base}/r1/x"), errno.ENOENT)
    report("rename of a directory: emulator",
           not os.path.exists(f"{emu}/r1") and all(get(f"{emu}/r2/{k}") == v for k, v in tree.items()
                                                   if os.path.exists(f"{emu}/r2/{k}")) and
           all(os.path.exists(f"{emu}/r2/{k}") for k in tree),
           f"emulator: r1 exists={os.path.exists(f'{emu}/r1')}, "
           f"r2 holds {sorted(os.listdir(f'{emu}/r2')) if os.path.isdir(f'{emu}/r2') else 'nothing'}")

    e = None
    try:
        open(f"{base}/b.txt", "x")
    except FileExistsError:
        e = "EEXIST"
    except OSError as ex:
        e = errno.errorcode.get(ex.errno, ex.errno)
    report("open('x') of an existing file", e == "EEXIST", f"got {e or 'success'}")
    report("open('x') of an existing file keeps it", get(f"{base}/b.txt") == b"AAA",
           f"b.txt holds {get(f'{base}/b.txt')!r}")
    e = errno_of(lambda: put(f"{base}/fresh.txt", b"fresh", "xb"))
    report("open('x') of a new file", e is None and get(f"{base}/fresh.txt") == b"fresh",
           f"open: {errno.errorcode.get(e, e)}")

    e = errno_of(lambda: os.utime(f"{base}/b.txt", (1000000000, 1000000000)))
    report("os.utime on a virtual file", e is None, f"utime: {errno.errorcode.get(e, e)}")
    e = errno_of(lambda: os.utime(f"{base}/b.txt"))
    report("os.utime(now) on a virtual file", e is None, f"utime: {errno.errorcode.get(e, e)}")
    e = errno_of(lambda: os.chmod(f"{base}/b.txt", 0o600))
    report("os.chmod on a virtual file", e is None, f"chmod: {errno.errorcode.get(e, e)}")
    e = errno_of(lambda: os.chmod(f"{base}/d1", 0o700))
    report("os.chmod on a virtual directory", e is None, f"chmod: {errno.errorcode.get(e, e)}")
    report("utime/chmod leave the content", get(f"{base}/b.txt") == b"AAA", f"{get(f'{base}/b.txt')!r}")


# ---------------------------------------------------------------------------- writers


def copyfileobj(src, dst):
    with open(src, "rb") as i, open(dst, "wb") as o:
        shutil.copyfileobj(i, o, 1 << 20)


def download(directory, src):
    """The Hugging Face / pip pattern: NAME.incomplete written in pieces, fsynced, replaced."""
    os.makedirs(directory, exist_ok=True)
    tmp, final = f"{directory}/model.bin.incomplete", f"{directory}/model.bin"
    with open(src, "rb") as i, open(tmp, "wb") as o:
        while piece := i.read(3 << 19):
            o.write(piece)
        o.flush()
        os.fsync(o.fileno())
    os.replace(tmp, final)
    expect_errno("download: .incomplete gone (stat)", lambda: os.stat(tmp), errno.ENOENT)
    expect_errno("download: .incomplete gone (open)", lambda: open(tmp, "rb"), errno.ENOENT)
    report("download: listing", os.listdir(directory) == ["model.bin"], f"listdir {os.listdir(directory)}")
    report("download: content", get(final) == get(src), "model.bin differs from the source")


def fsync_write(directory):
    """Writes continue after os.fsync (which commits what is there): small, then multipart."""
    for name, first, more in (("small", b"hello", b" world"),
                              ("large", pattern(1536 << 10, 1), pattern(1 << 20, 2))):
        path = f"{directory}/{name}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, first)
            os.fsync(fd)
            os.write(fd, more)
            os.fsync(fd)
            os.write(fd, more)
            os.close(fd)
            got = get(path)
        except OSError as e:
            got = e
        report(f"write after fsync ({name})", got == first + more + more,
               f"read back {got!r:.80}" if not isinstance(got, bytes) else
               f"read back {len(got)} bytes, want {len(first + more + more)}")


def numpy_save(path):
    import numpy as np
    rng = np.random.default_rng(7)
    np.save(path, rng.standard_normal((512, 1031)).astype(np.float32))


def numpy_check(path):
    import numpy as np
    rng = np.random.default_rng(7)
    want = rng.standard_normal((512, 1031)).astype(np.float32)
    got = np.load(path)
    report("np.load of the saved array", got.dtype == want.dtype and np.array_equal(got, want),
           f"dtype {got.dtype}, shape {got.shape}")


def state_dict():
    import torch
    g = torch.Generator().manual_seed(11)
    return {"embed.weight": torch.randn(1000, 512, generator=g),
            "layer.0.bias": torch.randn(512, generator=g).half(),
            "layer.0.ids": torch.arange(70000, dtype=torch.int64),
            "empty": torch.empty(0)}


def torch_save(path):
    import torch
    torch.save(state_dict(), path)


def torch_check(path):
    import torch
    want = state_dict()
    got = torch.load(path, weights_only=True)
    same = got.keys() == want.keys() and all(
        got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]) for k in want)
    report("torch.load of the saved state dict", same, f"keys {sorted(got)}")


def sqlite_write(path):
    con = sqlite3.connect(path)
    con.execute("create table t (id integer primary key, name text, value real, blob blob)")
    con.executemany("insert into t values (?, ?, ?, ?)",
                    ((i, f"row {i} " + "x" * (i % 37), i * 0.5, pattern(i % 500, i)) for i in range(1000)))
    con.commit()
    con.execute("create index t_name on t(name)")
    con.execute("update t set value = -value where id % 3 = 0")
    con.commit()
    con.close()


def sqlite_dump(path):
    con = sqlite3.connect(path)
    rows = con.execute("select * from t order by id").fetchall()
    check = con.execute("pragma integrity_check").fetchone()[0]
    print(len(rows), check, hashlib.sha256(repr(rows).encode()).hexdigest())
    con.close()


# ---------------------------------------------------------------------------- read-your-writes


def ryw(path, go, ready, mode):
    """Caches PATH's state, says ready, waits for the file GO to appear (another process changes
    PATH meanwhile), then checks that the change is seen."""
    if mode == "create":
        report("ryw: missing before", not os.path.exists(path), f"{path} exists")
        expect_errno("ryw: open missing before", lambda: open(path, "rb"), errno.ENOENT)
        os.listdir(os.path.dirname(path))
    else:
        before = get(path)
        os.listdir(os.path.dirname(path))
    put(ready, b"")
    deadline = time.time() + 60
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.05)
    if mode == "create":
        report("ryw: exists after another process created it", os.path.exists(path), "os.path.exists is False")
        try:
            got = get(path)
        except OSError as e:
            got = e
        report("ryw: content after another process created it", got == b"created\n", f"read {got!r}")
        report("ryw: listed after another process created it",
               os.path.basename(path) in os.listdir(os.path.dirname(path)),
               f"listdir {os.listdir(os.path.dirname(path))}")
    elif mode == "unlink":
        report("ryw: gone after another process unlinked it", not os.path.exists(path), "os.path.exists is True")
        expect_errno("ryw: open after another process unlinked it", lambda: open(path, "rb"), errno.ENOENT)
        report("ryw: unlisted after another process unlinked it",
               os.path.basename(path) not in os.listdir(os.path.dirname(path)),
               f"listdir {os.listdir(os.path.dirname(path))}")
    else:  # overwrite
        got = get(path)
        report("ryw: new content after another process replaced it", got == b"version 2, longer\n",
               f"read {got!r} (before: {before!r})")
        report("ryw: new size after another process replaced it", os.stat(path).st_size == 18,
               f"st_size {os.stat(path).st_size}")


# ---------------------------------------------------------------------------- concurrency


def excl(t0, me, *paths):
    """At t0 + 0.3 s * i, os.open(paths[i], O_CREAT|O_EXCL|O_WRONLY): prints one line per path."""
    for i, p in enumerate(paths):
        time.sleep(max(0.0, float(t0) + 0.3 * i - time.time()))
        try:
            fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as e:
            print(f"{i} open {errno.errorcode.get(e.errno, e.errno)}")
            continue
        try:
            os.write(fd, f"winner {me}\n".encode())
            os.close(fd)
            print(f"{i} created")
        except OSError as e:
            print(f"{i} open ok, then write/close {errno.errorcode.get(e.errno, e.errno)}")
    sys.stdout.flush()


# ---------------------------------------------------------------------------- errors


def write_file(path, size):
    """Writes SIZE pseudo-random bytes to PATH with open('wb'); a failure is Python's traceback."""
    with open(path, "wb") as f:
        data = pattern(int(size), path)
        for off in range(0, len(data), 1 << 20):
            f.write(data[off:off + (1 << 20)])


def bad_fds(existing, missing_dir_file):
    fd = os.open(existing, os.O_RDONLY)
    expect_errno("os.write to a read-only descriptor", lambda: os.write(fd, b"x"), errno.EBADF)
    os.close(fd)
    report("read-only descriptor: content unchanged", get(existing) == b"keep me\n", f"{get(existing)!r}")
    expect_errno("open('wb') under a missing directory", lambda: open(missing_dir_file, "wb"), errno.ENOENT)
    expect_errno("os.open(O_CREAT) under a missing directory",
                 lambda: os.open(missing_dir_file, os.O_CREAT | os.O_WRONLY, 0o644), errno.ENOENT)


if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
    sys.exit(1 if failures else 0)
