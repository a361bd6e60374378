"""`show --json` never sends a model file's control characters to the
terminal raw: cJSON escapes only bytes below 0x20, so DEL and the C1 controls
(U+0080..U+009F, escapes to some terminals) are written as \\u escapes too,
and the JSON still reads back to the file's exact names."""
import json
import os
import subprocess

import pytest

BIN = os.environ.get("M40LLM_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="M40LLM_BIN not set")

KEY = "k\u009b31m\x7f\x1b[2J"
NAME = "n\u009b2J\u0085\x7f"


@pytest.fixture(scope="module")
def c1_gguf(tmp_path_factory):
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    p = tmp_path_factory.mktemp("c1") / "c1.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_string(KEY, "v\u009b")
    w.add_tensor(NAME, np.zeros((4,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return p


def test_show_json_escapes_c1_and_del(c1_gguf):
    r = subprocess.run([BIN, "show", str(c1_gguf), "--json"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for raw in (b"\x7f", b"\x1b", b"\xc2\x9b", b"\xc2\x85"):
        assert raw not in r.stdout, (raw, r.stdout)
    d = json.loads(r.stdout)
    assert d["metadata"][KEY] == "v\u009b", d["metadata"]
    text = r.stdout.decode()
    assert "\\u009b" in text and "\\u007f" in text and "\\u0085" in text
    assert any(t.get("name") == NAME for t in d["tensors"]), d["tensors"]
