"""bench/prefix-ttft.py (issue 19, acceptance 3's device measurement) against
a real `m40-llm serve` on the CPU with the synthetic fixture: the later
requests find the whole shared prefix in the cache (cached_tokens
and the JSON), the exit status reflects a --min-ratio that cannot be met,
and bad arguments are refused. The TTFT ratio itself is measured on the
device (bench/device-serve.sh), not asserted on a 2-core machine."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from serve_common import BIN, CPU, Server

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "bench" / "prefix-ttft.py")
SYNTH = str(Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "synth-q8_0.gguf")

pytestmark = pytest.mark.skipif(not Path(BIN).is_file(), reason=f"m40-llm not built ({BIN})")


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", SYNTH, "--addr", "127.0.0.1:0", "--ctx", "256", *CPU)
    yield s
    assert s.stop() == 0, s.stderr()


def run(srv, *args):
    return subprocess.run([sys.executable, SCRIPT, "--base-url", f"http://{srv.host}:{srv.port}",
                           *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cached_prefix(srv, tmp_path):
    out = tmp_path / "p.json"
    r = run(srv, "--prefix-len", 64, "--repeats", 2, "--json-out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(out.read_text())
    rows = doc["requests"]
    assert len(rows) == 3 and 48 <= doc["prefix_tokens"] <= 64
    assert all(r["prompt_tokens"] > doc["prefix_tokens"] for r in rows)
    want = doc["prefix_tokens"] - 1  # its last token may merge with the question's first
    assert all(r["cached_tokens"] >= want for r in rows[1:])
    assert doc["ttft_ratio"] > 0 and "TTFT first / median" in r.stdout


def test_unmet_ratio_fails(srv):
    r = run(srv, "--prefix-len", 32, "--repeats", 1, "--min-ratio", 1e9)
    assert r.returncode == 1 and "TTFT ratio" in r.stderr


def test_bad_arguments(srv):
    assert run(srv, "--prefix-len", 4).returncode == 2
    r = subprocess.run([sys.executable, SCRIPT, "--base-url", "http://127.0.0.1:9", "--timeout", "2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "prefix-ttft:" in r.stderr
