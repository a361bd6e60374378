"""`m40-llm perplexity --tokens` against the method computed here from the
reference logits of a fixture model: one chunk of 48 tokens (the first is
already BOS), positions 24..46 scored, PPL = exp(mean NLL). Needs M40LLM_BIN."""
import json
import math
import os
import re
import subprocess

import numpy as np
import pytest

BIN = os.environ.get("M40LLM_BIN")
REF = os.path.join(os.path.dirname(__file__), "..", "fixtures", "reference")

pytestmark = pytest.mark.skipif(not BIN or not os.path.isfile(BIN),
                                reason="M40LLM_BIN is not set to the m40-llm executable")


def expected_ppl(name, n_ctx):
    meta = json.load(open(os.path.join(REF, name + ".tokens.json")))
    tokens = meta["tokens"]
    logits = np.fromfile(os.path.join(REF, name + ".exact.bin"), "<f4").reshape(48, -1)
    logits = logits.astype(np.float64)
    nll = []
    for j in range(n_ctx // 2, n_ctx - 1):
        row = logits[j]
        lse = row.max() + math.log(np.exp(row - row.max()).sum())
        nll.append(lse - row[tokens[j + 1]])
    return tokens, math.exp(sum(nll) / len(nll))


@pytest.mark.parametrize("name", ["synth-q4_k_m", "synth-tied-q8_0"])
def test_perplexity_matches_reference(tmp_path, name):
    tokens, want = expected_ppl(name, 48)
    path = tmp_path / "tokens.txt"
    # 48 tokens plus a partial chunk that must be ignored
    path.write_text(" ".join(map(str, tokens + tokens[:20])))
    p = subprocess.run([BIN, "perplexity", os.path.join(REF, name + ".gguf"), "--tokens",
                        str(path), "--ctx", "48", "--threads", "2"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    m = re.match(r"PPL = ([0-9.]+) \+/- ([0-9.]+)$", lines[-1])
    assert m, lines[-1]
    got = float(m.group(1))
    assert abs(got - want) <= 1e-3 * want, (got, want)
    assert "[1]" in p.stdout and "[2]" not in p.stdout


def test_perplexity_too_few_tokens(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("1 2 3")
    p = subprocess.run([BIN, "perplexity", os.path.join(REF, "synth-q8_0.gguf"), "--tokens",
                        str(path), "--ctx", "48"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "need at least" in p.stderr
