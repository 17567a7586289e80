"""A Hugging Face hub cache layout, as huggingface_hub writes it: content-addressed blobs, a
snapshot per revision whose files are relative symlinks to the blobs, and refs/main naming the
revision. `write DIR` makes it; `read DIR` reads every snapshot file back through its link and
prints name, size, sha256 and the link text (what transformers' from_pretrained does)."""
import hashlib
import os
import sys

FILES = {"config.json": b'{"model_type": "bert", "hidden_size": 8}\n',
         "tokenizer.json": b'{"version": "1.0"}\n' * 50,
         "model.safetensors": bytes(range(256)) * 4096}
REV = "0123456789abcdef0123456789abcdef01234567"


def write(root):
    repo = os.path.join(root, "models--org--name")
    os.makedirs(os.path.join(repo, "blobs"))
    os.makedirs(os.path.join(repo, "snapshots", REV, "sub"))
    os.makedirs(os.path.join(repo, "refs"))
    for name, data in FILES.items():
        sha = hashlib.sha256(data).hexdigest()
        with open(os.path.join(repo, "blobs", sha), "wb") as f:
            f.write(data)
        os.symlink(os.path.join("..", "..", "blobs", sha), os.path.join(repo, "snapshots", REV, name))
    sha = hashlib.sha256(FILES["config.json"]).hexdigest()
    os.symlink(os.path.join("..", "..", "..", "blobs", sha), os.path.join(repo, "snapshots", REV, "sub", "config.json"))
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(REV)


def read(root):
    repo = os.path.join(root, "models--org--name")
    with open(os.path.join(repo, "refs", "main")) as f:
        rev = f.read()
    snap = os.path.join(repo, "snapshots", rev)
    for dirpath, dirs, files in sorted(os.walk(snap)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                data = f.read()
            rel = os.path.relpath(path, snap)
            real = os.path.relpath(os.path.realpath(path), repo)
            print(rel, len(data), hashlib.sha256(data).hexdigest(), os.readlink(path), real,
                  os.path.islink(path), os.lstat(path).st_size)


{"write": write, "read": read}[sys.argv[1]](sys.argv[2])
