"""gguf (llama.cpp's Python package) on a directory: `save DIR` writes a tiny random Llama
(2 layers, SentencePiece-style vocabulary with byte tokens, f32 and f16 tensors) with GGUFWriter,
once as one file and once split by tensor count (tiny-split-0000N-of-0000M.gguf, split.* keys, as
gguf-split writes); `read DIR` reads every file back with GGUFReader (memory-mapped) and prints its
keys and a checksum of every tensor. `llama DIR` (not in the test suite: llama-cpp-python is not
in requirements.txt, see README) loads both with llama_cpp.Llama, use_mmap on and off, and prints
the greedy tokens of a fixed prompt."""
import hashlib
import os
import sys

import gguf
import numpy as np

WORDS = ["▁the", "▁model", "▁is", "▁in", "▁oss", "▁a", "▁b", "▁c"]


def write(path, split_max_tensors=0):
    rng = np.random.default_rng(5)
    n_embd, n_ff, n_head, n_head_kv, n_layer = 64, 128, 4, 2, 2
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + WORDS
    types = [2, 3, 3] + [6] * 256 + [1] * len(WORDS)
    w = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    w.add_name("tiny-llama")
    w.add_context_length(128)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(n_layer)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * 259 + [-float(i) for i in range(len(WORDS))])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    n_vocab, kv = len(tokens), n_embd // n_head * n_head_kv

    def t(name, shape, dtype=np.float16):
        w.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(dtype))

    t("token_embd.weight", (n_vocab, n_embd))
    for i in range(n_layer):
        t(f"blk.{i}.attn_norm.weight", (n_embd,), np.float32)
        t(f"blk.{i}.attn_q.weight", (n_embd, n_embd))
        t(f"blk.{i}.attn_k.weight", (kv, n_embd))
        t(f"blk.{i}.attn_v.weight", (kv, n_embd))
        t(f"blk.{i}.attn_output.weight", (n_embd, n_embd))
        t(f"blk.{i}.ffn_norm.weight", (n_embd,), np.float32)
        t(f"blk.{i}.ffn_gate.weight", (n_ff, n_embd))
        t(f"blk.{i}.ffn_up.weight", (n_ff, n_embd))
        t(f"blk.{i}.ffn_down.weight", (n_embd, n_ff))
    t("output_norm.weight", (n_embd,), np.float32)
    t("output.weight", (n_vocab, n_embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def save(d):
    write(os.path.join(d, "tiny.gguf"))
    write(os.path.join(d, "tiny-split.gguf"), split_max_tensors=8)
    for n in sorted(os.listdir(d)):
        print(n, os.path.getsize(os.path.join(d, n)))


def read(d):
    for n in sorted(os.listdir(d)):
        r = gguf.GGUFReader(os.path.join(d, n))
        keys = []
        for k, f in r.fields.items():
            v = f.contents() if hasattr(f, "contents") else None
            if isinstance(v, list) and len(v) > 8:
                v = f"[{len(v)} items] {hashlib.sha256(repr(v).encode()).hexdigest()[:12]}"
            keys.append(f"{k}={v}")
        print(n, len(r.tensors), "tensors;", "; ".join(keys))
        for t in r.tensors:
            print(" ", t.name, t.tensor_type.name, list(t.shape), t.n_bytes,
                  hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest()[:16])


def llama(d):
    from llama_cpp import Llama
    for n in ("tiny.gguf", "tiny-split-00001-of-00003.gguf"):
        for mmap in (True, False):
            m = Llama(os.path.join(d, n), n_ctx=64, n_threads=1, use_mmap=mmap, verbose=False, seed=1)
            ids = m.tokenize(b"the model is in oss")
            out = []
            for tok in m.generate(ids, temp=0.0, top_k=1):
                out.append(tok)
                if len(out) == 12:
                    break
            print(n, "mmap" if mmap else "no-mmap", ids, out)
            m.close()


{"save": save, "read": read, "llama": llama}[sys.argv[1]](sys.argv[2])
