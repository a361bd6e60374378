"""Text a model file produces (a rendered chat template, generated answers)
reaches a terminal with its control bytes escaped, and a pipe unchanged."""
import os
import pty
import select
import subprocess

import pytest

BIN = os.environ.get("M40LLM_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="M40LLM_BIN not set")

EVIL = "A\x1b]0;pwned\x07B\x1b[2J\tC\u009bD\n"


def on_pty(args):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(BIN, [BIN] + args)
    out = b""
    while True:
        r, _, _ = select.select([fd], [], [], 30)
        if not r:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


@pytest.fixture()
def files(tmp_path):
    t = tmp_path / "evil.jinja"
    t.write_bytes(("{% for m in messages %}" + EVIL + "{{ m['content'] }}{% endfor %}").encode())
    m = tmp_path / "m.json"
    m.write_text('[{"role": "user", "content": "hi"}]')
    return str(t), str(m)


def test_template_output_escaped_on_a_terminal(files):
    rc, out = on_pty(["template", *files])
    assert rc == 0, out
    assert b"\x1b" not in out and b"\x07" not in out and b"\xc2\x9b" not in out, out
    assert b"A\\x1b]0;pwned\\x07B\\x1b[2J\tC\\u009bD" in out, out
    assert b"\nhi" in out.replace(b"\r\n", b"\n"), out


def test_template_output_unchanged_into_a_pipe(files):
    r = subprocess.run([BIN, "template", *files], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(EVIL.encode() + b"hi"), r.stdout
