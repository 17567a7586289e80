"""One reader of the soak and kill tests: N verified reads of virtual files against local copies.

usage: soak_reader.py VIRTUAL_DIR LOCAL_DIR READS SEED
Each read opens a random object and reads a random range with pread (sometimes the whole file,
sometimes through mmap), then compares with the local copy. Prints one line:
  reads N ok N errors N wrong N [errno counts]
"wrong" counts reads that succeeded with bytes other than the object's: silent corruptions.
"""
import collections
import errno
import mmap
import os
import random
import sys

vdir, ldir, reads, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
names = sorted(os.listdir(ldir))
local = {n: open(os.path.join(ldir, n), "rb").read() for n in names}
ok = errors = wrong = 0
codes = collections.Counter()
print("started", flush=True)
for _ in range(reads):
    name = rng.choice(names)
    want = local[name]
    how = rng.random()
    try:
        fd = os.open(os.path.join(vdir, name), os.O_RDONLY)
        try:
            if how < 0.1:
                got, expect = b"".join(iter(lambda: os.read(fd, 1 << 20), b"")), want
            elif how < 0.2 and want:
                with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m:
                    off = rng.randrange(len(want))
                    n = rng.randrange(1, 3 << 20)
                    got, expect = m[off:off + n], want[off:off + n]
            else:
                off = rng.randrange(len(want) + 1)
                n = rng.randrange(1, 3 << 20)
                got, expect = os.pread(fd, n, off), want[off:off + n]
        finally:
            os.close(fd)
        if got == expect:
            ok += 1
        else:
            wrong += 1
            print(f"WRONG {name} how={how:.2f} got {len(got)} bytes, want {len(expect)}", file=sys.stderr)
    except OSError as e:
        errors += 1
        codes[errno.errorcode.get(e.errno, str(e.errno))] += 1
print(f"reads {reads} ok {ok} errors {errors} wrong {wrong}", " ".join(f"{k}={v}" for k, v in sorted(codes.items())),
      flush=True)
