"""`m40-llm tokenize`: reference vectors through the CLI, stdin, options, errors."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VOCABS = ROOT / "tests" / "fixtures" / "tokenizer"
BIN = os.environ.get("M40LLM_BIN", str(ROOT / "build" / "m40-llm"))
SEP = "\n__ggml_vocab_test__\n"


def tokenize(*args, stdin=None, ok=True):
    if not Path(BIN).exists():
        pytest.skip(f"m40-llm executable not built ({BIN})")
    r = subprocess.run([BIN, "tokenize", *args], input=stdin, capture_output=True)
    if ok:
        assert r.returncode == 0, r.stderr.decode()
    return r


def vectors(name):
    texts = (VOCABS / f"ggml-vocab-{name}.gguf.inp").read_bytes().decode().split(SEP)[:-1]
    outs = (VOCABS / f"ggml-vocab-{name}.gguf.out").read_text().split("\n")
    return list(zip(texts, outs))


@pytest.mark.parametrize("name", ["llama-spm", "gpt-2", "starcoder", "deepseek-coder", "phi-3"])
def test_vectors_via_stdin(name):
    model = str(VOCABS / f"ggml-vocab-{name}.gguf")
    for text, expected in vectors(name)[:12]:
        r = tokenize(model, "-", stdin=text.encode())
        assert r.stdout.decode().split() == expected.split(), repr(text)


def test_argument_text_and_pieces():
    model = str(VOCABS / "ggml-vocab-gpt-2.gguf")
    ids = tokenize(model, "Hello world").stdout.decode()
    assert ids == "15496 995\n"
    lines = tokenize(model, "Hello world", "--pieces").stdout.decode().splitlines()
    assert lines == ["15496 'Hello'", "995 ' world'"]


def test_special_flags():
    spm = str(VOCABS / "ggml-vocab-llama-spm.gguf")
    plain = tokenize(spm, "<s>hi").stdout.split()
    assert b"1" not in plain
    parsed = tokenize(spm, "<s>hi", "--parse-special").stdout.split()
    assert parsed[0] == b"1"
    with_bos = tokenize(spm, "hi", "--add-special").stdout.split()
    assert with_bos[0] == b"1" and with_bos[1:] == tokenize(spm, "hi").stdout.split()


def test_invalid_utf8_is_replaced():
    model = str(VOCABS / "ggml-vocab-gpt-2.gguf")
    bad = tokenize(model, "-", stdin=b"a\xffb\xe2\x82").stdout
    good = tokenize(model, "-", stdin="a\ufffdb\ufffd".encode()).stdout
    assert bad == good and bad.strip()


def test_errors():
    r = tokenize(str(VOCABS / "missing.gguf"), "x", ok=False)
    assert r.returncode != 0 and b"missing.gguf" in r.stderr
    r = tokenize(ok=False)
    assert r.returncode == 2
    r = tokenize(str(VOCABS / "ggml-vocab-gpt-2.gguf"), "x", "--bogus", ok=False)
    assert r.returncode == 2 and b"--bogus" in r.stderr
