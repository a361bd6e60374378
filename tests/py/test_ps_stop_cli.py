"""`m40-llm ps` and `m40-llm stop` against a running `m40-llm serve` on
loopback: ps lists what the server has loaded (name, size, processor,
context, until: minutes for a keep_alive, Forever for --model) as a table
and as the server's JSON; stop unloads a model loaded on demand (the server
answers done_reason "unload" and ps shows nothing), refuses one that is not
loaded and says the server keeps a --model one; --host / $M40LLM_HOST forms,
$M40LLM_API_KEY, an unreachable server and bad arguments."""
import json
import re

import pytest

from serve_common import Server
from store_common import CPU, REPO, SMOLLM2, Env, mock, need_bin  # noqa: F401

pytestmark = pytest.mark.usefixtures("need")


@pytest.fixture
def need():
    need_bin()


@pytest.fixture
def env(tmp_path, mock):
    e = Env(tmp_path, mock)
    e.run("pull", f"hf.co/{REPO}", "--name", "smol", check=0)
    return e


def serve(env, *args):
    return Server("--addr", "127.0.0.1:0", *CPU, "--ctx", "256", "--max-seqs", "2", *args,
                  env=env.env)


def rows(out):
    lines = out.strip().splitlines()
    assert re.match(r"NAME\s+SIZE\s+PROCESSOR\s+CONTEXT\s+UNTIL$", lines[0]), out
    return [re.split(r"\s{2,}", l.strip()) for l in lines[1:]]


def test_ps_and_stop_on_demand_model(env):
    srv = serve(env, "--keep-alive", "10m")
    try:
        host = f"{srv.host}:{srv.port}"
        r = env.run("ps", "--host", host, check=0)
        assert rows(r.stdout) == [], r.stdout
        st, j = srv.json("POST", "/api/generate", {"model": "smol", "prompt": "Hi",
                                                   "stream": False, "options": {"num_predict": 2}})
        assert st == 200, j
        r = env.run("ps", "--host", host, check=0)
        (row,) = rows(r.stdout)
        assert row[0] == "smol:latest" and row[2] == "100% CPU" and row[3] == "256", row
        assert re.fullmatch(r"(9|10) minutes from now", row[4]), row
        assert re.fullmatch(r"\d+(\.\d+)? MB", row[1]), row
        # the server's JSON, as it answered; M40LLM_HOST and a URL form
        r = env.run("ps", "--json", env={"M40LLM_HOST": f"http://{host}/"}, check=0)
        (m,) = json.loads(r.stdout)["models"]
        assert m["name"] == "smol:latest" and m["context_length"] == 256
        # stop: by the name as given to the server, without the tag
        r = env.run("stop", "smol", "--host", f"http://{host}", check=0)
        assert r.stdout == "" and r.stderr == "", r
        assert rows(env.run("ps", "--host", host, check=0).stdout) == []
        r = env.run("stop", "smol", "--host", host, check=1)
        assert "smol is not loaded" in r.stderr, r.stderr
        # the API itself: a keep_alive 0 request without a prompt says "unload"
        st, j = srv.json("POST", "/api/generate", {"model": "smol", "keep_alive": 0,
                                                   "stream": False})
        assert st == 200 and j["done"] and j["done_reason"] == "unload", j
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_pinned_model_and_api_key(env):
    srv = serve(env, "--model", str(SMOLLM2), "--alias", "smol", "--api-key", "sekrit")
    try:
        host = f"{srv.host}:{srv.port}"
        r = env.run("ps", "--host", host, check=1)
        assert "HTTP 401" in r.stderr and "M40LLM_API_KEY" in r.stderr, r.stderr
        key = {"M40LLM_API_KEY": "sekrit"}
        (row,) = rows(env.run("ps", "--host", host, env=key, check=0).stdout)
        assert row[0] == "smol:latest" and row[4] == "Forever", row
        r = env.run("stop", "smol:latest", "--host", host, env=key, check=1)
        assert "keeps smol:latest loaded" in r.stderr and "--model" in r.stderr, r.stderr
        st, j = srv.json("POST", "/api/generate", {"model": "smol", "keep_alive": 0,
                                                   "stream": False},
                         {"Authorization": "Bearer sekrit"})
        assert st == 200 and j["done_reason"] == "load", j
        (row,) = rows(env.run("ps", "--host", host, env=key, check=0).stdout)
        assert row[0] == "smol:latest"
    finally:
        assert srv.stop() == 0, srv.stderr()


@pytest.mark.parametrize("args,code,text", [
    (["ps", "--host", "127.0.0.1:9"], 1, "cannot reach the server at http://127.0.0.1:9"),
    (["stop", "x", "--host", "9"], 1, "cannot reach the server at http://127.0.0.1:9"),
    (["ps", "--host", "ftp://h"], 2, "only http:// and https://"),
    (["ps", "--host", "a b"], 2, "blank or control"),
    (["ps", "extra"], 2, "unexpected argument 'extra'"),
    (["stop"], 2, "usage: m40-llm stop MODEL"),
    (["stop", "a", "b"], 2, "unexpected argument 'b'"),
])
def test_bad_use(env, args, code, text):
    r = env.run(*args, check=code)
    assert text in r.stderr, r.stderr



class _Mock:
    """A loopback server answering /api/ps with one model and /api/generate
    with the status given; /api/ps fails after the first call when told."""

    def __init__(self, gen_status, ps_fails_later=False):
        import http.server
        import threading
        mock = self
        self.ps_calls = 0

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, st, doc):
                body = json.dumps(doc).encode()
                self.send_response(st)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                mock.ps_calls += 1
                if ps_fails_later and mock.ps_calls > 1:
                    return self.reply(500, {"error": "down"})
                self.reply(200, {"models": [{"name": "m:latest", "model": "m:latest",
                                             "size": 1, "size_vram": 0, "context_length": 8,
                                             "expires_at": "2999-01-01T00:00:00Z"}]})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if gen_status != 200:
                    return self.reply(gen_status, {"error": "boom"})
                self.reply(200, {"done": True, "done_reason": "unload"})

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.host = f"127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


def test_stop_when_the_server_fails(env):
    m = _Mock(500)
    try:
        r = env.run("stop", "m", "--host", m.host, check=1)
        assert "HTTP 500: boom" in r.stderr, r.stderr
    finally:
        m.close()
    m = _Mock(200, ps_fails_later=True)  # unloaded, the check after it fails: done
    try:
        r = env.run("stop", "m", "--host", m.host, check=0)
        assert r.stderr == "" and m.ps_calls == 2, (r.stderr, m.ps_calls)
    finally:
        m.close()
