"""`m40-llm pull` against a loopback mirror (hf_mock.py): by alias, by
hf.co/OWNER/REPO:QUANT, by file, by URL, split models; resume after a cut
connection, a server that ignores Range, corrupted bytes, HTTP errors, a
refused connection, a gated model, a file that is not GGUF, two concurrent
pulls, a full disk (RLIMIT_FSIZE). Issue 20, acceptance 1, 2, 3, 5, 6, 8."""
import json
import os
import resource
import signal
import time
from pathlib import Path

import pytest

from hf_mock import HFMock, free_port
from store_common import (CPU, REPO, SMOLLM2, SYNTH_REPO, Env, alias_target, mock,  # noqa: F401
                          need_bin, sha256_file, smollm2_sha, synth)

pytestmark = pytest.mark.usefixtures("need")


@pytest.fixture
def need():
    need_bin()


def one_line_error(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("m40-llm:")]
    assert r.returncode != 0, r.stdout
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_pull_alias_then_run(tmp_path, mock):
    """Acceptance 8: `m40-llm pull smollm2:135m` from the loopback mirror."""
    env = Env(tmp_path, mock)
    repo, file = alias_target(env, "smollm2:135m")
    mock.add_file(repo, file, SMOLLM2)
    r = env.run("pull", "smollm2:135m", check=0)
    assert "smollm2:135m" in r.stdout and "pulled" in r.stdout
    assert env.blobs() == ["sha256-" + smollm2_sha()]
    assert env.manifests() == ["smollm2/135m.json"]
    man = json.loads((env.store / "manifests/smollm2/135m.json").read_text())
    assert man["sha256"] == smollm2_sha() and man["size"] == os.path.getsize(SMOLLM2)
    assert man["architecture"] == "llama" and man["quantization"] == "Q4_1"
    assert man["source"] == "hf.co/" + repo and man["revision"] == mock.revision
    assert man["file"] == file and man["parameters"] > 100e6 and man["context_length"] == 8192
    # the API was asked for the revision and the tree, the file through resolve + redirect
    paths = [e["path"] for e in mock.log]
    assert f"/api/models/{repo}/revision/main" in paths
    assert f"/api/models/{repo}/tree/{mock.revision}" in paths
    assert any(p.startswith(f"/{repo}/resolve/{mock.revision}/") for p in paths)
    assert any(p.startswith("/cdn/") for p in paths)
    r = env.run("run", "smollm2:135m", "Hello", "-n", "4", "--temp", "0", *CPU, check=0)
    assert r.stdout.strip()
    # a second pull downloads nothing
    n = len(mock.log)
    r = env.run("pull", "smollm2:135m", check=0)
    assert "already up to date" in r.stdout and "(0 bytes downloaded)" in r.stdout
    assert not [e for e in mock.log[n:] if e["path"].startswith("/cdn/")]


def test_pull_hf_quant_file_url(tmp_path, mock):
    env = Env(tmp_path, mock)
    syn = synth(tmp_path / "syn.gguf")
    mock.add_file(SYNTH_REPO, "synth-Q8_0.gguf", str(syn))
    mock.add_file(SYNTH_REPO, "sub/synth-Q4_K_M.gguf", str(syn))
    mock.add_file(SYNTH_REPO, "synth-F16.gguf", SMOLLM2)
    # by quantization (Q4_K_M by default, in a subfolder)
    r = env.run("pull", f"hf.co/{SYNTH_REPO}", check=0)
    assert f"hf.co/{SYNTH_REPO.lower()}:q4_k_m" in r.stdout
    env.run("pull", f"hf.co/{SYNTH_REPO}:F16", check=0)
    # by file
    r = env.run("pull", f"hf.co/{SYNTH_REPO}/synth-Q8_0.gguf", check=0)
    assert f"hf.co/{SYNTH_REPO.lower()}:q8_0" in r.stdout
    # by URL
    mock.add_plain("SmolLM2-135M-Instruct.Q4_1.gguf", SMOLLM2)
    r = env.run("pull", mock.url + "/files/SmolLM2-135M-Instruct.Q4_1.gguf", check=0)
    assert "smollm2-135m-instruct.q4_1:latest" in r.stdout
    names = {m["name"] for m in env.list_json() if m["where"] == "store"}
    assert names == {f"hf.co/{SYNTH_REPO.lower()}:q4_k_m", f"hf.co/{SYNTH_REPO.lower()}:f16",
                     f"hf.co/{SYNTH_REPO.lower()}:q8_0", "smollm2-135m-instruct.q4_1:latest"}
    # identical content is one blob
    assert len(env.blobs()) == 2
    # each runs by name; hf:OWNER/REPO:QUANT finds the pulled one too
    for name in (f"hf.co/{SYNTH_REPO.lower()}:f16", "smollm2-135m-instruct.q4_1",
                 f"hf:{SYNTH_REPO}:F16"):
        r = env.run("run", name, "Hi", "-n", "2", *CPU, check=0)
    r = env.run("tokenize", f"hf.co/{SYNTH_REPO.lower()}:q8_0", "hello", check=0)
    # a quantization the repository lacks
    r = env.run("pull", f"hf.co/{SYNTH_REPO}:Q2_K")
    assert "no Q2_K GGUF file" in one_line_error(r)


def test_pull_split_model(tmp_path, mock):
    env = Env(tmp_path, mock)
    a = synth(tmp_path / "a.gguf", "--seed", "1")
    b = synth(tmp_path / "b.gguf", "--seed", "2")
    mock.add_file(SYNTH_REPO, "big-Q4_K_M-00001-of-00002.gguf", str(a))
    mock.add_file(SYNTH_REPO, "big-Q4_K_M-00002-of-00002.gguf", str(b))
    r = env.run("pull", f"hf.co/{SYNTH_REPO}:Q4_K_M", check=0)
    man = json.loads((env.store / f"manifests/hf.co/{SYNTH_REPO.lower()}/q4_k_m.json").read_text())
    assert [p["file"] for p in man["parts"]] == ["big-Q4_K_M-00001-of-00002.gguf",
                                                "big-Q4_K_M-00002-of-00002.gguf"]
    assert [p["sha256"] for p in man["parts"]] == [sha256_file(a), sha256_file(b)]
    assert man["size"] == os.path.getsize(a) + os.path.getsize(b)
    assert len(env.blobs()) == 2
    # listed whole; the loader reads one file, so running it says what to do
    m = [m for m in env.list_json() if m["where"] == "store"][0]
    assert m["parts"] == 2 and m["size"] == man["size"]
    msg = one_line_error(env.run("run", f"hf.co/{SYNTH_REPO.lower()}:q4_k_m", "Hi", *CPU))
    assert "split into 2 files" in msg and "merge" in msg
    # a missing part is an error, nothing registered
    mock.add_file("TestOwner/Broken-GGUF", "x-Q4_K_M-00001-of-00003.gguf", str(a))
    mock.add_file("TestOwner/Broken-GGUF", "x-Q4_K_M-00003-of-00003.gguf", str(b))
    r = env.run("pull", "hf.co/TestOwner/Broken-GGUF")
    assert "part 2 of 3" in one_line_error(r)


def test_resume_after_cut(tmp_path, mock):
    """Acceptance 2: a cut mid-file, then a second pull resumes from the partial size."""
    env = Env(tmp_path, mock)
    size = os.path.getsize(SMOLLM2)
    cut = 10_000_000
    mock.cut_after, mock.cut_times = cut, 1
    r = env.run("pull", f"hf.co/{REPO}", env={"M40LLM_PULL_RETRIES": "0"})
    one_line_error(r)
    partial = env.store / "blobs" / f"sha256-{smollm2_sha()}.partial"
    assert partial.stat().st_size == cut
    assert env.manifests() == [] and env.list_json() == []
    before = len(mock.log)
    r = env.run("pull", f"hf.co/{REPO}", check=0)
    cdn = [e for e in mock.log[before:] if e["path"].startswith("/cdn/")]
    assert [e["range"] for e in cdn] == [f"bytes={cut}-"]
    assert cdn[0]["status"] == 206 and cdn[0]["sent"] == size - cut
    assert f"({size - cut} bytes downloaded)" in r.stdout
    assert env.blobs() == ["sha256-" + smollm2_sha()]
    assert sha256_file(env.store / "blobs" / env.blobs()[0]) == smollm2_sha()


def test_resume_within_one_pull(tmp_path, mock):
    """A cut connection is retried by the same pull, from where it stopped."""
    env = Env(tmp_path, mock)
    mock.cut_after, mock.cut_times = 5_000_000, 2
    env.run("pull", f"hf.co/{REPO}", check=0)
    cdn = [e for e in mock.log if e["path"].startswith("/cdn/")]
    assert [e["range"] for e in cdn] == [None, "bytes=5000000-", "bytes=10000000-"]
    assert sum(e["sent"] for e in cdn) == os.path.getsize(SMOLLM2)
    assert env.blobs() == ["sha256-" + smollm2_sha()]


def test_server_ignoring_range(tmp_path, mock):
    env = Env(tmp_path, mock)
    mock.cut_after, mock.cut_times = 3_000_000, 1
    one_line_error(env.run("pull", f"hf.co/{REPO}", env={"M40LLM_PULL_RETRIES": "0"}))
    mock.ignore_range = True
    before = len(mock.log)
    env.run("pull", f"hf.co/{REPO}", check=0)
    cdn = [e for e in mock.log[before:] if e["path"].startswith("/cdn/")]
    assert cdn[0]["range"] == "bytes=3000000-" and cdn[0]["status"] == 200
    assert cdn[0]["sent"] == os.path.getsize(SMOLLM2)
    assert sha256_file(env.store / "blobs" / env.blobs()[0]) == smollm2_sha()


def test_corrupt_bytes(tmp_path, mock):
    env = Env(tmp_path, mock)
    mock.corrupt = True
    msg = one_line_error(env.run("pull", f"hf.co/{REPO}"))
    assert "sha256 mismatch" in msg and smollm2_sha() in msg
    bad = [w for w in msg.replace(",", " ").replace(";", " ").split() if len(w) == 64]
    assert len(set(bad)) == 2, msg  # both hashes named
    assert env.blobs() == [] and env.manifests() == [] and env.list_json() == []


def test_http_errors(tmp_path, mock):
    env = Env(tmp_path, mock)
    # 404: no such repository, no such URL
    assert "404" in one_line_error(env.run("pull", "hf.co/TestOwner/Nothing"))
    assert "404" in one_line_error(env.run("pull", mock.url + "/files/none.gguf"))
    # refused connection
    dead = Env(tmp_path / "dead")
    dead.env["M40LLM_HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    msg = one_line_error(dead.run("pull", f"hf.co/{REPO}", env={"M40LLM_PULL_RETRIES": "1"}))
    assert "onnect" in msg
    # 500, retried then reported
    mock.status_for = {"/cdn/": 500}
    t0 = time.time()
    msg = one_line_error(env.run("pull", f"hf.co/{REPO}", env={"M40LLM_PULL_RETRIES": "2"}))
    assert "HTTP 500" in msg and time.time() - t0 >= 1.0  # two backoffs: 0.5 s + 1 s
    assert len([e for e in mock.log if e["path"].startswith("/cdn/")]) == 3
    # 401: gated, the message says how to set the token
    mock.status_for = {}
    mock.require_token = "hf_secret"
    msg = one_line_error(env.run("pull", f"hf.co/{REPO}"))
    assert "401" in msg and "gated" in msg and "HF_TOKEN" in msg
    n = len(mock.log)
    r = env.run("pull", f"hf.co/{REPO}", env={"HF_TOKEN": "hf_secret"}, check=0)
    assert all(e["auth"] == "Bearer hf_secret" for e in mock.log[n:])
    assert env.list_json()[0]["sha256"] == smollm2_sha()


def test_not_gguf_rejected(tmp_path, mock):
    env = Env(tmp_path, mock)
    mock.add_file("TestOwner/Junk-GGUF", "junk-Q4_K_M.gguf", data=os.urandom(100_000))
    msg = one_line_error(env.run("pull", "hf.co/TestOwner/Junk-GGUF"))
    assert "not a valid GGUF" in msg
    assert env.blobs() == [] and env.manifests() == []


def test_alias_architectures(tmp_path, mock):
    """Aliases of architectures the loader cannot read are refused before any
    download (--force pulls them); the others go to the mirror."""
    env = Env(tmp_path, mock)
    r = env.run("pull", "--aliases", check=0)
    rows = [ln.split() for ln in r.stdout.splitlines()[1:]]
    assert {"mistral", "llama3.2:1b", "llama3.1:8b", "qwen2.5:7b", "gemma3:270m", "smollm2:135m",
            "tinyllama"} <= {f[0] for f in rows}
    for f in rows:
        n = len(mock.log)
        msg = one_line_error(env.run("pull", f[0]))  # the mirror has none of them: 404
        if "(architecture not supported yet)" in " ".join(f):
            assert f[1] in msg and "cannot run" in msg and "--force" in msg
            assert len(mock.log) == n  # nothing was asked
            assert "404" in one_line_error(env.run("pull", f[0], "--force"))
        else:
            assert "404" in msg and mock.log[n]["path"] == f"/api/models/{f[2]}/revision/main"
    msg = one_line_error(env.run("pull", "no-such-alias"))
    assert "not a known model" in msg


def test_concurrent_pulls(tmp_path, mock):
    env = Env(tmp_path, mock)
    mock.chunk_delay = 0.002
    procs = [env.popen("pull", f"hf.co/{REPO}") for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert env.blobs() == ["sha256-" + smollm2_sha()]
    assert sha256_file(env.store / "blobs" / env.blobs()[0]) == smollm2_sha()
    assert len(env.list_json()) == 1
    # the file went over the wire once
    assert sum(e["sent"] for e in mock.log if e["path"].startswith("/cdn/")) == \
        os.path.getsize(SMOLLM2)


def _limit_fsize():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4_000_000, 4_000_000))


def test_disk_full(tmp_path, mock):
    """Acceptance 6: out of space mid-way (RLIMIT_FSIZE): a clear error, the store unchanged."""
    env = Env(tmp_path, mock)
    r = env.run("pull", f"hf.co/{REPO}", preexec_fn=_limit_fsize)
    msg = one_line_error(r)
    assert "too large" in msg.lower() or "no space" in msg.lower(), msg
    assert "resume" in msg
    assert env.manifests() == [] and env.list_json() == []
    assert [b for b in env.blobs() if not b.endswith(".partial")] == []
    # the kept partial is resumed
    r = env.run("pull", f"hf.co/{REPO}", check=0)
    assert f"({os.path.getsize(SMOLLM2) - 4_000_000} bytes downloaded)" in r.stdout
    assert env.blobs() == ["sha256-" + smollm2_sha()]


def test_space_check_before_download(tmp_path, mock):
    """A listing whose size does not fit the disk is refused before any byte."""
    env = Env(tmp_path, mock)
    st = os.statvfs(tmp_path)
    free = st.f_bavail * st.f_frsize
    mock.add_file("TestOwner/Huge-GGUF", "huge-Q4_K_M.gguf", data=b"GGUF")
    tree = mock._tree

    def big_tree(repo):
        out = tree(repo)
        for e in out:
            if "lfs" in e:
                e["size"] = e["lfs"]["size"] = free * 2
        return out
    mock._tree = big_tree
    msg = one_line_error(env.run("pull", "hf.co/TestOwner/Huge-GGUF"))
    assert "not enough disk space" in msg
    assert not [e for e in mock.log if e["path"].startswith("/cdn/")]
