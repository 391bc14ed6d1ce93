"""Connection handling: keep-alive, HTTP/1.0, Connection: close, pipelining,
malformed requests, timeouts and header limits."""

import http.client
import time

import pytest

from e2e_helpers import patience
from e2e_http import RawClient, visits_from_body


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


@pytest.mark.parametrize("garbage", [
    b"this is not http\r\n\r\n",
    b"\x00\x01\x02\x03garbage\r\n\r\n",
    b"GET / FOO/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
])
def test_garbage_request_400_and_close(daemon_factory, redis_server, garbage):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send(garbage)
        r = c.read_response()
        assert r.status == 400, r
        assert (r.header("Connection") or "").lower() == "close", r
        assert r.header("Content-Length") is not None
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed, "connection not closed after 400"
        assert extra == b""
    assert redis_server.visits() == 0


def test_http11_without_host_400(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        r = c.request("GET", "/", host=None)
        assert r.status == 400, r
    assert redis_server.visits() == 0
    # HTTP/1.0 needs no Host
    with RawClient(d.port) as c:
        r = c.request("GET", "/", version="HTTP/1.0", host=None)
        assert r.status == 200
    assert redis_server.visits() == 1


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
        if extra:
            assert extra.startswith(b"HTTP/1.1 408") or \
                extra.startswith(b"HTTP/1.0 408") or \
                extra.startswith(b"HTTP/1.1 400"), extra
    assert redis_server.visits() == 0


def test_request_line_too_long_414(daemon_factory, redis_server):
    d = daemon_factory(max_header_size=1024)
    with RawClient(d.port) as c:
        c.send("GET /?" + "a" * 1100 + " HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_response()
        assert r.status == 414, r
    assert redis_server.visits() == 0


def test_headers_too_large_431(daemon_factory, redis_server):
    d = daemon_factory(max_header_size=1024)
    with RawClient(d.port) as c:
        c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + "b" * 1100 +
               "\r\n\r\n")
        r = c.read_response()
        assert r.status == 431, r
    assert redis_server.visits() == 0
    # just under the limit is fine
    with RawClient(d.port) as c:
        r = c.request("GET", "/", headers={"X-Big": "b" * 900})
        assert r.status == 200, r


def test_too_many_headers_431(daemon_factory, redis_server):
    d = daemon_factory(max_headers=10)
    with RawClient(d.port) as c:
        hdrs = {"X-H%d" % i: "v" for i in range(9)}     # + Host = 10
        r = c.request("GET", "/", headers=hdrs)
        assert r.status == 200, r
    with RawClient(d.port) as c:
        hdrs = {"X-H%d" % i: "v" for i in range(10)}    # + Host = 11
        r = c.request("GET", "/", headers=hdrs)
        assert r.status == 431, r
    assert redis_server.visits() == 1


def test_default_header_size_limit(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        r = c.request("GET", "/", headers={"X-Ok": "o" * 6000})
        assert r.status == 200, r
    with RawClient(d.port) as c:
        c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + "b" * 9000 +
               "\r\n\r\n")
        r = c.read_response()
        assert r.status == 431, r
    assert redis_server.visits() == 1


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


@pytest.mark.parametrize("size,status", [(1100, 414), (0, 431)])
def test_limit_responses_have_common_headers(daemon_factory, redis_server,
                                             size, status):
    d = daemon_factory(max_header_size=1024)
    with RawClient(d.port) as c:
        if size:
            c.send("GET /?" + "a" * size + " HTTP/1.1\r\nHost: t\r\n\r\n")
        else:
            c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + "b" * 1100 +
                   "\r\n\r\n")
        r = c.read_response()
        assert r.status == status
        assert int(r.header("Content-Length")) == len(r.body)
        assert r.header("Date") and r.header("Server") == "hitcountd/0.1.0"


def test_400_has_common_headers(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send(b"this is not http\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        assert int(r.header("Content-Length")) == len(r.body)
        assert r.header("Date") and r.header("Server") == "hitcountd/0.1.0"
