"""Idle and slow clients: keepalive_timeout, header_timeout (from a
request's first byte, also on a keep-alive connection and after a body),
a body sent slowly, a client that never reads its answers; and
slowhttptest (Debian package) with 1000 connections while a probe asks
GET / every 100 ms on fresh connections.
"""

import re
import resource
import select
import socket
import subprocess
import threading
import time

import pytest

from e2e_helpers import built_with_sanitizer, kill_pid, patience, require_tool
from e2e_http import GET_ROOT, RawClient, get


# --------------------------------------------------------------------------
# keepalive_timeout and an incomplete head
# --------------------------------------------------------------------------

def test_idle_keepalive_connection_closed(daemon_factory, redis_server):
    d = daemon_factory(keepalive_timeout=1)
    with RawClient(d.port) as c:
        r = c.request("GET", "/")
        assert r.status == 200
        closed, extra, elapsed = c.wait_closed(3.5)
        assert closed, "idle keep-alive connection still open after 3.5 s"
        assert extra == b""
        assert elapsed >= 0.5, "closed too early (%.2f s)" % elapsed


def test_keepalive_connection_survives_short_idle(daemon_factory,
                                                  redis_server):
    d = daemon_factory(keepalive_timeout=4)
    with RawClient(d.port) as c:
        assert c.request("GET", "/").status == 200
        time.sleep(1.5)
        r = c.request("GET", "/")
        assert r.status == 200
        assert r.body == b"Page visited 2 times"


def test_keepalive_timeout_zero_disables_keepalive(daemon_factory,
                                                   redis_server):
    d = daemon_factory(keepalive_timeout=0)
    with RawClient(d.port) as c:
        r = c.request("GET", "/")
        assert r.status == 200
        closed, extra, _ = c.wait_closed(patience(2))
        assert closed and extra == b""


def test_incomplete_request_head_times_out(daemon_factory, redis_server):
    d = daemon_factory(header_timeout=1, keepalive_timeout=10)
    with RawClient(d.port) as c:
        c.send("GET / HTTP/1.1\r\nHost: t\r\n")     # head never completed
        closed, extra, elapsed = c.wait_closed(4)
        assert closed, "incomplete request head kept open for 4 s"
        # hitcountd.8: an incomplete head is answered with 408
        assert extra.startswith(b"HTTP/1.1 408 "), extra
    assert redis_server.visits() == 0


# --------------------------------------------------------------------------
# slow clients
# --------------------------------------------------------------------------

def dribble(port, data, interval, max_time, sock=None):
    """Send data one byte every `interval` s until the server answers or
    closes.  Returns (seconds from the first byte to the server's first
    reaction, bytes sent, bytes received, closed)."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
    start = None
    sent = 0
    got = b""
    closed = False
    reacted = None
    try:
        deadline = time.monotonic() + max_time
        for i in range(len(data)):
            try:
                s.send(data[i:i + 1])
            except OSError:
                closed = True
                reacted = time.monotonic()
                break
            if start is None:
                start = time.monotonic()
            sent += 1
            r, _, _ = select.select([s], [], [], interval)
            if r:
                reacted = time.monotonic()
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    got += chunk
                else:
                    closed = True
                break
            if time.monotonic() > deadline:
                break
        if reacted is not None and not closed:
            # read the rest until EOF
            s.settimeout(3)
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        closed = True
                        break
                    got += chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
    finally:
        if sock is None:
            s.close()
    elapsed = (reacted - start) if reacted is not None else None
    return elapsed, sent, got, closed


def test_header_timeout_runs_from_request_start(daemon_factory,
                                                redis_server):
    d = daemon_factory(header_timeout=2, keepalive_timeout=30)
    # a connection that never sends a byte is closed at header_timeout too
    # (not at the longer keepalive_timeout)
    silent = RawClient(d.port, timeout=5)
    silent_t0 = time.monotonic()
    slow = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
    elapsed, sent, got, closed = dribble(d.port, slow, 0.5, 8)
    try:
        s_closed, s_extra, _ = silent.wait_closed(2)
        s_elapsed = time.monotonic() - silent_t0
    finally:
        silent.close()
    assert s_closed, "a silent connection kept for %.1f s" % s_elapsed
    assert s_elapsed < 3.5, s_elapsed
    # no request was begun, so there is none to answer
    assert s_extra == b"", s_extra
    print("slow head cut after %s s, %d bytes sent" % (elapsed, sent))
    assert elapsed is not None, "a 1 byte / 0.5 s client kept for 8 s"
    assert 1.7 <= elapsed <= 3.0, "cut after %.2f s, header_timeout=2" % (
        elapsed,)
    assert sent >= 4, "the client was still sending"
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert closed

    # on a keep-alive connection the timer starts with the next request's
    # first byte, not with the previous answer
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    try:
        s.sendall(GET_ROOT)
        data = b""
        while b"Page visited 1 times" not in data:
            chunk = s.recv(4096)
            assert chunk, "closed before the answer"
            data += chunk
        time.sleep(1.5)                 # idle, within keepalive_timeout
        elapsed, sent, got, closed = dribble(d.port, slow, 0.5, 8, sock=s)
    finally:
        s.close()
    print("second slow head cut after %s s" % elapsed)
    assert elapsed is not None
    assert 1.7 <= elapsed <= 3.0, "cut after %.2f s" % elapsed
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert closed
    assert redis_server.visits() == 1


@pytest.mark.parametrize("body", ["content-length", "chunked",
                                  "expect-100-continue"])
def test_header_timer_restarts_after_a_body(daemon_factory, redis_server,
                                            body):
    """After a request whose body arrived in a later segment, the next
    request on the keep-alive connection gets a full header_timeout from
    its own first byte (the timer of the body must not carry over)."""
    d = daemon_factory(header_timeout=1, keepalive_timeout=30)
    with RawClient(d.port, timeout=5) as c:
        if body == "chunked":
            c.send(b"POST / HTTP/1.1\r\nHost: t\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
            data = b"5\r\nhello\r\n0\r\n\r\n"
        else:
            c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n" +
                   (b"Expect: 100-continue\r\n"
                    if body == "expect-100-continue" else b"") + b"\r\n")
            data = b"hello"
            if body == "expect-100-continue":
                assert c.read_response().status == 100
        r = c.read_response()
        assert r.status == 405, r
        time.sleep(0.2)
        c.send(data)                     # the body, in its own segment
        time.sleep(1.3)                  # idle keep-alive > header_timeout
        t0 = time.monotonic()
        try:
            c.send(b"GET / HTTP/1.1\r\n")
            time.sleep(0.3)
            c.send(b"Host: t\r\n\r\n")
        except OSError:
            pass
        r = c.read_response()
        el = time.monotonic() - t0
        assert r.status == 200, (
            "expected 200 for a head sent in 0.3 s (header_timeout=1), "
            "got %d %.2f s after its first byte: %r" % (r.status, el, r))
        assert r.body == b"Page visited 1 times"
    assert redis_server.visits() == 1


def test_stalled_body_gets_one_answer(daemon_factory, redis_server):
    """POST / is answered (405) as soon as its head is here; if the body
    then stalls, header_timeout ends the connection without a second
    answer: a 408 after the 405 would be one request answered twice, and
    a client would take it for the answer to its next request."""
    d = daemon_factory(header_timeout=1, keepalive_timeout=30)
    with RawClient(d.port, timeout=5) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
               b"\r\nhello")             # 5 of the 10 bytes, never the rest
        r = c.read_response()
        assert r.status == 405, r
        closed, extra, elapsed = c.wait_closed(patience(4))
        assert closed, "a stalled body kept for %.1f s" % elapsed
        assert extra == b"", "a second answer to one request: %r" % (
            extra[:200],)
    assert redis_server.visits() == 0


def test_lingering_close_is_bounded(daemon_factory, redis_server):
    """After an answer that ends the connection, the daemon drains the
    client's input for a while (2 s) so that unread bytes do not reset
    the connection under the answer; a client that keeps sending must
    not hold the connection open past that while."""
    d = daemon_factory(header_timeout=30, keepalive_timeout=30)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    try:
        s.sendall(b"GARBAGE\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            assert chunk, "closed before the 400"
            got += chunk
        assert got.startswith(b"HTTP/1.1 400 "), got
        t0 = time.monotonic()
        cut = None
        while time.monotonic() - t0 < 8:
            try:
                s.send(b"x")            # a byte every 0.2 s
            except OSError:
                cut = time.monotonic() - t0
                break
            time.sleep(0.2)
    finally:
        s.close()
    assert cut is not None, "a lingering connection kept for 8 s"
    assert cut < 2 + 1.5, "a lingering connection kept for %.1f s" % cut
    assert redis_server.visits() == 0


def test_slow_body_is_cut(daemon_factory, redis_server):
    d = daemon_factory(header_timeout=2, keepalive_timeout=30)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
                  b"\r\n")
        t0 = time.monotonic()
        closed = False
        for _ in range(20):             # 1 byte / 0.5 s: 10 s at most
            try:
                s.send(b"x")
            except OSError:
                closed = True
                break
            r, _, _ = select.select([s], [], [], 0.5)
            if r:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    closed = True
                    break
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    print("slow body cut after %.2f s" % elapsed)
    assert closed, "a 1 byte / 0.5 s body was kept for %.1f s" % elapsed
    assert elapsed <= 4.0, "slow body cut only after %.2f s" % elapsed
    assert redis_server.visits() == 0


def worker_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_client_that_never_reads_is_bounded_and_cut(daemon_factory,
                                                     redis_server,
                                                     hitcountd_bin):
    """A client pipelines requests without end and never reads: the
    worker must not buffer without bound, must keep serving others, and
    drops the client header_timeout after it stopped making progress."""
    d = daemon_factory(workers=1, header_timeout=2, keepalive_timeout=30)
    (worker,) = d.wait_workers(1)
    rss0 = worker_rss_kib(worker)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    chunk = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * 1000
    pushed = 0
    closed_at = None
    stalled_at = None
    t0 = time.monotonic()
    seen = 0
    try:
        while time.monotonic() - t0 < 12:
            try:
                pushed += s.send(chunk)
                stalled_at = None
            except BlockingIOError:
                if stalled_at is None:
                    stalled_at = time.monotonic()
                # others are still served while this client is stuck
                r = get(d.port, timeout=2)
                assert r.status == 200, r
                seen += 1
                time.sleep(0.1)
            except OSError:             # reset / broken pipe: cut
                closed_at = time.monotonic()
                break
    finally:
        rss1 = worker_rss_kib(worker)
        s.close()
    print("never-reading client: %d bytes pushed, cut after %s s of stall, "
          "worker RSS %d -> %d KiB" % (
              pushed, None if closed_at is None or stalled_at is None
              else round(closed_at - stalled_at, 2), rss0, rss1))
    assert closed_at is not None, \
        "a client that never reads was kept for 12 s (%d bytes)" % pushed
    assert stalled_at is not None, "the client never stalled"
    assert closed_at - stalled_at < 2 + 1.5
    if not built_with_sanitizer(hitcountd_bin):   # ASan keeps freed memory
        assert rss1 - rss0 < 16 * 1024, "worker grew by %d KiB" % (
            rss1 - rss0)
    assert seen >= 1
    assert d.workers() == [worker]
    assert redis_server.visits() == seen


# --------------------------------------------------------------------------
# slowhttptest
# --------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft, hard
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return soft, hard


class Prober(threading.Thread):
    """GET / on a fresh connection every `interval` s until stopped."""

    def __init__(self, port, interval=0.1, timeout=1.0):
        super().__init__(daemon=True)
        self.port = port
        self.interval = interval
        self.timeout = timeout
        self.results = []           # (t, latency, status or error)
        self.stop_ev = threading.Event()

    def run(self):
        nxt = time.monotonic()
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                r = get(self.port, timeout=self.timeout)
                res = r.status
            except Exception as exc:        # noqa: B902 - recorded
                res = repr(exc)
            self.results.append((t0, time.monotonic() - t0, res))
            nxt += self.interval
            self.stop_ev.wait(max(0, nxt - time.monotonic()))

    def stop(self):
        self.stop_ev.set()
        self.join(10)


@pytest.mark.parametrize("mode", ["-H", "-B", "-X"])
def test_slowhttptest_keeps_service_available(daemon_factory, redis_server,
                                              tmp_path, mode):
    tool = require_tool("slowhttptest", "slowhttptest")
    old = raise_nofile(8192)
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2500:
            pytest.skip("RLIMIT_NOFILE hard limit too low (%d)" % soft)
        d = daemon_factory(workers=2, max_connections=4096)
        workers = d.wait_workers(2)
        url = "http://127.0.0.1:%d/" % d.port
        duration = 15
        cmd = [tool, mode, "-c", "1000", "-r", "200", "-i", "10",
               "-l", str(duration), "-p", "3", "-u", url]
        if mode == "-X":
            # pipeline 10 requests (its maximum), advertise a tiny
            # window, read slowly
            cmd += ["-k", "10", "-n", "1", "-w", "1", "-y", "64", "-z", "5"]
        out = str(tmp_path / "slowhttptest.out")
        probe = Prober(d.port)
        probe.start()
        time.sleep(0.5)
        t_start = time.monotonic()
        with open(out, "wb") as f:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f,
                                    stderr=subprocess.STDOUT)
        try:
            try:
                proc.wait(duration + 15)
            except subprocess.TimeoutExpired:
                kill_pid(proc.pid)
                proc.wait()
                pytest.fail("slowhttptest did not end within %d s"
                            % (duration + 15))
            ran = time.monotonic() - t_start
        finally:
            if proc.poll() is None:
                kill_pid(proc.pid)
                proc.wait()
            time.sleep(0.5)
            probe.stop()
    finally:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, old)
        except (ValueError, OSError):
            pass

    with open(out, "rb") as f:
        text = ANSI.sub("", f.read().decode("utf-8", "replace"))
    connected = [int(x) for x in re.findall(r"connected:\s+(\d+)", text)]
    errors = [int(x) for x in re.findall(r"error:\s+(\d+)", text)]
    closed = [int(x) for x in re.findall(r"closed:\s+(\d+)", text)]
    res = probe.results
    lat = [l for _, l, _ in res]
    bad = [(round(t - res[0][0], 2), round(l, 3), s) for t, l, s in res
           if s != 200 or l >= 1.0]
    ended = re.findall(r"Exit status:\s*(.*)", text)
    print("slowhttptest %s: ran %.1f s, max connected %s, errors %s, "
          "closed %s, %r; %d probes, max latency %.3f s, mean %.3f s, bad %d"
          % (mode, ran, max(connected or [0]), max(errors or [0]),
             max(closed or [0]), ended[-1:], len(res), max(lat or [0]),
             sum(lat) / max(1, len(lat)), len(bad)))
    assert proc.returncode == 0, text[-3000:]
    if mode == "-H":
        # slow headers: the connections are held until header_timeout
        assert max(connected or [0]) >= 900, \
            "slowhttptest never held its connections:\n%s" % text[-3000:]
    else:
        # slow body / slow read: the daemon answers without waiting for
        # the body, and closes idle or stuck connections; slowhttptest
        # must at least have got through most of its 1000 connections
        assert max(connected or [0]) + max(closed or [0]) >= 500, \
            "slowhttptest did not get its connections:\n%s" % text[-3000:]
    assert max(errors or [0]) < 50, text[-3000:]
    assert len(res) >= (ran - 1) * 5, "too few probes: %d in %.1f s" % (
        len(res), ran)
    assert not bad, "probes failed or slower than 1 s: %r" % (bad[:20],)
    assert d.workers() == workers, "workers changed (crash?)"
    assert get(d.port, "/healthz").status == 200
