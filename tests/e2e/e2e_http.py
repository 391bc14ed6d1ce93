"""HTTP as the end-to-end tests speak it to the daemon.

A thin http.client wrapper (get, http_request) for ordinary requests; a
byte-level HTTP/1.x client (RawClient) so that pipelining, HTTP/1.0 and
malformed requests can be sent byte for byte; what the daemon answers to
GET /; and load: client threads (fire_requests, keepalive_load,
LoadClients) and wrk's report.
"""

import http.client
import os
import re
import socket
import threading
import time

from e2e_helpers import patience, wait_for

VERSION = "0.1.0"
SERVER_HEADER = "hitcountd/" + VERSION
BODY_RE = re.compile(r"^Page visited (\d+) times$")
WRK = os.environ.get("WRK_BIN", "/usr/bin/wrk")
# GET / as the load generators send it, one after another on a connection
LOAD_REQUEST = b"GET / HTTP/1.1\r\nHost: load\r\n\r\n"
# GET / as the tests write it on a raw connection
GET_ROOT = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def visits_from_body(body):
    """N from b'Page visited N times'; AssertionError otherwise."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    m = BODY_RE.match(text)
    assert m, "unexpected body %r" % (text,)
    return int(m.group(1))


# --------------------------------------------------------------------------
# HTTP through http.client
# --------------------------------------------------------------------------

class Reply:
    """A parsed HTTP response."""

    def __init__(self, status, reason, headers, body, version=None):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value)
        self.body = body                # bytes
        self.version = version          # e.g. "HTTP/1.1" (raw client only)

    def header(self, name):
        """Value of the first header called name (case-insensitive) or None."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def header_all(self, name):
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Reply %s %s headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:200])


def http_request(port, method="GET", path="/", headers=None, body=None,
                 timeout=10.0):
    """One request on a fresh connection; returns a Reply."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, r.reason, list(r.getheaders()), data)
    finally:
        conn.close()


def get(port, path="/", headers=None, timeout=10.0):
    return http_request(port, "GET", path, headers=headers, timeout=timeout)


def wait_unready(port, n=6):
    """/readyz answers 503 n times in a row within a second (after TERM
    with a shutdown_delay: the signal and the master's DRAIN take a moment
    to reach every worker)."""
    def all_503():
        return all(get(port, "/readyz", timeout=1).status == 503
                   for _ in range(n))
    wait_for(all_503, 1.0, what="/readyz 503 from every worker")


def serves(port, n=3):
    """n GET / on fresh connections, each answered 200 with a count."""
    for _ in range(n):
        r = get(port, timeout=5)
        assert r.status == 200, r
        visits_from_body(r.body)


# --------------------------------------------------------------------------
# raw HTTP/1.x client
# --------------------------------------------------------------------------

class ConnectionClosed(Exception):
    """The peer closed the connection before a complete response."""


class RawClient:
    """A byte-level HTTP/1.x client on one TCP connection."""

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.timeout = timeout

    # -- io ---------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionClosed("connection closed by server "
                                   "(buffered: %r)" % (self.buf[:200],))
        self.buf += chunk

    def read_response(self, head=False):
        """Parse one response from the stream.  head=True: no body expected."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        status_line = lines[0]
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), \
            "bad status line %r" % (status_line,)
        version = parts[0]
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep, "bad header line %r" % (line,)
            headers.append((name.strip(), value.strip()))
        reply = Reply(status, reason, headers, b"", version)
        if head or status in (204, 304) or 100 <= status < 200:
            return reply
        clen = reply.header("Content-Length")
        if clen is None:
            # no length: the body runs until close
            try:
                while True:
                    self._fill()
            except ConnectionClosed:
                pass
            reply.body, self.buf = self.buf, b""
            return reply
        n = int(clen)
        while len(self.buf) < n:
            self._fill()
        reply.body, self.buf = self.buf[:n], self.buf[n:]
        return reply

    def request(self, method="GET", path="/", headers=None,
                version="HTTP/1.1", host="test"):
        """Send one request (Host added for HTTP/1.1 unless host is None)."""
        lines = ["%s %s %s" % (method, path, version)]
        if host is not None:
            lines.append("Host: %s" % host)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.send("\r\n".join(lines) + "\r\n\r\n")
        return self.read_response(head=(method == "HEAD"))

    def wait_closed(self, timeout):
        """Wait until the server closes the connection.

        Returns (closed, extra_bytes, elapsed): closed is True if EOF (or a
        reset) was seen within timeout; extra_bytes is whatever data arrived
        before it.
        """
        start = time.monotonic()
        deadline = start + timeout
        extra = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, extra, time.monotonic() - start
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False, extra, time.monotonic() - start
            except ConnectionResetError:
                return True, extra, time.monotonic() - start
            finally:
                self.sock.settimeout(self.timeout)
            if not chunk:
                return True, extra, time.monotonic() - start
            extra += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# what the daemon answers: rejections, 503
# --------------------------------------------------------------------------

def is_close(reply):
    return (reply.header("Connection") or "").lower() == "close"


def expect_rejected(port, data, status, settle=3.0):
    """Send data on a fresh connection; the answer must be `status` with
    Connection: close, and the server must then close the connection
    without sending anything else (nothing after the bad request is
    answered).  Returns the reply."""
    with RawClient(port, timeout=5) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == status, "expected %d for %r, got %r" % (
            status, data[:300], r)
        closed, extra, _ = c.wait_closed(patience(settle))
    assert is_close(r), "no 'Connection: close' on %r" % (r,)
    assert int(r.header("Content-Length")) == len(r.body), r
    assert r.header("Server") == "hitcountd/0.1.0" and r.header("Date"), r
    assert closed, "connection left open after %d for %r" % (
        status, data[:300])
    assert extra == b"", "bytes after the %d: %r" % (status, extra[:300])
    return r


UNAVAILABLE = b"Redis is unavailable\n"


def check_503(r):
    """r is what GET / gets while Redis cannot count: 503 with
    Retry-After: 1, a body that says so, and the common headers."""
    assert r.status == 503, r
    assert r.header("Retry-After") == "1", r
    assert r.header("Content-Type") == "text/plain; charset=utf-8", r
    assert r.body == UNAVAILABLE, r
    assert int(r.header("Content-Length")) == len(r.body)
    assert r.header("Date") and r.header("Server") == "hitcountd/0.1.0"


def poll_until_200(port, timeout):
    """GET / on fresh connections until a 200; each answer before it
    must be check_503's.  Returns (the 200, how many 503s came first)."""
    deadline = time.monotonic() + timeout
    n503 = 0
    while True:
        r = get(port, timeout=5)
        if r.status == 200:
            return r, n503
        check_503(r)
        n503 += 1
        assert time.monotonic() < deadline, "no 200 within %.1f s" % timeout
        time.sleep(0.05)


def garbage(port):
    """A line that is no HTTP on a fresh connection; returns the answer
    (a 400)."""
    with RawClient(port, timeout=5) as c:
        c.send(b"this is not http at all\r\n\r\n")
        return c.read_response()


# --------------------------------------------------------------------------
# load: client threads, wrk
# --------------------------------------------------------------------------

def fire_requests(port, n, timeout=15):
    """Start n GET / on fresh connections in threads.

    Returns (threads, results): results[i] is a Reply or an exception once
    thread i is done.
    """
    results = [None] * n

    def one(i):
        try:
            results[i] = get(port, "/", timeout=timeout)
        except Exception as exc:      # noqa: B902 - reported by the test
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def join_all(threads, timeout):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "client threads hung"


def keepalive_load(port, n_conn, per_conn, timeout,
                   request=LOAD_REQUEST):
    """n_conn threads, each sending per_conn requests one after another on
    its own persistent connection (all start together), within timeout
    seconds.  Returns (statuses, values, errors, elapsed, hung): counts
    per status, the visit numbers of the 200 answers, what went wrong (a
    dropped connection, or the server closing a keep-alive connection),
    the time taken, and whether any client thread was still running."""
    results = [None] * n_conn
    barrier = threading.Barrier(n_conn)
    deadline = time.monotonic() + timeout

    def client(i):
        statuses, values, errors = {}, [], []
        c = None
        try:
            c = RawClient(port, timeout=30)
            barrier.wait(30)
            done = 0
            while done < per_conn and time.monotonic() < deadline:
                try:
                    c.send(request)
                    r = c.read_response()
                except (OSError, ConnectionClosed) as exc:
                    errors.append(repr(exc))
                    c.close()
                    c = RawClient(port, timeout=30)
                    done += 1
                    continue
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 200:
                    values.append(visits_from_body(r.body))
                if (r.header("Connection") or "").lower() == "close":
                    errors.append("the server closed a keep-alive "
                                  "connection")
                    c.close()
                    c = RawClient(port, timeout=30)
                done += 1
        except Exception as exc:           # noqa: B902 - reported
            errors.append("client %d: %r" % (i, exc))
        finally:
            if c is not None:
                c.close()
            results[i] = (statuses, values, errors)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(n_conn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1, deadline - time.monotonic() + 5))
    elapsed = time.monotonic() - t0
    hung = any(t.is_alive() for t in threads)

    statuses, values, errors = {}, [], []
    for res in results:
        if res is None:
            continue
        st, vals, errs = res
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
        values.extend(vals)
        errors.extend(errs)
    return statuses, values, errors, elapsed, hung


class LoadClients:
    """n client threads, each on a persistent connection (a new one after
    an error), sending GET / with a short pause; every answer is recorded
    as (t_send, t_recv, conn, status, value, error)."""

    def __init__(self, port, n=4, pause=0.005, timeout=3.0, limit=90.0,
                 request=LOAD_REQUEST):
        self.port = port
        self.request = request
        self.n = n
        self.pause = pause
        self.timeout = timeout
        self.stop_ev = threading.Event()
        self.records = [[] for _ in range(n)]
        self.threads = []
        self.hard_deadline = time.monotonic() + limit

    def _run(self, i):
        recs = self.records[i]
        seq = 0
        c = None
        while (not self.stop_ev.is_set()
               and time.monotonic() < self.hard_deadline):
            if c is None:
                try:
                    c = RawClient(self.port, timeout=self.timeout)
                    seq += 1
                except OSError as exc:
                    now = time.monotonic()
                    recs.append((now, now, (i, seq), None, None,
                                 "connect: %r" % (exc,)))
                    time.sleep(0.05)
                    continue
            t0 = time.monotonic()
            try:
                c.send(self.request)
                r = c.read_response()
            except (OSError, ConnectionClosed) as exc:
                recs.append((t0, time.monotonic(), (i, seq), None, None,
                             repr(exc)))
                c.close()
                c = None
                time.sleep(0.02)
                continue
            t1 = time.monotonic()
            value, err = None, None
            if r.status == 200:
                try:
                    value = visits_from_body(r.body)
                except AssertionError as exc:
                    err = str(exc)
            recs.append((t0, t1, (i, seq), r.status, value, err))
            if (r.header("Connection") or "").lower() == "close":
                c.close()
                c = None
            time.sleep(self.pause)
        if c is not None:
            c.close()

    def start(self):
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self.threads), "clients hung"

    def all(self):
        out = []
        for recs in self.records:
            out.extend(list(recs))
        return sorted(out, key=lambda r: r[1])

    def count_200_since(self, t):
        return sum(1 for recs in self.records for r in list(recs)
                   if r[0] >= t and r[3] == 200)


def parse_wrk(out):
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(m?s)", out, re.M)
    assert m, "cannot parse wrk output:\n%s" % out
    stats = {"requests": int(m.group(1)), "non2xx": 0,
             "socket_errors": None}
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        stats["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors:\s*connect (\d+), read (\d+), "
                  r"write (\d+), timeout (\d+)", out)
    if m:
        stats["socket_errors"] = dict(zip(
            ("connect", "read", "write", "timeout"),
            (int(x) for x in m.groups())))
    return stats


def wrk_output(wrk, timeout=40):
    """Wait for a wrk started with subprocess.Popen (stdout piped) and
    return what it printed; killed if it outlives timeout or the caller
    fails first (call it in a finally:)."""
    try:
        out, _ = wrk.communicate(timeout=timeout)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    print(out)
    return out


def assert_wrk_lost_nothing(out, visits, conns, log=""):
    """wrk's report shows no error and no non-2xx answer, and Redis counted
    every completed response: wrk counts only those, and at its end at most
    one request per connection may be in flight (counted by Redis, not by
    wrk), never fewer.  Returns the parsed report."""
    st = parse_wrk(out)
    assert st["non2xx"] == 0, "non-2xx answers:\n%s" % out
    if st["socket_errors"] is not None:
        assert not any(st["socket_errors"].values()), \
            "connection errors: %r\n%s\nlog tail:\n%s" % (
                st["socket_errors"], out, log[-3000:])
    assert st["requests"] > 0, out
    assert st["requests"] <= visits <= st["requests"] + conns, \
        (st["requests"], visits)
    return st
