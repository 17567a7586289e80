"""huggingface_hub's own download code writing into the prefix: `serve SRC PORTFILE` is a minimal
Hub on loopback (the HEAD/GET /{repo}/resolve/{rev}/{file} and /api/models/{repo}/revision/{rev}
answers huggingface_hub reads: X-Repo-Commit, ETag or X-Linked-Etag/X-Linked-Size for LFS files)
serving the files of SRC as repo org/tiny-llama; run outside the shim. `download DIR` (HF_HOME=DIR/hf,
HF_ENDPOINT the loopback Hub) runs snapshot_download and hf_hub_download into the cache (blobs,
.incomplete + rename, relative snapshot symlinks, refs/main, .locks) and into a local_dir (the
`huggingface-cli download --local-dir` path); `read DIR` goes offline (HF_HUB_OFFLINE=1) and reads
the cache back as transformers does: snapshot_download(local_files_only), scan_cache_dir,
hf_hub_download(local_files_only), from_pretrained('org/tiny-llama') with logits."""
import hashlib
import http.server
import json
import os
import sys

REPO = "org/tiny-llama"
REV = "5f1c0ffee5f1c0ffee5f1c0ffee5f1c0ffee5f1c"


def serve(src, portfile):
    files = {n: open(os.path.join(src, n), "rb").read() for n in sorted(os.listdir(src))}

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, body):
            path = self.path.split("?")[0]
            if path.startswith(f"/api/models/{REPO}/revision/"):
                data = json.dumps({"id": REPO, "modelId": REPO, "sha": REV, "private": False,
                                   "siblings": [{"rfilename": n} for n in files]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)
                return
            prefix = f"/{REPO}/resolve/"
            name = path[len(prefix):].split("/", 1)[1] if path.startswith(prefix) and path.count("/") >= 5 else None
            if name not in files:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = files[name]
            self.send_response(200)
            self.send_header("X-Repo-Commit", REV)
            if name.endswith(".safetensors"):  # an LFS file: the blob is named by its sha256
                self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            else:  # a git file: the blob is named by its git blob sha1
                git_sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                self.send_header("ETag", f'"{git_sha}"')
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):
            self.answer(False)

        def do_GET(self):
            self.answer(True)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    srv.serve_forever()


def listing(top):
    for dirpath, dirs, names in sorted(os.walk(top)):
        dirs.sort()
        for n in sorted(names + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, top)
            if os.path.islink(p):
                with open(p, "rb") as f:
                    data = f.read()
                print(" ", rel, "->", os.readlink(p), len(data), hashlib.sha256(data).hexdigest()[:16])
            elif rel.endswith(".metadata"):  # local_dir metadata: commit, etag, then a timestamp
                with open(p) as f:
                    print(" ", rel, f.read().splitlines()[:2])
            else:
                with open(p, "rb") as f:
                    data = f.read()
                print(" ", rel, len(data), hashlib.sha256(data).hexdigest()[:16])


def download(d):
    from huggingface_hub import hf_hub_download, snapshot_download
    snap = snapshot_download(REPO)
    print("snapshot", os.path.relpath(snap, d))
    one = hf_hub_download(REPO, "config.json")  # already cached: no new blob
    print("config", os.path.relpath(one, d), os.readlink(one))
    ld = snapshot_download(REPO, local_dir=os.path.join(d, "local-dir"))
    print("local_dir", os.path.relpath(ld, d))
    print("cache")
    listing(os.path.join(d, "hf"))
    print("local-dir")
    listing(os.path.join(d, "local-dir"))


def read(d):
    import huggingface_hub
    import torch
    from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download
    from transformers import AutoModelForCausalLM, AutoTokenizer
    snap = snapshot_download(REPO, local_files_only=True)
    print("snapshot", os.path.relpath(snap, d), sorted(os.listdir(snap)))
    print("index", os.path.relpath(hf_hub_download(REPO, "model.safetensors.index.json", local_files_only=True), d))
    info = scan_cache_dir()
    for repo in info.repos:
        print("repo", repo.repo_id, repo.repo_type, repo.nb_files, repo.size_on_disk, sorted(repo.refs))
        for rev in repo.revisions:
            print(" rev", rev.commit_hash, rev.nb_files, rev.size_on_disk, sorted(rev.refs),
                  sorted((f.file_name, f.size_on_disk, os.path.relpath(f.blob_path, d)) for f in rev.files))
    print("warnings", [str(w) for w in info.warnings])
    tok = AutoTokenizer.from_pretrained(REPO)
    model = AutoModelForCausalLM.from_pretrained(REPO).eval()
    ids = tok("the model is in oss", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    print("logits", hashlib.sha256(logits.numpy().tobytes()).hexdigest())
    local = AutoModelForCausalLM.from_pretrained(os.path.join(d, "local-dir")).eval()
    with torch.no_grad():
        print("local-dir logits", hashlib.sha256(local(ids).logits.numpy().tobytes()).hexdigest())
    print("huggingface_hub", huggingface_hub.__version__)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    else:
        {"download": download, "read": read}[sys.argv[1]](sys.argv[2])
