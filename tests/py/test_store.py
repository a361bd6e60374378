"""The model store without the network: list, show, rm, cp; name
validation; models found in a fake Ollama store, a fake Hugging Face cache
and llama.cpp's cache (real directory layouts, SmolLM2 as the blob), run in
place and never removed. Issue 20, acceptance 4 and 5."""
import json
import os
import re
import shutil

import pytest

from store_common import CPU, REPO, SMOLLM2, Env, mock, need_bin, smollm2_sha, synth  # noqa: F401

pytestmark = pytest.mark.usefixtures("need")


@pytest.fixture
def need():
    need_bin()


def error_line(r):
    assert r.returncode != 0, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("m40-llm:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_discovered_models(tmp_path):
    env = Env(tmp_path)
    sha = env.fake_ollama("smol", "135m", SMOLLM2)
    env.fake_ollama("tiny", "latest", SMOLLM2, ns="someone")
    hf_sha = env.fake_hf("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                         "SmolLM2-135M-Instruct-Q4_1.gguf", SMOLLM2)
    env.llama.mkdir()
    shutil.copy(SMOLLM2, env.llama / "someone_repo_smol.gguf")
    r = env.run("list", check=0)
    head = r.stdout.splitlines()[0].split()
    assert head == ["NAME", "ID", "SIZE", "QUANT", "PARAMS", "ARCH", "MODIFIED", "WHERE"]
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines()[1:]}
    assert set(rows) == {"ollama:smol:135m", "ollama:someone/tiny:latest",
                         "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:q4_1",
                         "llama:someone_repo_smol"}
    row = rows["ollama:smol:135m"].split()
    assert row[1] == sha[:12] and row[2:4] == ["98.4", "MB"] and row[4] == "Q4_1"
    assert row[5] == "135M" and row[6] == "llama" and row[-1] == "ollama"
    assert rows["hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:q4_1"].split()[-1] == "hf-cache"
    assert rows["hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:q4_1"].split()[1] == hf_sha[:12]
    assert rows["llama:someone_repo_smol"].split()[-1] == "llama-cache"
    j = {m["name"]: m for m in env.list_json()}
    assert j["ollama:smol:135m"]["path"] == str(env.ollama / "blobs" / f"sha256-{sha}")
    # run in place, by every form
    for name in ("ollama:smol:135m", "ollama:library/smol:135m",
                 "ollama:registry.example/library/smol:135m", "ollama:someone/tiny",
                 "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                 "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:Q4_1",
                 "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_1.gguf",
                 "llama:someone_repo_smol"):
        r = env.run("run", name, "Hi", "-n", "2", "--temp", "0", *CPU)
        assert r.returncode == 0, (name, r.stderr)
    # show, and the other commands taking MODEL
    r = env.run("show", "ollama:smol:135m", check=0)
    assert "where:      ollama" in r.stdout and "quantization  Q4_1" in r.stdout
    assert "license       apache-2.0" in r.stdout
    j = json.loads(env.run("show", "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "--json",
                           check=0).stdout)
    assert j["model"]["where"] == "hf-cache" and j["summary"]["quantization"] == "Q4_1"
    env.run("tokenize", "ollama:smol:135m", "hello world", check=0)
    msgs = tmp_path / "m.json"
    msgs.write_text('[{"role": "user", "content": "hi"}]')
    r = env.run("template", "ollama:smol:135m", str(msgs), "--add-generation-prompt", check=0)
    assert "<|im_start|>user" in r.stdout
    # rm refuses them and leaves the files
    before = sorted(p for p in tmp_path.rglob("*"))
    for name in ("ollama:smol:135m", "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:q4_1",
                 "llama:someone_repo_smol"):
        msg = error_line(env.run("rm", name))
        assert "does not delete files it does not own" in msg
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert len(env.list_json()) == 4
    # not there
    msg = error_line(env.run("run", "ollama:nothing:here", "Hi", *CPU))
    assert "not found" in msg
    msg = error_line(env.run("run", "hf:Nobody/Nothing", "Hi", *CPU))
    assert "not in the Hugging Face cache" in msg and "pull hf.co/Nobody/Nothing" in msg


def test_hostile_ollama_manifests(tmp_path):
    """Broken Ollama manifests are skipped, never a crash."""
    env = Env(tmp_path)
    env.fake_ollama("good", "latest", SMOLLM2)
    d = env.ollama / "manifests" / "h" / "library"
    cases = {
        "trunc": '{"layers": [{"mediaType": "application/vnd.ollama.image.model", "dig',
        "types": '{"layers": {"mediaType": 5}}',
        "digest": '{"layers": [{"mediaType": "application/vnd.ollama.image.model", '
                  '"digest": "sha256:../../etc/passwd"}]}',
        "missing": '{"layers": [{"mediaType": "application/vnd.ollama.image.model", '
                   '"digest": "sha256:' + "0" * 64 + '"}]}',
        "deep": "[" * 100000,
        "huge": '{"layers": [' + '{"a": 1},' * 300000 + '{}]}',
        "binary": "\x00\x01\x02GGUF",
    }
    for name, text in cases.items():
        (d / name).mkdir(parents=True)
        (d / name / "latest").write_text(text)
    (d / "fifo").mkdir()
    os.mkfifo(d / "fifo" / "latest")
    r = env.run("list", check=0, timeout=60)
    assert [ln.split()[0] for ln in r.stdout.splitlines()[1:]] == ["ollama:good:latest"]
    for name in cases:
        msg = error_line(env.run("run", f"ollama:{name}", "Hi", *CPU, timeout=60))
        assert "not found" in msg


def test_list_show_rm_cp(tmp_path, mock):
    env = Env(tmp_path, mock)
    env.run("pull", f"hf.co/{REPO}", check=0)
    name = f"hf.co/{REPO.lower()}:q4_k_m"
    r = env.run("list", check=0)
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    row = lines[1].split()
    assert row[0] == name and row[1] == smollm2_sha()[:12] and row[-1] == "store"
    assert " ".join(row[7:-1]) in ("just now", "1 seconds ago") or "seconds ago" in lines[1]
    # show by name, text and JSON
    r = env.run("show", name, check=0)
    assert f"name:       {name}" in r.stdout and "where:      store" in r.stdout
    assert f"sha256:     {smollm2_sha()}" in r.stdout and f"source:     hf.co/{REPO}" in r.stdout
    assert "architecture  llama" in r.stdout and "context       8192" in r.stdout
    j = json.loads(env.run("show", name, "--json", check=0).stdout)
    assert j["model"]["sha256"] == smollm2_sha() and j["model"]["where"] == "store"
    assert j["summary"]["architecture"] == "llama" and j["summary"]["context"] == 8192
    # cp: a second name over the same blob
    r = env.run("cp", name, "mysmol", check=0)
    assert r.stdout.strip() == f"copied '{name}' to 'mysmol:latest'"
    assert len(env.blobs()) == 1
    env.run("run", "mysmol", "Hi", "-n", "2", *CPU, check=0)
    env.run("run", "MySmol:latest", "Hi", "-n", "2", *CPU, check=0)
    # rm of one name keeps the blob the other uses
    r = env.run("rm", name, check=0)
    assert r.stdout.strip() == f"deleted '{name}'"
    assert len(env.blobs()) == 1 and [m["name"] for m in env.list_json()] == ["mysmol:latest"]
    assert not (env.store / "manifests" / "hf.co").exists()  # empty directories pruned
    r = env.run("rm", "mysmol", check=0)
    assert env.blobs() == [] and env.list_json() == []
    # errors
    assert "not in the store" in error_line(env.run("rm", "mysmol"))
    assert "not in the store" in error_line(env.run("cp", "nothing", "other"))
    msg = error_line(env.run("run", "nothing", "Hi", *CPU))
    assert "nor in the model store" in msg and "m40-llm pull nothing" in msg


@pytest.mark.parametrize("bad,why", [
    ("../evil", "'..' is not allowed"),
    ("a/../../b", "'..' is not allowed"),
    ("/etc/passwd", "absolute path"),
    ("evil\x01name", "control character"),
    ("evil\nname", "control character"),
    ("a//b", "empty"),
    (".hidden", "may not start with '.'"),
    ("name:../x", "'/' in the tag"),
    ("a:b:c", "more than one ':'"),
    ("sp ace", "' ' is not allowed"),
    ("x" * 300, "longer than"),
])
def test_bad_names(tmp_path, bad, why):
    env = Env(tmp_path)
    env.store.mkdir()
    for cmd in (["rm", bad], ["cp", "something", bad], ["pull", "--name", bad, "smollm2:135m"]):
        r = env.run(*cmd)
        msg = error_line(r)
        assert why in msg, (cmd, msg)
        assert "\x01" not in msg and "\n" not in msg.strip()
    # nothing was written outside the store (nor inside)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "store"]
    assert not list((env.store).rglob("*.json"))


def test_broken_store_manifest(tmp_path, mock):
    """A store manifest edited into something else: a clear error, no crash."""
    env = Env(tmp_path, mock)
    env.run("pull", f"hf.co/{REPO}", "--name", "smol", check=0)
    man = env.store / "manifests" / "smol" / "latest.json"
    good = man.read_text()
    j = json.loads(good)
    variants = {
        "truncated": good[: len(good) // 2],
        "wrong type": json.dumps(dict(j, parts="x")),
        "bad sha": json.dumps(dict(j, parts=[dict(j["parts"][0], sha256="../../etc")])),
        "bad file": json.dumps(dict(j, parts=[dict(j["parts"][0], file="../x")])),
        "negative size": json.dumps(dict(j, parts=[dict(j["parts"][0], size=-1)])),
        "other name": json.dumps(dict(j, name="other")),
        "schema": json.dumps(dict(j, schema_version=99)),
        "huge": " " * (2 << 20),
        "nested": "[" * 5000,
    }
    for what, text in variants.items():
        man.write_text(text)
        r = env.run("run", "smol", "Hi", "-n", "1", *CPU)
        msg = error_line(r)
        assert str(man) in msg or "manifest" in msg, (what, msg)
        r = env.run("list", check=0)
        assert "skipping" in r.stderr and len(r.stdout.splitlines()) == 1, what
    # a broken manifest can still be removed
    env.run("rm", "smol", check=0)
    assert env.manifests() == []
    man.parent.mkdir(parents=True, exist_ok=True)
    man.write_text(good)
    env.run("run", "smol", "Hi", "-n", "1", *CPU, check=0)


def test_hostile_hf_cache(tmp_path):
    """Odd entries in the Hugging Face cache: never a hang or a crash."""
    env = Env(tmp_path)
    env.fake_hf("Good/Repo-GGUF", "m-Q4_1.gguf", SMOLLM2)
    bad = env.hf / "models--Bad--Repo"
    (bad / "refs").mkdir(parents=True)
    os.mkfifo(bad / "refs" / "main")  # a FIFO where the revision should be
    snap = bad / "snapshots" / "r1"
    snap.mkdir(parents=True)
    os.mkfifo(snap / "fifo-Q4_K_M.gguf")
    os.symlink(str(snap), snap / "loop")  # a directory loop
    (snap / "junk-Q8_0.gguf").write_bytes(b"not a gguf")
    os.symlink("/nonexistent", snap / "dangling-Q2_K.gguf")
    (env.hf / "models--noseparator").mkdir()
    r = env.run("list", check=0, timeout=60)
    names = [ln.split()[0] for ln in r.stdout.splitlines()[1:]]
    assert "hf:Good/Repo-GGUF:q4_1" in names
    assert "hf:Bad/Repo:fifo-q4_k_m" not in names and "hf:Bad/Repo:q4_k_m" not in names
    msg = error_line(env.run("run", "hf:Bad/Repo:Q8_0", "Hi", *CPU, timeout=60))
    assert "GGUF" in msg or "magic" in msg or "format" in msg
    env.run("run", "hf:Good/Repo-GGUF", "Hi", "-n", "1", *CPU, check=0)
