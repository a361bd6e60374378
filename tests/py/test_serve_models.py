"""`m40-llm serve` without --model (issue 20, acceptance 7): models of the
store named by requests load on demand through both APIs, --max-models
and keep_alive unload them, /api/tags, /v1/models and /api/ps reflect the
store and what is loaded, POST /api/pull streams progress from the loopback
mirror and the model is then usable, DELETE /api/delete, POST /api/copy,
507 when a model cannot fit --max-memory."""
import json
import threading
import time

import pytest

from serve_common import Server
from store_common import CPU, REPO, SMOLLM2, SYNTH_REPO, Env, mock, need_bin, synth  # noqa: F401

pytestmark = pytest.mark.usefixtures("need")


@pytest.fixture
def need():
    need_bin()


@pytest.fixture
def env(tmp_path, mock):
    e = Env(tmp_path, mock)
    syn = synth(tmp_path / "syn.gguf")
    mock.add_file(SYNTH_REPO, "synth-Q8_0.gguf", str(syn))
    e.run("pull", f"hf.co/{REPO}", "--name", "smol", check=0)
    e.run("pull", f"hf.co/{SYNTH_REPO}:Q8_0", "--name", "syn", check=0)
    return e


def serve(env, *args):
    return Server("--addr", "127.0.0.1:0", *CPU, "--ctx", "256", "--max-seqs", "4", *args,
                  env=env.env)


def chat(srv, model, **kw):
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
            "temperature": 0}
    body.update(kw)
    return srv.json("POST", "/v1/chat/completions", body)


def generate(srv, model, **kw):
    body = {"model": model, "prompt": "Hi", "stream": False, "options": {"num_predict": 3}}
    body.update(kw)
    return srv.json("POST", "/api/generate", body)


def loaded(srv):
    st, j = srv.json("GET", "/api/ps")
    assert st == 200
    return sorted(m["name"] for m in j["models"])


def test_alternate_models_one_slot(env):
    srv = serve(env)
    try:
        assert loaded(srv) == []
        st, j = srv.json("GET", "/api/tags")
        assert st == 200 and {m["name"] for m in j["models"]} == {"smol:latest", "syn:latest"}
        st, j = srv.json("GET", "/v1/models")
        assert {m["id"] for m in j["data"]} == {"smol:latest", "syn:latest"}
        # /api/show reads the GGUF; it does not load the model
        st, j = srv.json("POST", "/api/show", {"model": "smol"})
        assert st == 200 and j["details"]["quantization_level"] == "Q4_1", j
        assert j["model_info"]["llama.context_length"] == 8192 and "<|im_start|>" in j["template"]
        assert j["model_info"]["llama.block_count"] == 30
        assert j["model_info"]["llama.vocab_size"] == 49152
        assert loaded(srv) == []
        assert srv.json("POST", "/api/show", {"model": "nothing"})[0] == 404
        for i in range(2):  # alternately, through both APIs
            st, j = chat(srv, "smol")
            assert st == 200, j
            assert j["model"] == "smol" and j["choices"][0]["message"]["content"] is not None
            assert loaded(srv) == ["smol:latest"]
            st, j = generate(srv, "syn:latest")
            assert st == 200 and j["done"], j
            assert loaded(srv) == ["syn:latest"]  # --max-models 1: smol went first
        err = srv.stderr()
        assert err.count("loading smol") == 2 and err.count("unloaded smol") == 2
        # not a model of the store
        st, j = chat(srv, "nothing")
        assert st == 404 and "nothing" in j["error"]["message"]
        st, j = generate(srv, "/etc/passwd")
        assert st == 404
        # /props and /tokenize use the loaded one, or the one named
        st, j = srv.json("GET", "/props")
        assert st == 200 and j["model"] == "syn:latest"
        st, j = srv.json("POST", "/api/show", {"model": "syn"})  # loaded: from the model
        assert st == 200 and j["details"]["quantization_level"] == "F32"
        st, j = srv.json("POST", "/tokenize", {"content": "hello", "model": "smol"})
        assert st == 200 and j["tokens"]
    finally:
        assert srv.stop() == 0


def test_two_slots_and_keep_alive(env):
    srv = serve(env, "--max-models", "2", "--keep-alive", "-1")
    try:
        assert chat(srv, "smol")[0] == 200
        assert generate(srv, "syn")[0] == 200
        assert loaded(srv) == ["smol:latest", "syn:latest"]
        st, j = srv.json("GET", "/api/ps")
        assert all(m["expires_at"].startswith("2999-") for m in j["models"])
        # keep_alive 0 unloads at once (Ollama's way: a request without a prompt)
        st, j = generate(srv, "syn", prompt=None, keep_alive=0)
        assert st == 200 and j["done_reason"] == "unload"
        assert loaded(srv) == ["smol:latest"]
        # a short keep_alive: unloaded after it
        st, j = generate(srv, "syn", keep_alive="1s")
        assert st == 200 and loaded(srv) == ["smol:latest", "syn:latest"]
        st, j = srv.json("GET", "/api/ps")
        exp = {m["name"]: m["expires_at"] for m in j["models"]}
        assert exp["smol:latest"].startswith("2999-") and not exp["syn:latest"].startswith("2999-")
        end = time.time() + 10
        while loaded(srv) != ["smol:latest"] and time.time() < end:
            time.sleep(0.1)
        assert loaded(srv) == ["smol:latest"]
        assert "unloaded syn:latest (keep_alive over)" in srv.stderr() or \
            "unloaded syn" in srv.stderr()
        st, j = generate(srv, "syn", keep_alive="soon")
        assert st == 400 and "keep_alive" in j["error"]
    finally:
        assert srv.stop() == 0


def test_keep_alive_set_when_answer_arrives(env):
    """A generation gives its model back as soon as its answer is complete, before the
    answer goes out: the client's next call finds the model idle, its keep_alive running
    (it was given back when the connection closed, just after: /api/ps could show it in
    use, never expiring). Every way out: Ollama and OpenAI, whole and streamed, while
    another model's requests keep the machine busy (the window was widest under load)."""
    srv = serve(env, "--keep-alive", "10m", "--max-models", "2")
    opts = {"num_predict": 2}
    msgs = [{"role": "user", "content": "Hi"}]
    calls = [
        ("/api/generate", {"model": "syn", "prompt": "Hi", "stream": False, "options": opts,
                           "keep_alive": "9m"}),
        ("/api/generate", {"model": "syn", "prompt": "Hi", "options": opts, "keep_alive": "9m"}),
        ("/api/chat", {"model": "syn", "messages": msgs, "options": opts}),
        ("/v1/chat/completions", {"model": "syn", "messages": msgs, "max_tokens": 2}),
        ("/v1/completions", {"model": "syn", "prompt": "Hi", "max_tokens": 2, "stream": True}),
    ]
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            chat(srv, "smol", max_tokens=16, ignore_eos=True)

    load = threading.Thread(target=busy, daemon=True)
    try:
        assert chat(srv, "smol")[0] == 200
        load.start()
        for i in range(100):
            for path, body in calls:
                st, _, data = srv.request("POST", path, body)
                assert st == 200, data
                st, j = srv.json("GET", "/api/ps")
                exp = [m["expires_at"] for m in j["models"] if m["name"] == "syn:latest"]
                assert exp and not exp[0].startswith("2999-"), (i, path, j)
        # keep_alive 0 on a generation: unloaded by the time its answer is there
        for stream in [False, True]:
            st, _, data = srv.request("POST", "/api/generate", {
                "model": "syn", "prompt": "Hi", "stream": stream, "options": opts,
                "keep_alive": 0})
            assert st == 200, data
            assert loaded(srv) == ["smol:latest"]
    finally:
        stop.set()
        load.join(60)
        assert srv.stop() == 0


def test_memory_limit_507(env):
    srv = serve(env, "--max-memory", "1M")
    try:
        st, j = chat(srv, "smol")
        assert st == 507, j
        msg = j["error"]["message"]
        assert "needs" in msg and "weights" in msg and "--max-memory" in msg
        assert loaded(srv) == []
    finally:
        assert srv.stop() == 0


def test_pull_delete_copy_through_server(env, mock):
    mock.chunk_delay = 0.002  # enough progress lines to see
    mock.add_file("TestOwner/New-GGUF", "new-Q4_K_M.gguf", SMOLLM2)
    env.run("rm", "smol", check=0)  # its blob goes: the pull below downloads it again
    env.run("cp", "syn", "smol", check=0)
    srv = serve(env)
    try:
        st, h, body = srv.request("POST", "/api/pull", {"model": "hf.co/TestOwner/New-GGUF"})
        assert st == 200 and h["content-type"] == "application/x-ndjson"
        lines = [json.loads(ln) for ln in body.decode().splitlines()]
        statuses = [ln.get("status") for ln in lines]
        assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
        assert "verifying sha256 digest" in statuses and "writing manifest" in statuses
        prog = [ln for ln in lines if "completed" in ln]
        assert prog and prog[-1]["completed"] == prog[-1]["total"] > 0
        assert prog[-1]["digest"].startswith("sha256:")
        name = "hf.co/testowner/new-gguf:q4_k_m"
        st, j = srv.json("GET", "/api/tags")
        assert name in {m["name"] for m in j["models"]}
        st, j = srv.json("POST", "/api/chat", {"model": name, "stream": False,
                                               "messages": [{"role": "user", "content": "Hi"}],
                                               "options": {"num_predict": 2}})
        assert st == 200 and j["done"], j
        # not streamed; and a failing pull
        st, j = srv.json("POST", "/api/pull", {"name": f"hf.co/{SYNTH_REPO}:Q8_0", "stream": False})
        assert st == 200 and j == {"status": "success"}
        st, h, body = srv.request("POST", "/api/pull", {"model": "hf.co/TestOwner/Nothing"})
        last = json.loads(body.decode().splitlines()[-1])
        assert "404" in last["error"]
        st, j = srv.json("POST", "/api/pull", {"model": "hf.co/TestOwner/Nothing", "stream": False})
        assert st == 404 and "404" in j["error"]
        # copy, then delete both names
        st, _, _ = srv.request("POST", "/api/copy", {"source": "smol", "destination": "smol2"})
        assert st == 200
        assert chat(srv, "smol2")[0] == 200
        st, _, _ = srv.request("DELETE", "/api/delete", {"model": "smol2"})
        assert st == 200
        st, j = srv.json("DELETE", "/api/delete", {"model": "smol2"})
        assert st == 404 and "not in the store" in j["error"]
        st, j = srv.json("DELETE", "/api/delete", {"model": "ollama:x"})
        assert st == 400 and "does not own" in j["error"]
        st, j = srv.json("POST", "/api/copy", {"source": "nothing", "destination": "x"})
        assert st == 404
        st, j = srv.json("POST", "/api/copy", {"source": "smol", "destination": "../x"})
        assert st == 400 and "'..' is not allowed" in j["error"]
        st, j = srv.json("GET", "/api/tags")
        names = {m["name"] for m in j["models"]}
        assert "smol2:latest" not in names and "smol:latest" in names
    finally:
        assert srv.stop() == 0
    assert "smol2:latest" not in {m["name"] for m in env.list_json()}
