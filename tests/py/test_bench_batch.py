"""`m40-llm bench MODEL --batch LIST`: the engine-level batched decode
benchmark (issue 19, acceptance 5) on the CPU with the small synthetic
fixture model. Checks that every batch size runs, every request generates
all its tokens, the figures are positive and consistent with each other,
and malformed lists are refused with exit status 2. Speed ratios are not
asserted: a 2-core CI machine gives no dependable speed-up."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("M40LLM_BIN", str(ROOT / "build" / "m40-llm"))
FIXTURES = Path(os.environ.get("M40LLM_FIXTURES", ROOT / "tests" / "fixtures"))
MODEL = str(FIXTURES / "reference" / "synth-q8_0.gguf")
CPU = ["--device", "cpu", "--threads", "2"]

pytestmark = pytest.mark.skipif(not Path(BIN).is_file(), reason=f"m40-llm not built ({BIN})")


def bench(*args, timeout=120):
    return subprocess.run([BIN, "bench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_batch_json():
    r = bench(MODEL, "--batch", "1,4", "-p", 16, "-n", 8, "-r", 2, "--json", *CPU)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["mode"] == "batch"
    assert (doc["n_prompt"], doc["n_gen"], doc["repetitions"]) == (16, 8, 2)
    assert doc["n_params"] > 0 and doc["weight_bytes"] > 0
    assert doc["shape"]["n_layer"] == 2 and doc["shape"]["n_vocab"] == 512
    eng = doc["engine"]
    assert eng["backend"] == "cpu" and eng["device_name"] == "cpu"
    assert eng["max_seqs"] >= 4 and eng["n_ctx"] >= 16 + 8
    assert doc["preemptions"] == 0
    rows = doc["batches"]
    assert [b["batch"] for b in rows] == [1, 4]
    for b in rows:
        B = b["batch"]
        assert b["generated_tokens"] == B * 8
        for k in ("avg_prefill_ts", "avg_decode_ts", "avg_decode_ts_per_seq", "avg_ttft_ms",
                  "avg_e2e_ts", "avg_tflops", "avg_gb_per_s"):
            assert b[k] > 0, (B, k, b[k])
        assert b["avg_decode_ts_per_seq"] == pytest.approx(b["avg_decode_ts"] / B)
        assert doc["n_params_active"] == doc["n_params"] and doc["n_expert"] == 0
        assert b["avg_tflops"] == pytest.approx(2 * doc["n_params"] * b["avg_decode_ts"] / 1e12)
        steps = b["avg_decode_ts"] / B
        assert b["avg_gb_per_s"] == pytest.approx(doc["weight_bytes"] * steps / 1e9)
        # a dense model: every weight is active, each step reads them all
        assert b["weight_bytes_per_step"] == doc["weight_bytes"] == doc["active_weight_bytes"]
        assert len(b["samples"]) == 2
        for s in b["samples"]:
            # all B requests decode from the step of the last first token
            # to the first request's last: at most N-1 steps of B tokens
            assert 0 < s["window_tokens"] <= B * 7 and s["window_tokens"] % B == 0
            assert s["window_s"] > 0
            assert s["decode_ts"] == pytest.approx(s["window_tokens"] / s["window_s"])
    # one sequence: the window is its N-1 decode steps
    assert all(s["window_tokens"] == 7 for s in rows[0]["samples"])


def test_batch_table():
    r = bench(MODEL, "--batch", "2,1", "-p", 8, "-n", 4, "-r", 1, *CPU)
    assert r.returncode == 0, r.stderr
    rows = [l for l in r.stdout.splitlines() if l.startswith("|") and l[2:6].strip().isdigit()]
    assert [int(l.split("|")[1]) for l in rows] == [2, 1]
    for l in rows:
        cells = [c.strip() for c in l.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[3].split("±")[0]) > 0
    assert "engine: cpu" in r.stdout and "max_seqs 2" in r.stdout


@pytest.mark.parametrize("bad", ["", "0", "1,,4", "-1", "1,x", "4097", "1,8,", "8 ", "1.5",
                                 ",".join(["1"] * 65)])
def test_batch_list_refused(bad):
    r = bench(MODEL, "--batch", bad, *CPU)
    assert r.returncode == 2, (bad, r.stdout, r.stderr)
    assert "--batch" in r.stderr and "batch sizes" in r.stderr


def test_batch_help():
    r = bench("--batch", "--help")
    assert r.returncode == 0 and "--batch 1,8,32,64" in r.stdout and "--max-batch-tokens" in r.stdout
    r = bench("--help")
    assert r.returncode == 0 and "--batch" in r.stdout


def test_batch_missing_value():
    r = bench(MODEL, *CPU, "--batch")
    assert r.returncode == 2 and "--batch" in r.stderr


def test_batch_sizes_refused():
    # one generated token leaves no decode step to time
    r = bench(MODEL, "--batch", "1", "-n", 1, *CPU)
    assert r.returncode == 2 and "-n" in r.stderr
    r = bench(MODEL, "--batch", "1", "-p", 0, *CPU)
    assert r.returncode == 2 and "-p" in r.stderr
    # the fixture's trained context is 2048
    r = bench(MODEL, "--batch", "1", "-p", 2000, "-n", 100, *CPU)
    assert r.returncode == 2 and "2100" in r.stderr and "2048" in r.stderr
    r = bench(MODEL, "--batch", "1", "-p", 16, "-n", 8, "--ctx", 20, *CPU)
    assert r.returncode == 2 and "--ctx 20" in r.stderr


def test_without_batch_unchanged():
    r = bench(MODEL, "-p", 8, "-n", 2, "-r", 1, "--json", *CPU)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [t["name"] for t in doc["tests"]] == ["pp8", "tg2"] and "mode" not in doc
