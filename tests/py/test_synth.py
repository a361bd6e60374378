"""m40-synth writes llama GGUF files that the reference `gguf` package reads
with the same keys, tensor names, types and shapes as the reference fixtures
(made with the same shape), and weights with the requested spread."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("M40LLM_FIXTURES", ROOT / "tests" / "fixtures")) / "reference"


def synth_bin():
    cands = []
    if os.environ.get("M40LLM_SYNTH"):
        cands.append(Path(os.environ["M40LLM_SYNTH"]))
    if os.environ.get("M40LLM_BIN"):
        cands.append(Path(os.environ["M40LLM_BIN"]).parent / "m40-synth")
    cands += [ROOT / "build" / "m40-synth"]
    for c in cands:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    pytest.skip("m40-synth not built (set M40LLM_SYNTH or M40LLM_BIN)")


def run_synth(out, *args):
    r = subprocess.run([str(synth_bin()), "-q", "-o", str(out), *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def fields(reader):
    return {k for k in reader.fields if not k.startswith("GGUF.")}


def scalar(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    return f.parts[f.data[0]].tolist()[0]


def tensor_map(reader):
    return {t.name: (t.tensor_type.name, tuple(int(x) for x in t.shape)) for t in reader.tensors}


# recipe, fixture with the same shape and tensor types
CASES = [
    ("f32", [], "synth-f32.gguf"),
    ("f16", [], "synth-f16.gguf"),
    ("bf16", [], "synth-bf16.gguf"),
    ("q8_0", [], "synth-q8_0.gguf"),
    ("q4_0", [], "synth-q4_0.gguf"),
    ("q4_1", [], "synth-q4_1.gguf"),
    ("q5_0", [], "synth-q5_0.gguf"),
    ("q5_1", [], "synth-q5_1.gguf"),
    ("q6_k", [], "synth-q6_k.gguf"),
    ("q4_k_m", [], "synth-q4_k_m.gguf"),
    ("q5_k_m", [], "synth-q5_k_m.gguf"),
    ("q8_0", ["--tied", "--rope-base", "100000"], "synth-tied-q8_0.gguf"),
]


@pytest.mark.parametrize("recipe,extra,fixture", CASES, ids=[c[2] for c in CASES])
def test_matches_fixture_layout(tmp_path, recipe, extra, fixture):
    out = tmp_path / "m.gguf"
    run_synth(out, "--type", recipe, "--std", "0.05", *extra)
    got = gguf.GGUFReader(str(out))
    ref = gguf.GGUFReader(str(FIXTURES / fixture))
    assert fields(got) == fields(ref) | {"general.quantization_version"}
    for k in fields(ref):
        if k in ("general.name", "tokenizer.ggml.tokens", "tokenizer.ggml.scores"):
            continue
        if k == "tokenizer.ggml.token_type":
            a = np.array([got.fields[k].parts[i][0] for i in got.fields[k].data])
            b = np.array([ref.fields[k].parts[i][0] for i in ref.fields[k].data])
            assert (a == b).all()
            continue
        assert scalar(got, k) == pytest.approx(scalar(ref, k)), k
    assert tensor_map(got) == tensor_map(ref)
    toks = [bytes(got.fields["tokenizer.ggml.tokens"].parts[i]).decode()
            for i in got.fields["tokenizer.ggml.tokens"].data]
    assert toks[:4] == ["<unk>", "<s>", "</s>", "<0x00>"] and toks[258] == "<0xFF>"
    assert len(set(toks)) == len(toks) == 512
    # weights: N(0, 0.05^2) before quantization; norms are ones
    for t in got.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        if "norm" in t.name:
            assert (w == 1.0).all(), t.name
        else:
            assert abs(w.mean()) < 0.005, t.name
            assert w.std() == pytest.approx(0.05, rel=0.12), (t.name, w.std())


def test_threads_do_not_change_the_file(tmp_path):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    run_synth(a, "--type", "q4_k_m", "--threads", "1", "--seed", "7")
    run_synth(b, "--type", "q4_k_m", "--threads", "3", "--seed", "7")
    assert a.read_bytes() == b.read_bytes()


def test_shape_options_and_std(tmp_path):
    out = tmp_path / "m.gguf"
    run_synth(out, "--layers", "3", "--embd", "192", "--heads", "6", "--kv-heads", "2",
              "--ff", "320", "--vocab", "1000", "--ctx", "4096", "--eps", "1e-6",
              "--type", "q8_0", "--std", "0.1", "--seed", "3", "--name", "tiny-test")
    r = gguf.GGUFReader(str(out))
    assert scalar(r, "general.name") == "tiny-test"
    assert scalar(r, "llama.block_count") == 3
    assert scalar(r, "llama.attention.head_count_kv") == 2
    assert scalar(r, "llama.rope.dimension_count") == 32
    assert scalar(r, "llama.context_length") == 4096
    assert scalar(r, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(1e-6)
    m = tensor_map(r)  # shapes in GGUF order: row length first
    assert m["blk.2.attn_k.weight"] == ("Q8_0", (192, 64))
    assert m["blk.2.ffn_down.weight"] == ("Q8_0", (320, 192))
    assert m["token_embd.weight"] == ("Q8_0", (192, 1000))
    assert "output.weight" in m and m["output_norm.weight"] == ("F32", (192,))
    t = next(t for t in r.tensors if t.name == "blk.1.ffn_gate.weight")
    w = gguf.quants.dequantize(t.data, t.tensor_type)
    assert w.std() == pytest.approx(0.1, rel=0.05)


def test_bad_options_fail(tmp_path):
    out = tmp_path / "x.gguf"
    for args in (["--type", "q9_9"], ["--heads", "7"], ["--vocab", "12"], ["--bogus"]):
        r = subprocess.run([str(synth_bin()), "-o", str(out), *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "m40-synth" in r.stderr, args
        assert not out.exists()
