"""Issue 25, acceptance 3 on the CPU: the server runs a mixture-of-experts
model (the tiny qwen3moe fixture of tests/fixtures/arch, whose tokens go to
different experts) with continuous batching: N concurrent greedy completions
give exactly the answers each gives alone (bench/batch-invariance.py), and
/v1/models and the chat route answer."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve_common import BIN, CPU, Server, sanitized

ROOT = Path(__file__).resolve().parents[2]
MOE = ROOT / "tests" / "fixtures" / "arch" / "qwen3moe-q8_0.gguf"

pytestmark = [
    pytest.mark.skipif(not BIN or not os.path.isfile(BIN), reason="M40LLM_BIN not set"),
]


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", str(MOE), "--addr", "127.0.0.1:0", "--ctx", "256", "--max-seqs", "8",
               *CPU)
    yield s
    assert s.stop() == 0, s.stderr()


def test_concurrent_equal_alone(srv):
    n, toks = (4, 8) if sanitized() else (8, 24)
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "batch-invariance.py"), "--base-url",
                        f"http://{srv.host}:{srv.port}", "-n", str(n), "--max-tokens", str(toks),
                        "--timeout", "600"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{n}/{n} concurrent greedy answers identical" in r.stdout, r.stdout


def test_chat_answers(srv):
    st, _, body = srv.request("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4,
        "temperature": 0}, {"Content-Type": "application/json"})
    assert st == 200, body
    doc = json.loads(body)
    assert doc["usage"]["completion_tokens"] >= 1, doc
