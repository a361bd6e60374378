#!/usr/bin/env python3
"""Reference for the real Gemma 3 270M (base) test (issue 24), from Hugging Face
transformers: the GGUF's weights dequantized with the gguf package and loaded
into Gemma3ForCausalLM (float64; norms stored as 1 + w, as llama.cpp's
converter writes them), then

  - for the prompt "Question: What is the capital of France?\nAnswer:"
    (tokenized by m40-llm; the file is the base model, not the instruct one), the 16 largest logits and the log-sum-exp at every position
    and the greedy continuation;
  - llama.cpp-style perplexity of tests/data/ppl-sample.txt (m40-llm's token
    ids, one chunk of --ctx tokens, first token BOS, second half scored):
    the context is longer than the 512-token sliding window.

Writes tests/fixtures/gemma3/gemma3-270m.ref.json. A developer tool (needs
torch, transformers, gguf); CI never runs it.
    python3 tools/make_gemma3_reference.py MODEL.gguf M40LLM_BIN [--ctx 768]
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
import transformers as tf
import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the file is the base model (google/gemma-3-270m): a completion prompt
PROMPT = "Question: What is the capital of France?\nAnswer:"
TOP = 16


def tokenize(binary, model, text, special):
    args = [binary, "tokenize", model, "-", "--add-special"] + (["--parse-special"] if special else [])
    out = subprocess.run(args, input=text.encode(), capture_output=True, check=True).stdout
    return [int(x) for x in out.split()]


def load_model(path):
    r = gguf.GGUFReader(path)
    f = {k: v for k, v in r.fields.items()}

    def u(key):
        v = f[key]
        return v.parts[v.data[0]][0].item()

    a = "gemma3"
    cfg = tf.Gemma3TextConfig(
        vocab_size=len(f["tokenizer.ggml.tokens"].data),
        hidden_size=u(f"{a}.embedding_length"), intermediate_size=u(f"{a}.feed_forward_length"),
        num_hidden_layers=u(f"{a}.block_count"), num_attention_heads=u(f"{a}.attention.head_count"),
        num_key_value_heads=u(f"{a}.attention.head_count_kv"), head_dim=u(f"{a}.attention.key_length"),
        max_position_embeddings=u(f"{a}.context_length"),
        rms_norm_eps=u(f"{a}.attention.layer_norm_rms_epsilon"),
        query_pre_attn_scalar=u(f"{a}.attention.key_length"),
        sliding_window=u(f"{a}.attention.sliding_window"),
        rope_parameters={"full_attention": {"rope_type": "default",
                                           "rope_theta": u(f"{a}.rope.freq_base")},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
        tie_word_embeddings=True, attn_implementation="eager")
    model = tf.Gemma3ForCausalLM(cfg).double().eval()
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, cfg.num_hidden_layers)
    tensors = {t.name: t for t in r.tensors}
    with torch.no_grad():
        for name, p in model.named_parameters():
            gname = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
            t = tensors[gname]
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
            w = w.reshape(tuple(p.shape))
            if name.endswith("norm.weight"):
                w = w - 1.0  # the file stores 1 + w
            p.copy_(torch.from_numpy(w))
    return model, cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("binary")
    ap.add_argument("--ctx", type=int, default=768)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "gemma3",
                                                  "gemma3-270m.ref.json"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, cfg = load_model(a.model)
    prompt = tokenize(a.binary, a.model, PROMPT, True)
    with torch.no_grad():
        lg = model(torch.tensor([prompt])).logits[0].numpy()
    top = np.argsort(-lg, axis=1, kind="stable")[:, :TOP]
    lse = [float(np.log(np.exp(r - r.max()).sum()) + r.max()) for r in lg]
    seq, gen = list(prompt), []
    nxt = int(np.argmax(lg[-1]))
    for _ in range(16):
        gen.append(nxt)
        seq.append(nxt)
        with torch.no_grad():
            row = model(torch.tensor([seq])).logits[0, -1].numpy()
        nxt = int(np.argmax(row))
    with open(os.path.join(ROOT, "tests", "data", "ppl-sample.txt"), "rb") as fh:
        text = fh.read().decode()
    ids = tokenize(a.binary, a.model, text, False)
    n = a.ctx
    assert len(ids) >= n, f"{len(ids)} tokens < ctx {n}"
    chunk = list(ids[:n])
    chunk[0] = 2  # BOS, as m40-llm perplexity does
    with torch.no_grad():
        cl = model(torch.tensor([chunk])).logits[0].numpy()
    nll = 0.0
    first = n // 2
    for j in range(first, n - 1):
        r = cl[j]
        m = r.max()
        nll += (math.log(np.exp(r - m).sum()) + m) - r[ids[j + 1]]
    count = n - 1 - first
    ppl = math.exp(nll / count)
    out = {"model_sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
           "transformers": tf.__version__, "prompt": PROMPT, "prompt_tokens": prompt,
           "top_ids": top.tolist(), "top_logits": [[float(lg[i, j]) for j in top[i]]
                                                   for i in range(len(prompt))],
           "lse": lse, "greedy": gen,
           "greedy_text_note": "16 greedy ids after the prompt, float64 transformers",
           "ppl_ctx": n, "ppl_tokens": ids[:n], "ppl": ppl, "ppl_scored": count}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump(out, fh)
        fh.write("\n")
    print(f"prompt {len(prompt)} tokens, greedy {gen}, ppl {ppl:.4f} over {count} tokens")


if __name__ == "__main__":
    sys.exit(main())
