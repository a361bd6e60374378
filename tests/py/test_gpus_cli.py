"""Issue 23, acceptance 3 on a machine without a GPU: the options that name
several cards (--gpus, --split, --tensor-split) in run, bench, bench --batch,
perplexity and serve. Malformed values are refused with a message naming
them; --split row says it is not implemented; --tensor-split without --gpus,
and --gpus with --device cpu, are refused; cards that are not there are
named (here: no GPU at all), never a silent CPU run."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("M40LLM_BIN", str(ROOT / "build" / "m40-llm"))
MODEL = str(ROOT / "tests" / "fixtures" / "reference" / "synth-q8_0.gguf")

pytestmark = pytest.mark.skipif(not Path(BIN).is_file(), reason=f"m40-llm not built ({BIN})")


def m40(*args, timeout=60):
    env = dict(os.environ)
    env.pop("M40LLM_DUP_GPUS", None)
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def has_gpu():
    r = m40("info")
    return r.returncode == 0 and "no usable GPU" not in r.stdout + r.stderr and "GPU 0" in r.stdout


COMMANDS = {
    "run": ["run", MODEL, "hi", "-n", "2"],
    "bench": ["bench", MODEL, "-p", "4", "-n", "2", "-r", "1"],
    "batch": ["bench", MODEL, "--batch", "1,2", "-p", "4", "-n", "2", "-r", "1"],
    "perplexity": ["perplexity", MODEL, "--tokens", "/dev/null"],
}


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
@pytest.mark.parametrize("gpus, why", [
    ("0,,1", "item 2 is empty"), ("0,", "is empty"), ("x", '"x" is not a GPU index'), ("-1", "-1"),
    ("1.5", "1.5"), ("0 ,1", "0 ,1"), ("", "needs a value"),
    (",".join(["0"] * 17), "more than 16 GPUs"),
])
def test_malformed_gpus(cmd, gpus, why):
    r = m40(*COMMANDS[cmd], "--gpus", gpus)
    assert r.returncode != 0, r.stdout
    assert why in r.stderr, r.stderr
    assert "running on the CPU" not in r.stderr


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_split_and_shares(cmd):
    r = m40(*COMMANDS[cmd], "--split", "diagonal")
    assert r.returncode == 2 and '--split "diagonal": expected layer or row' in r.stderr, r.stderr
    r = m40(*COMMANDS[cmd], "--gpus", "0", "--split", "row")
    assert r.returncode != 0 and "--split row" in r.stderr and "not implemented" in r.stderr
    r = m40(*COMMANDS[cmd], "--tensor-split", "3,1")
    assert r.returncode != 0 and "--tensor-split needs --gpus" in r.stderr, r.stderr
    r = m40(*COMMANDS[cmd], "--device", "cpu", "--gpus", "0")
    assert r.returncode != 0 and "the cards are GPUs" in r.stderr, r.stderr


@pytest.mark.skipif(has_gpu(), reason="a GPU is present: the missing-card case differs")
@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_no_gpu_named(cmd):
    for gpus in ("0", "0,1", "all"):
        r = m40(*COMMANDS[cmd], "--gpus", gpus)
        assert r.returncode != 0, r.stdout
        assert f'--gpus "{gpus}": no GPU is usable' in r.stderr, r.stderr
        assert "running on the CPU" not in r.stderr


def test_serve_refuses_bad_gpus():
    r = m40("serve", "--model", MODEL, "--addr", "127.0.0.1:0", "--gpus", "0,,1", timeout=30)
    assert r.returncode != 0 and "item 2 is empty" in r.stderr, r.stderr
    r = m40("serve", "--model", MODEL, "--addr", "127.0.0.1:0", "--split", "sideways")
    assert r.returncode == 2 and "expected layer or row" in r.stderr, r.stderr
