#!/usr/bin/env python3
"""Oracle fixtures for the architecture layer (issue 24), from Hugging Face
transformers: for each architecture a tiny random model built from the real
config class (features switched on), run in float64 on exactly the weights a
GGUF stores (F32, and Q8_0 dequantized back), converted to GGUF with the gguf
package's tensor-name maps as llama.cpp's converter does (llama Q/K rows
permuted for its adjacent-pair RoPE, gemma norms stored as 1 + w), with the
tokenizer of tests/fixtures/reference/synth-f32.gguf.

Writes tests/fixtures/arch/NAME.{gguf,exact.bin,tokens.json} in the format of
tests/fixtures/reference (README there): logits [48][512] float32 for the same
48 tokens, and the 16-token greedy continuation of the float64 model.

A developer tool (needs torch, transformers, gguf, numpy); CI never runs it.
    python3 tools/make_arch_fixtures.py [--out DIR] [NAME...]
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import transformers as tf
import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "tests", "fixtures", "reference")
N_GREEDY = 16
V, E, F, H, HKV, NL = 512, 64, 128, 4, 2, 3
WINDOW = 8  # shorter than the 48-token sequence


def tokens():
    with open(os.path.join(REF, "synth-f32.tokens.json")) as f:
        return json.load(f)["tokens"]


def common(**kw):
    d = dict(vocab_size=V, hidden_size=E, intermediate_size=F, num_hidden_layers=NL,
             num_attention_heads=H, num_key_value_heads=HKV, max_position_embeddings=2048,
             rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0,
             attn_implementation="eager")
    d.update(kw)
    return d


# name -> (gguf arch, config class, model class, config kwargs, extra GGUF keys)
CASES = {
    "llama3": ("llama", tf.LlamaConfig, tf.LlamaForCausalLM, common(
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64})),
    "mistral-swa": ("llama", tf.MistralConfig, tf.MistralForCausalLM, common(
        tie_word_embeddings=False, sliding_window=WINDOW,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    "qwen2": ("qwen2", tf.Qwen2Config, tf.Qwen2ForCausalLM, common(
        tie_word_embeddings=False, rope_parameters={"rope_type": "default",
                                                    "rope_theta": 100000.0})),
    "qwen2-yarn": ("qwen2", tf.Qwen2Config, tf.Qwen2ForCausalLM, common(
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 256})),
    "qwen3": ("qwen3", tf.Qwen3Config, tf.Qwen3ForCausalLM, common(
        head_dim=32, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    "gemma2": ("gemma2", tf.Gemma2Config, tf.Gemma2ForCausalLM, common(
        head_dim=16, query_pre_attn_scalar=16, sliding_window=WINDOW,
        attn_logit_softcapping=1.0, final_logit_softcapping=2.0,
        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    "gemma3": ("gemma3", tf.Gemma3TextConfig, tf.Gemma3ForCausalLM, common(
        head_dim=32, query_pre_attn_scalar=32, sliding_window=WINDOW, sliding_window_pattern=3,
        tie_word_embeddings=True,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0,
                                            "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})),
    "phi3": ("phi3", tf.Phi3Config, tf.Phi3ForCausalLM, common(
        tie_word_embeddings=False, sliding_window=WINDOW,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "partial_rotary_factor": 0.5})),
}

ARCH_ENUM = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2,
             "qwen3": gguf.MODEL_ARCH.QWEN3, "gemma2": gguf.MODEL_ARCH.GEMMA2,
             "gemma3": gguf.MODEL_ARCH.GEMMA3, "phi3": gguf.MODEL_ARCH.PHI3}


def randomize(model, arch, rng):
    """N(0, std) weights, norms around their identity, biases non-zero."""
    gemma = arch.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = tuple(p.shape)
            if name.endswith("norm.weight"):
                base = 0.0 if gemma else 1.0  # gemma: (1 + w)
                v = base + 0.1 * rng.standard_normal(shape)
            elif name.endswith(".bias"):
                v = 0.1 * rng.standard_normal(shape)
            else:
                std = 0.5 / math.sqrt(shape[-1])
                if "embed_tokens" in name:
                    # tied: the LM head too, whose logits would otherwise be
                    # dominated by the input token (gemma also scales the
                    # embeddings by sqrt(n_embd))
                    std = 0.5 / math.sqrt(E) if model.config.tie_word_embeddings else 0.5
                v = std * rng.standard_normal(shape)
            p.copy_(torch.from_numpy(v))


def llama_permute(w, n_head):
    """llama.cpp's converter: rows of each head reordered for adjacent-pair RoPE."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def store(model, arch, qtype):
    """The tensors as the GGUF will hold them, and each HF parameter set to
    exactly the value the file stores (float64 of it)."""
    tmap = gguf.get_tensor_name_map(ARCH_ENUM[arch], NL)
    gemma = arch.startswith("gemma")
    out = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            gname = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
            if gname is None:
                raise SystemExit(f"{arch}: no GGUF name for {name}")
            w = p.detach().numpy()
            if w.ndim == 1:
                s = (w + 1.0 if gemma and name.endswith("norm.weight") else w).astype(np.float32)
                back = s.astype(np.float64) - (1.0 if gemma and name.endswith("norm.weight") else 0)
                p.copy_(torch.from_numpy(back))
                out.append((gname, s, None))
                continue
            w32 = w.astype(np.float32)
            if arch == "llama" and name.endswith("q_proj.weight"):
                w32 = llama_permute(w32, H)
            elif arch == "llama" and name.endswith("k_proj.weight"):
                w32 = llama_permute(w32, HKV)
            if qtype == gguf.GGMLQuantizationType.Q8_0:
                q = gguf.quants.quantize(w32, qtype)
                deq = gguf.quants.dequantize(q, qtype).reshape(w32.shape)
                out.append((gname, q, qtype))
            else:
                deq = w32
                out.append((gname, w32, None))
            if arch == "llama" and name.endswith("q_proj.weight"):
                deq = llama_permute_inv(deq, H)
            elif arch == "llama" and name.endswith("k_proj.weight"):
                deq = llama_permute_inv(deq, HKV)
            p.copy_(torch.from_numpy(deq.astype(np.float64)))
    return out


def llama_permute_inv(w, n_head):
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def llama3_factors(cfg):
    """rope_freqs as llama.cpp writes them: default / llama3 inverse frequencies."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    inv, _ = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    hd = cfg.hidden_size // cfg.num_attention_heads
    base = cfg.rope_parameters["rope_theta"]
    inv0 = 1.0 / (base ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    return (inv0 / inv.double().numpy()).astype(np.float32)


def copy_tokenizer(w):
    r = gguf.GGUFReader(os.path.join(REF, "synth-f32.gguf"))
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        t = f.types[0]
        if t == gguf.GGUFValueType.STRING:
            w.add_string(key, bytes(f.parts[f.data[0]]).decode())
        elif t == gguf.GGUFValueType.ARRAY:
            sub = f.types[1]
            if sub == gguf.GGUFValueType.STRING:
                vals = [bytes(f.parts[i]).decode("utf-8", "surrogateescape") for i in f.data]
            else:
                vals = [f.parts[i].tolist()[0] for i in f.data]
            if key.endswith("token_type"):
                w.add_token_types(vals)
            elif key.endswith("scores"):
                w.add_token_scores(vals)
            else:
                w.add_token_list(vals)
        elif t == gguf.GGUFValueType.BOOL:
            w.add_bool(key, bool(f.parts[f.data[0]][0]))
        else:
            w.add_uint32(key, int(f.parts[f.data[0]][0]))


def write_gguf(path, arch, cfg, tensors, extra_tensors):
    w = gguf.GGUFWriter(path, arch)
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w.add_name(os.path.basename(path)[:-5])
    w.add_context_length(2048)
    w.add_embedding_length(E)
    w.add_block_count(NL)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_key_length(hd)
    w.add_value_length(hd)
    rp = cfg.rope_parameters
    if arch == "gemma3":
        w.add_rope_freq_base(rp["full_attention"]["rope_theta"])
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rp["full_attention"]["factor"])
        w.add_uint32("gemma3.attention.sliding_window_pattern", cfg._sliding_window_pattern)
    else:
        w.add_rope_freq_base(rp["rope_theta"])
    if rp.get("rope_type") == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(rp["factor"])
        w.add_rope_scaling_orig_ctx_len(rp["original_max_position_embeddings"])
    n_rot = int(hd * rp.get("partial_rotary_factor", 1.0)) if arch == "phi3" else hd
    w.add_rope_dimension_count(n_rot)
    if getattr(cfg, "sliding_window", None) and arch != "qwen2":
        w.add_sliding_window(cfg.sliding_window)
    if arch == "gemma2":
        w.add_float32("gemma2.attn_logit_softcapping", cfg.attn_logit_softcapping)
        w.add_float32("gemma2.final_logit_softcapping", cfg.final_logit_softcapping)
    copy_tokenizer(w)
    for name, data, qt in tensors + extra_tensors:
        if qt is None:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double().numpy()


def margin(row):
    s = np.sort(row)
    return s[-1] - s[-2]


def build(name, qtype, seed, out_dir):
    arch, cfg_cls, model_cls, kw = CASES[name][:4]
    cfg = cfg_cls(**kw)
    torch.manual_seed(0)
    model = model_cls(cfg).double().eval()
    randomize(model, arch, np.random.default_rng(seed))
    tensors = store(model, arch, qtype)
    extra = []
    if name == "llama3":
        extra.append(("rope_freqs.weight", llama3_factors(cfg), None))
    ids = tokens()
    lg = logits_of(model, ids)
    seq, path_margin = list(ids), []
    nxt = int(np.argmax(lg[-1]))
    gen = []
    for _ in range(N_GREEDY):
        gen.append(nxt)
        seq.append(nxt)
        row = logits_of(model, seq)[-1]
        path_margin.append(margin(row))
        nxt = int(np.argmax(row))
    path_margin = [margin(lg[-1])] + path_margin[:-1]
    tag = "q8_0" if qtype == gguf.GGMLQuantizationType.Q8_0 else "f32"
    base = os.path.join(out_dir, f"{name}-{tag}")
    write_gguf(base + ".gguf", arch, cfg, tensors, extra)
    lg.astype("<f4").tofile(base + ".exact.bin")
    meta = {"tokens": ids, "greedy_next_exact": gen, "model": os.path.basename(base) + ".gguf",
            "n_vocab": V, "logits_shape": [len(ids), V], "arch": arch,
            "transformers": tf.__version__, "seed": seed,
            "min_margin_prompt": float(min(margin(r) for r in lg)),
            "min_margin_greedy": float(min(path_margin)), "rms_logits": float(np.sqrt((lg ** 2).mean()))}
    with open(base + ".tokens.json", "w") as f:
        json.dump(meta, f)
        f.write("\n")
    return meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "arch"))
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name in a.names or list(CASES):
        for qt in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.Q8_0):
            # a seed whose greedy path has no near-tie (a passing engine moves a
            # margin by at most 2e-4): the continuation is then well defined
            for seed in range(1, 20):
                m = build(name, qt, seed, a.out)
                if m["min_margin_greedy"] > 2e-3:
                    break
            print(f"{m['model']:24s} seed {seed} rms {m['rms_logits']:.3f} "
                  f"margins {m['min_margin_prompt']:.1e}/{m['min_margin_greedy']:.1e}")


if __name__ == "__main__":
    sys.exit(main())
