"""HTTP connections: the listen addresses (several, IPv6), keep-alive
and HTTP/1.0, Connection: close, pipelined requests answered in order,
and a request that arrives in pieces.

Idle and slow clients are in test_http_timeouts.py, the limits on a
request head in test_http_limits.py.
"""

import http.client
import subprocess
import time

from e2e_helpers import patience, require_tool
from e2e_http import RawClient, get, visits_from_body


# --------------------------------------------------------------------------
# listen addresses
# --------------------------------------------------------------------------

def test_several_listen_addresses(daemon_factory, redis_server):
    from e2e_helpers import free_port
    other = free_port()
    d = daemon_factory(listen=["127.0.0.1:%d" % free_port(),
                               "127.0.0.1:%d" % other])
    # the factory health-checks the first address; ask both
    first = d.port
    assert get(first).body == b"Page visited 1 times"
    assert get(other).body == b"Page visited 2 times"
    assert get(first).body == b"Page visited 3 times"
    assert redis_server.visits() == 3


def test_ipv6_loopback_listen(daemon_factory, redis_server):
    import http.client
    from e2e_helpers import free_port
    p6 = free_port()
    d = daemon_factory(listen=["127.0.0.1:%d" % free_port(),
                               "[::1]:%d" % p6])
    conn = http.client.HTTPConnection("::1", p6, timeout=10)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.status == 200
        assert r.read() == b"Page visited 1 times"
    finally:
        conn.close()
    assert redis_server.visits() == 1
    assert d.proc.poll() is None


# --------------------------------------------------------------------------
# keep-alive, HTTP/1.0, Connection: close
# --------------------------------------------------------------------------

def test_keepalive_several_requests_one_connection(daemon_factory,
                                                   redis_server):
    d = daemon_factory()
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        local = None
        for n in range(1, 6):
            conn.request("GET", "/")
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200
            assert body == ("Page visited %d times" % n).encode()
            assert (r.getheader("Connection") or "").lower() != "close"
            assert conn.sock is not None, "server asked to close"
            name = conn.sock.getsockname()
            if local is None:
                local = name
            assert name == local, "http.client had to reconnect"
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        assert r.read() == b"ok\n"
        assert conn.sock.getsockname() == local
    finally:
        conn.close()
    assert redis_server.visits() == 5


def test_http10_without_keepalive_is_closed(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        r = c.request("GET", "/", version="HTTP/1.0", host=None)
        assert r.status == 200, r
        assert r.body == b"Page visited 1 times"
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed, "HTTP/1.0 connection left open"
        assert extra == b""


def test_http10_keepalive(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        for n in (1, 2):
            r = c.request("GET", "/", version="HTTP/1.0", host=None,
                          headers={"Connection": "keep-alive"})
            assert r.status == 200, r
            assert r.body == ("Page visited %d times" % n).encode()
            assert (r.header("Connection") or "").lower() == "keep-alive", r
        r = c.request("GET", "/", version="HTTP/1.0", host=None)
        assert r.body == b"Page visited 3 times"
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed and extra == b""


def test_connection_close_honoured(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        r = c.request("GET", "/", headers={"Connection": "close"})
        assert r.status == 200
        assert r.body == b"Page visited 1 times"
        assert (r.header("Connection") or "").lower() == "close", r
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed, "server did not close after Connection: close"
        assert extra == b""


def server_end_owned(port, client):
    """Whether a process still holds the server's end of the connection
    whose client socket is client (ss -p names the owner of a socket; a
    socket closed with close() has none left)."""
    ss = require_tool("ss", "iproute2")
    cport = client.sock.getsockname()[1]
    out = subprocess.run([ss, "-Htanp", "sport = :%d and dport = :%d"
                          % (port, cport)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip(), "no server socket for client port %d" % cport
    return "users:" in out


def test_connection_close_without_lingering(daemon_factory, redis_server):
    """Asked to close, with nothing sent after the request, the worker
    closes its socket at once: nothing is left to drain.  With a request
    sent after it, the worker half-closes and drains (lingers) instead, so
    that a reset cannot destroy the answer."""
    d = daemon_factory()
    with RawClient(d.port) as c:
        r = c.request("GET", "/", headers={"Connection": "close"})
        assert r.status == 200
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed and extra == b""
        assert not server_end_owned(d.port, c), "the worker lingers"
    with RawClient(d.port) as c:
        c.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
               "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed and extra == b""
        # draining for up to 2 s, until this client closes its end
        assert server_end_owned(d.port, c), "the worker did not linger"


def test_header_names_and_tokens_case_insensitive(daemon_factory,
                                                  redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send("GET / HTTP/1.1\r\nhOsT: t\r\nACCEPT: application/json\r\n"
               "\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b'{"visits": 1}'
        c.send("GET / HTTP/1.1\r\nHost: t\r\nconnection: CLOSE\r\n\r\n")
        r = c.read_response()
        assert r.body == b"Page visited 2 times"
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed and extra == b""


# --------------------------------------------------------------------------
# pipelining, requests in pieces
# --------------------------------------------------------------------------

def test_pipelined_requests_in_order(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
               "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET / HTTP/1.1\r\nHost: t\r\nAccept: application/json\r\n\r\n")
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        r4 = c.read_response()
        r5 = c.read_response(head=True)
        r6 = c.read_response()
        assert (r1.status, r1.body) == (200, b"Page visited 1 times")
        assert (r2.status, r2.body) == (200, b"Page visited 2 times")
        assert (r3.status, r3.body) == (200, b"ok\n")
        assert r4.status == 404
        assert r5.status == 200
        assert int(r5.header("Content-Length")) == len(b"Page visited 3 times")
        assert (r6.status, r6.body) == (200, b'{"visits": 3}')
    assert redis_server.visits() == 3


def test_pipelined_burst_counts_in_order(daemon_factory, redis_server):
    d = daemon_factory()
    n = 100
    with RawClient(d.port) as c:
        c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n" * (n - 1) +
               "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        values = []
        for _ in range(n):
            r = c.read_response()
            assert r.status == 200, r
            values.append(visits_from_body(r.body))
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed and extra == b""
    assert values == list(range(1, n + 1))
    assert redis_server.visits() == n


def test_pipeline_stops_after_connection_close(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
               "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_response()
        assert r.body == b"Page visited 1 times"
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed
        assert extra == b"", "answered a request after Connection: close"
    assert redis_server.visits() == 1


def test_request_split_across_segments(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        for piece in ("GE", "T / HT", "TP/1.1\r", "\nHost: t", "\r\nAcc",
                      "ept: */*\r\n", "\r", "\n"):
            c.send(piece)
            time.sleep(0.05)
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"Page visited 1 times"
