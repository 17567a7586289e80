"""transformers on a directory: `save DIR` makes a tiny randomly initialised 2-layer Llama (fixed
seed) and a word-level fast tokenizer and writes them with save_pretrained into DIR/tiny-llama
(safetensors shards of <= 200 KB with model.safetensors.index.json, config, generation config,
tokenizer.json and its configs), printing the logits of a fixed prompt; `load DIR` reads them back
with AutoTokenizer/AutoModelForCausalLM.from_pretrained and prints the same logits and a greedy
generation. The harness checks both runs print the same, locally and on the prefix."""
import hashlib
import json
import os
import sys

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(253)] + ["the", "model", "is", "in", "oss"]
PROMPT = "the model is in oss w1 w2 w3"


def logits_line(model, tok):
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    # Greedy decoding by hand: model.generate imports torch.distributed.fsdp, which Debian's
    # torch 1.13 cannot import on Python 3.11 (a dataclass with a mutable default).
    gen = ids
    with torch.no_grad():
        for _ in range(8):
            gen = torch.cat([gen, model(gen).logits[:, -1:].argmax(-1)], dim=1)
    return (f"ids {ids.tolist()} logits {list(logits.shape)} sha256 {hashlib.sha256(logits.numpy().tobytes()).hexdigest()} "
            f"greedy {gen[0, ids.shape[1]:].tolist()}")


def save(d):
    out = os.path.join(d, "tiny-llama")
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(WORDS), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(out, max_shard_size="200KB", safe_serialization=True)
    fast.save_pretrained(out)
    print("saved", logits_line(model, fast))
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        index = json.load(f)
    print("shards", sorted(set(index["weight_map"].values())), "tensors", len(index["weight_map"]))
    for name in sorted(os.listdir(out)):
        print(name, os.path.getsize(os.path.join(out, name)))


def load(d):
    src = os.path.join(d, "tiny-llama")
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src).eval()
    print("loaded", type(tok).__name__, type(model).__name__, logits_line(model, tok))
    # The saved logits must equal the loaded ones: compare with the line `save` printed.
    print("transformers", transformers.__version__)


if __name__ == "__main__":
    {"save": save, "load": load}[sys.argv[1]](sys.argv[2])
