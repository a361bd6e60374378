"""A loopback HTTP server for the pull tests: a mocked slice of the Hugging
Face Hub API (revision, tree with lfs.oid, resolve answering with a 302
redirect) and plain file URLs, both with HTTP Range support, plus toggles to
break things: ignore Range, cut the connection after N bytes, corrupt a
byte, answer a fixed status (404, 500, 401), require a bearer token.

    mock = HFMock()
    mock.add_file("owner/repo", "model-Q4_K_M.gguf", "/path/to/file")
    mock.start()         # mock.url == "http://127.0.0.1:PORT"
    ...
    mock.stop()

mock.log lists every request as dicts {method, path, range, status, sent,
auth}; sent is the number of body bytes written."""
import hashlib
import http.server
import json
import socket
import threading
import time
import urllib.parse


class _File:
    def __init__(self, path, data=None):
        self.data = data if data is not None else open(path, "rb").read()
        self.sha = hashlib.sha256(self.data).hexdigest()


class HFMock:
    def __init__(self):
        self.repos = {}  # "owner/repo" -> {path: _File}
        self.plain = {}  # name -> _File, served at /files/<name>
        self.revision = "0123456789abcdef0123456789abcdef01234567"
        self.ignore_range = False
        self.cut_after = None  # bytes of body sent before the connection is cut
        self.cut_times = 0  # how many responses to cut (then serve normally)
        self.corrupt = False  # flip one byte of every file served
        self.status_for = {}  # path prefix -> HTTP status answered instead
        self.require_token = None  # bearer token required by every route
        self.chunk_delay = 0.0  # seconds between 64 KiB chunks (slow server)
        self._log = []
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.active = 0  # requests being answered
        self.server = None

    # ---- content ----
    def add_file(self, repo, path, local=None, data=None):
        self.repos.setdefault(repo, {})[path] = _File(local, data)

    def add_plain(self, name, local=None, data=None):
        self.plain[name] = _File(local, data)

    def sha(self, repo, path):
        return self.repos[repo][path].sha

    @property
    def log(self):
        """Every request so far, once none is being answered: a handler
        records its request after the last byte went out, which a client
        may have read (and exited on) just before (at most 5 s)."""
        with self.idle:
            self.idle.wait_for(lambda: self.active == 0, timeout=5)
            return list(self._log)

    def sent_for(self, suffix):
        """Body bytes sent for requests whose path ends with suffix."""
        return sum(e["sent"] for e in self.log if e["path"].endswith(suffix))

    def requests(self, prefix=""):
        return [e for e in self.log if e["path"].startswith(prefix)]

    # ---- life ----
    def start(self):
        mock = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                mock._counted(self)

            def do_HEAD(self):
                mock._counted(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # ---- requests ----
    def _counted(self, h):
        with self.lock:
            self.active += 1
        try:
            self._handle(h)
        finally:
            with self.idle:
                self.active -= 1
                self.idle.notify_all()

    def _record(self, h, status, sent):
        with self.lock:
            self._log.append({"method": h.command, "path": urllib.parse.urlsplit(h.path).path,
                             "range": h.headers.get("Range"), "status": status, "sent": sent,
                             "auth": h.headers.get("Authorization")})

    def _json(self, h, status, obj):
        body = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
        self._record(h, status, len(body))

    def _handle(self, h):
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        for prefix, status in self.status_for.items():
            if path.startswith(prefix):
                return self._json(h, status, {"error": "mocked status %d" % status})
        if self.require_token and h.headers.get("Authorization") != "Bearer " + self.require_token:
            return self._json(h, 401, {"error": "Access to this model is restricted"})
        parts = path.strip("/").split("/")
        if path.startswith("/api/models/") and len(parts) >= 6:
            repo = parts[2] + "/" + parts[3]
            if repo not in self.repos:
                return self._json(h, 404, {"error": "Repository not found"})
            if parts[4] == "revision":
                return self._json(h, 200, {"id": repo, "sha": self.revision})
            if parts[4] == "tree":
                return self._json(h, 200, self._tree(repo))
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, fpath = parts[0] + "/" + parts[1], "/".join(parts[4:])
            f = self.repos.get(repo, {}).get(fpath)
            if not f:
                return self._json(h, 404, {"error": "Entry not found"})
            # as the Hub does for LFS files: a redirect to the content store
            h.send_response(302)
            h.send_header("Location", "/cdn/%s/%s" % (f.sha, urllib.parse.quote(fpath)))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return self._record(h, 302, 0)
        if len(parts) >= 2 and parts[0] == "cdn":
            for files in self.repos.values():
                for f in files.values():
                    if f.sha == parts[1]:
                        return self._send_file(h, f)
        if len(parts) == 2 and parts[0] == "files" and parts[1] in self.plain:
            return self._send_file(h, self.plain[parts[1]])
        return self._json(h, 404, {"error": "not found"})

    def _tree(self, repo):
        out, dirs = [], set()
        for p, f in sorted(self.repos[repo].items()):
            if "/" in p:
                dirs.add(p.rsplit("/", 1)[0])
            out.append({"type": "file", "oid": hashlib.sha1(f.data).hexdigest(), "size": len(f.data),
                        "path": p, "lfs": {"oid": f.sha, "size": len(f.data), "pointerSize": 134}})
        out += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(dirs)]
        out.append({"type": "file", "oid": "1" * 40, "size": 12, "path": "README.md"})
        return out

    def _send_file(self, h, f):
        data = f.data
        if self.corrupt:
            data = bytearray(data)
            data[len(data) // 2] ^= 0xFF
            data = bytes(data)
        start, status = 0, 200
        rng = h.headers.get("Range")
        if rng and not self.ignore_range and rng.startswith("bytes="):
            a = rng[6:].split("-")[0]
            start = int(a) if a.isdigit() else 0
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", "bytes */%d" % len(data))
                h.send_header("Content-Length", "0")
                h.end_headers()
                return self._record(h, 416, 0)
            status = 206
        body = data[start:]
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        h.end_headers()
        if h.command == "HEAD":
            return self._record(h, status, 0)
        limit = len(body)
        cut = False
        with self.lock:
            if self.cut_after is not None and self.cut_times != 0:
                limit = min(limit, self.cut_after)
                cut = True
                if self.cut_times > 0:
                    self.cut_times -= 1
        sent = 0
        try:
            while sent < limit:
                n = min(65536, limit - sent)
                h.wfile.write(body[sent:sent + n])
                sent += n
                if self.chunk_delay:
                    time.sleep(self.chunk_delay)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self._record(h, status, sent)
        if cut:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def free_port():
    """A loopback port nothing listens on (for a refused connection)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


if __name__ == "__main__":  # a manual check: serve files given as REPO/PATH=LOCAL
    import sys
    m = HFMock()
    for arg in sys.argv[1:]:
        spec, local = arg.split("=", 1)
        owner, repo, path = spec.split("/", 2)
        m.add_file(owner + "/" + repo, path, local)
    m.start()
    print(m.url, flush=True)
    while True:
        time.sleep(3600)
