"""A real browser (headless Debian chromium) against hitcountd."""

import os
import signal
import socket
import subprocess
import threading

from e2e_helpers import require_tool

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync", "--disable-quic"]


def run_chromium(tmp_path, url, tag):
    """--dump-dom of url with a fresh profile; returns the DOM text."""
    profile = tmp_path / ("chromium-profile-" + tag)
    profile.mkdir()
    errpath = tmp_path / ("chromium-%s.err" % tag)
    env = dict(os.environ, HOME=str(profile))
    with open(str(errpath), "wb") as err:
        chromium = require_tool("chromium", "chromium", env="CHROMIUM")
        p = subprocess.Popen([chromium] + FLAGS +
                             ["--user-data-dir=%s" % profile,
                              "--dump-dom", url],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=err, env=env, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        out = None
    finally:
        # chromium's helpers are in its own process group (session)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.poll() is None:
            p.kill()
        p.wait()
    assert out is not None, "chromium did not finish within 60 s: %s" % (
        errpath.read_text(errors="replace")[-3000:])
    return out.decode("utf-8", "replace")


class RecordingProxy:
    """TCP proxy 127.0.0.1:port -> daemon that records, per connection,
    the request lines sent by the client and the statuses it got back."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []          # [(requests, statuses)]
        self.threads = []
        self.closing = False
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            reqs, stats = [], []
            with self.lock:
                self.conns.append((reqs, stats, c, s))
            for src, dst, rec, is_req in ((c, s, reqs, True),
                                          (s, c, stats, False)):
                t = threading.Thread(target=self._pump,
                                     args=(src, dst, rec, is_req),
                                     daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pump(src, dst, record, is_request):
        buf = b""
        skip = 0
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                dst.sendall(data)
            except OSError:
                return
            buf += data
            while True:
                if skip:
                    n = min(skip, len(buf))
                    buf, skip = buf[n:], skip - n
                    if skip:
                        break
                if b"\r\n\r\n" not in buf:
                    break
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                first = lines[0].split(" ")
                clen = 0
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        clen = int(v.strip())
                if is_request:
                    record.append((first[0], first[1]))
                    skip = clen
                else:
                    record.append(int(first[1]))
                    # responses to HEAD are not expected from chromium
                    skip = clen

    def exchanges(self):
        """[(method, path, status or None)] over all connections."""
        out = []
        with self.lock:
            for reqs, stats, _, _ in self.conns:
                for i, (m, p) in enumerate(reqs):
                    out.append((m, p, stats[i] if i < len(stats) else None))
        return out

    def close(self):
        self.lsock.close()
        with self.lock:
            for _, _, c, s in self.conns:
                for x in (c, s):
                    try:
                        x.close()
                    except OSError:
                        pass


def test_browser_page_loads_count_once(daemon_factory, redis_server,
                                       tmp_path):
    d = daemon_factory()
    url = "http://127.0.0.1:%d/" % d.port
    for n in (1, 2):
        before = redis_server.visits()
        assert before == n - 1
        dom = run_chromium(tmp_path, url, "direct%d" % n)
        assert "Page visited %d times" % n in dom, dom
        assert redis_server.visits() == before + 1, \
            "one page load must count exactly one visit"


def test_browser_requests_and_favicon(daemon_factory, redis_server,
                                      tmp_path):
    d = daemon_factory()
    redis_server.cli("SET", "visits", "10")
    proxy = RecordingProxy(d.port)
    try:
        dom = run_chromium(tmp_path, "http://127.0.0.1:%d/" % proxy.port,
                           "proxied")
        assert "Page visited 11 times" in dom, dom
        assert redis_server.visits() == 11
        ex = proxy.exchanges()
    finally:
        proxy.close()
    print("chromium exchanges: %r" % (ex,))
    roots = [e for e in ex if e[1] == "/" or e[1].startswith("/?")]
    assert roots == [("GET", "/", 200)], ex
    for method, path, status in ex:
        if path == "/favicon.ico":
            assert status in (404, None), ex   # None: browser hung up first
            assert status != 200
        elif path != "/":
            assert status == 404, ex
