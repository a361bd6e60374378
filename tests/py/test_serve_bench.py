"""bench/serve-bench.py against a fake OpenAI streaming server (http.server in
a thread on a free loopback port) that streams one chunk per token with known
delays: the client must count every request and token, measure TTFT, TPOT
and ITL no shorter than the fake's delays, keep at most C requests in flight,
send what vLLM's benchmark sends (max_tokens, ignore_eos, include_usage),
size prompts with /tokenize, and report errors and early endings."""
import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "serve-bench.py"
FIRST = 0.05  # seconds before the first token chunk
ITL = 0.01  # seconds between token chunks


class Fake(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode=""):
        super().__init__(("127.0.0.1", 0), Handler)
        # "", "early" (every 2nd ignores ignore_eos), "fail" (every 4th is a 500),
        # "notext" (every 4th streams no text)
        self.mode = mode
        self.lock = threading.Lock()
        self.bodies = []
        self.inflight = self.max_inflight = self.count = 0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunk(self, s):  # one HTTP chunk holding one SSE event, sent at once
        data = f"data: {s}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/props":
            self.send_json(200, {"model": "fake", "n_params": 1e9, "n_vocab": 1000})
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": "fake-model"}]})
        else:
            self.send_json(404, {"error": {"message": "no route"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/tokenize":  # BOS + one token a word
            n = 1 + len(body["content"].split()) if body.get("add_special") else 0
            return self.send_json(200, {"tokens": list(range(n))})
        if self.path != "/v1/completions":
            return self.send_json(404, {"error": {"message": "no route"}})
        s = self.server
        with s.lock:
            s.bodies.append(body)
            s.count += 1
            k = s.count
            s.inflight += 1
            s.max_inflight = max(s.max_inflight, s.inflight)
        left = False
        try:
            if s.mode == "fail" and k % 4 == 0:
                return self.send_json(500, {"error": {"message": "fake failure"}})
            n = body["max_tokens"]
            if s.mode == "early" and k % 2 == 0:
                n //= 2
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            time.sleep(FIRST)
            for i in range(n):
                if i:
                    time.sleep(ITL)
                if s.mode == "notext" and k % 4 == 0:
                    continue  # tokens without text send no chunk, as OpenAI does
                self.chunk(json.dumps({"object": "text_completion", "choices": [
                    {"index": 0, "text": f" t{i}", "finish_reason": None}]}))
            self.chunk(json.dumps({"choices": [{"index": 0, "text": "",
                                                "finish_reason": "length"}]}))
            if body.get("stream_options", {}).get("include_usage"):
                pr = body["prompt"]
                p = len(pr) if isinstance(pr, list) else 1 + len(pr.split())
                self.chunk(json.dumps({"choices": [], "usage": {
                    "prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}}))
            # out of flight before the client can see its end: it may open
            # the next request as soon as it has read [DONE]
            with s.lock:
                s.inflight -= 1
                left = True
            self.chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
        finally:
            if not left:
                with s.lock:
                    s.inflight -= 1


@pytest.fixture
def fake(request):
    srv = Fake(getattr(request, "param", ""))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def bench(fake, tmp_path, *args):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--base-url", fake.url, "--json-out",
                        str(out), *map(str, args)], capture_output=True, text=True, timeout=120)
    doc = json.loads(out.read_text()) if out.exists() else None
    return r, doc


def test_counts_and_latencies(fake, tmp_path):
    r, doc = bench(fake, tmp_path, "--concurrency", "1,4", "--input-len", 24, "--output-len", 8)
    assert r.returncode == 0, r.stderr + r.stdout
    assert doc["model"] == "fake-model" and doc["n_params"] == 1e9
    assert doc["props"]["n_vocab"] == 1000 and "serve-bench.py" in doc["command"][0]
    assert [lv["concurrency"] for lv in doc["levels"]] == [1, 4]
    for lv in doc["levels"]:
        n = max(8, 4 * lv["concurrency"])
        assert (lv["num_prompts"], lv["completed"], lv["errors"], lv["ended_early"]) == (n, n, 0, 0)
        assert lv["total_output_tokens"] == 8 * n
        assert lv["mean_input_tokens"] == 24  # sized exactly through /tokenize
        assert lv["ttft_ms"]["mean"] >= FIRST * 1e3 * 0.95
        assert lv["ttft_ms"]["p99"] >= lv["ttft_ms"]["median"]
        assert lv["tpot_ms"]["median"] >= ITL * 1e3 * 0.95
        assert lv["itl_ms"]["median"] >= ITL * 1e3 * 0.95
        e2e = (FIRST + 7 * ITL) * 1e3
        assert lv["e2el_ms"]["mean"] >= e2e * 0.95
        assert lv["output_throughput"] == pytest.approx(8 * n / lv["duration_s"])
        assert lv["request_throughput"] == pytest.approx(n / lv["duration_s"])
        assert lv["output_tflops_fp32"] == pytest.approx(2e9 * lv["output_throughput"] / 1e12)
    # the second level keeps 4 in flight: about 4x the first's throughput
    one, four = doc["levels"]
    assert four["output_throughput"] > 2 * one["output_throughput"]
    assert fake.max_inflight == 4
    # 8 + 16 + 1 warm-up, each as vLLM's benchmark asks
    assert len(fake.bodies) == 25
    for b in fake.bodies:
        assert b["max_tokens"] == 8 and b["ignore_eos"] is True and b["stream"] is True
        assert b["stream_options"] == {"include_usage": True} and b["model"] == "fake-model"
    prompts = [b["prompt"] for b in fake.bodies]
    assert len(set(prompts)) == len(prompts)  # no prefix-cache help
    assert "Output token throughput (tok/s):" in r.stdout and "| conc |" in r.stdout


@pytest.mark.parametrize("fake", ["early"], indirect=True)
def test_ended_early_reported(fake, tmp_path):
    r, doc = bench(fake, tmp_path, "--concurrency", "2", "--num-prompts", 8, "--output-len", 6,
                   "--warmup", 0)
    assert r.returncode == 0, r.stderr
    lv = doc["levels"][0]
    assert (lv["completed"], lv["errors"], lv["ended_early"]) == (8, 0, 4)
    assert lv["total_output_tokens"] == 4 * 6 + 4 * 3


@pytest.mark.parametrize("fake", ["fail"], indirect=True)
def test_errors_reported(fake, tmp_path):
    r, doc = bench(fake, tmp_path, "--concurrency", "2", "--num-prompts", 8, "--output-len", 3,
                   "--warmup", 0)
    assert r.returncode == 1
    lv = doc["levels"][0]
    assert (lv["completed"], lv["errors"]) == (6, 2)
    assert any("HTTP 500" in e and "fake failure" in e for e in lv["error_samples"])
    assert "Failed requests:" in r.stdout


@pytest.mark.parametrize("fake", ["notext"], indirect=True)
def test_requests_without_text(fake, tmp_path):
    r, doc = bench(fake, tmp_path, "--concurrency", "2", "--num-prompts", 8, "--output-len", 3,
                   "--warmup", 0)
    assert r.returncode == 0, r.stderr
    lv = doc["levels"][0]
    assert (lv["completed"], lv["errors"], lv["no_text"]) == (8, 0, 2)
    assert lv["total_output_tokens"] == 8 * 3  # counted from usage
    assert lv["ttft_ms"]["mean"] >= FIRST * 1e3 * 0.95  # the 6 with text


def test_ids_prompts_and_flops_option(fake, tmp_path):
    r, doc = bench(fake, tmp_path, "--concurrency", "1", "--num-prompts", 8, "--output-len", 2,
                   "--prompt-kind", "ids", "--input-len", 5, "--fp32-flops-per-token", 1e12)
    assert r.returncode == 0, r.stderr
    ids = [b["prompt"] for b in fake.bodies]
    assert all(len(p) == 5 and all(0 <= t < 1000 for t in p) for p in ids)
    lv = doc["levels"][0]
    assert lv["output_tflops_fp32"] == pytest.approx(lv["output_throughput"])


def test_bad_arguments(tmp_path):
    for args in (["--concurrency", "0"], ["--concurrency", "1,x"], ["--output-len", "0"],
                 ["--base-url", "ftp://x"]):
        r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, (args, r.stderr)
    # nothing listening: a message, exit 1
    r = subprocess.run([sys.executable, str(SCRIPT), "--base-url", "http://127.0.0.1:9",
                        "--concurrency", "1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot reach" in r.stderr
