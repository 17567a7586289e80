"""oss2, the official OSS SDK, against the emulator, with its CRC64 check on (enable_crc=True):
`write DIR` (run under the shim, DIR on the prefix, or locally) writes files; `sdk-get BUCKET-DIR`
reads them with oss2 get_object and prints their checksums (oss2 compares the CRC64 of the body
with x-oss-hash-crc64ecma and raises on a mismatch); `sdk-put KEYPREFIX` writes objects with
put_object (whole and chunked) and a multipart upload (the emulator has no append_object); `read DIR` reads files with Python's open."""
import hashlib
import os
import sys

SIZES = {"small.bin": 1000, "one-mib.bin": 1 << 20, "odd.bin": (5 << 20) + 12345, "empty.bin": 0}


def data(name):
    n = SIZES[name]
    seed = hashlib.sha256(name.encode()).digest()
    out = bytearray()
    while len(out) < n:
        seed = hashlib.sha256(seed).digest()
        out += seed * 64
    return bytes(out[:n])


def bucket():
    import oss2
    auth = oss2.Auth(os.environ["OSS_ACCESS_KEY_ID"], os.environ["OSS_ACCESS_KEY_SECRET"])
    return oss2.Bucket(auth, os.environ["OSSSHIM_ENDPOINT"], "bkt", enable_crc=True, is_cname=False)


def write(d):
    os.makedirs(d, exist_ok=True)
    for name in SIZES:
        with open(os.path.join(d, name), "wb") as f:
            f.write(data(name))
    print(sorted(os.listdir(d)))


def sdk_get(prefix):
    b = bucket()
    for name in sorted(SIZES):
        body = b.get_object(f"{prefix}/{name}").read()  # the CRC64 check runs on read
        head = b.head_object(f"{prefix}/{name}")
        print(name, len(body), body == data(name), hashlib.sha256(body).hexdigest()[:16], "crc64", head.server_crc)


def sdk_put(prefix):
    import oss2
    b = bucket()
    b.put_object(f"{prefix}/small.bin", data("small.bin"))
    b.put_object(f"{prefix}/empty.bin", b"")
    key = f"{prefix}/odd.bin"
    body = data("odd.bin")
    up = b.init_multipart_upload(key).upload_id
    parts = []
    for i, off in enumerate(range(0, len(body), 1 << 20)):
        r = b.upload_part(key, up, i + 1, body[off:off + (1 << 20)])
        parts.append(oss2.models.PartInfo(i + 1, r.etag))
    b.complete_multipart_upload(key, up, parts)
    b.put_object(f"{prefix}/one-mib.bin", iter([data("one-mib.bin")[i:i + 300000] for i in range(0, 1 << 20, 300000)]))  # chunked
    print("put", sorted(SIZES))


def read(d):
    for name in sorted(SIZES):
        with open(os.path.join(d, name), "rb") as f:
            got = f.read()
        print(name, len(got), got == data(name), hashlib.sha256(got).hexdigest()[:16])


{"write": write, "sdk-get": sdk_get, "sdk-put": sdk_put, "read": read}[sys.argv[1]](sys.argv[2])
