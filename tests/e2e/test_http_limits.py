"""The limits on requests and clients: max_header_size (a request line
over it is 414, a head over it 431, answered as soon as the limit is
passed), max_headers (431), each at its exact boundary, with the
configured and the default values; and max_connections, beyond which
clients wait in the listen backlog until a slot is free.

Bodies and their 1 MiB limit are in test_http_bodies.py.
"""

import socket
import time

import pytest

from e2e_helpers import client_sockets, patience, wait_for
from e2e_http import (GET_ROOT, RawClient, expect_rejected, is_close,
                      visits_from_body)


def head_of_length(total, extra_headers=b""):
    """A GET / request head of exactly `total` bytes (padding in X-Pad)."""
    base = (b"GET / HTTP/1.1\r\nHost: t\r\n" + extra_headers +
            b"X-Pad: \r\n\r\n")
    pad = total - len(base)
    assert pad >= 0
    head = (b"GET / HTTP/1.1\r\nHost: t\r\n" + extra_headers +
            b"X-Pad: " + b"p" * pad + b"\r\n\r\n")
    assert len(head) == total
    return head


# --------------------------------------------------------------------------
# the request head
# --------------------------------------------------------------------------

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


def test_small_limits_exact_boundaries(daemon_factory, redis_server):
    d = daemon_factory(max_header_size=1024, max_headers=10)
    seen = 0
    # a head of exactly max_header_size bytes is accepted ...
    with RawClient(d.port) as c:
        c.send(head_of_length(1024))
        r = c.read_response()
        assert r.status == 200, r
        seen += 1
        assert visits_from_body(r.body) == seen
        assert not is_close(r)
    # ... one byte more is 431, and the connection is closed
    expect_rejected(d.port, head_of_length(1025) + GET_ROOT, 431)
    # a request line longer than the limit: 414
    expect_rejected(d.port, b"GET /?" + b"a" * 1100 + b" HTTP/1.1\r\n"
                    b"Host: t\r\n\r\n" + GET_ROOT, 414)
    # exactly max_headers fields is fine, one more is 431
    ten = b"".join(b"X-H%d: v\r\n" % i for i in range(9))        # + Host
    with RawClient(d.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n" + ten + b"\r\n")
        r = c.read_response()
        assert r.status == 200, r
        seen += 1
    eleven = ten + b"X-H9: v\r\n"
    expect_rejected(d.port, b"GET / HTTP/1.1\r\nHost: t\r\n" + eleven +
                    b"\r\n" + GET_ROOT, 431)
    assert redis_server.visits() == seen


@pytest.mark.parametrize("data,status", [
    (b"GET /" + b"a" * 2000, 414),                         # no LF yet
    (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 2000, 431),
], ids=["request-line", "header-field"])
def test_oversized_head_refused_before_it_ends(daemon_factory, redis_server,
                                               data, status):
    """A client streaming an endless head is answered as soon as the limit
    is passed, not at header_timeout and without buffering without end."""
    d = daemon_factory(max_header_size=1024, header_timeout=30)
    t0 = time.monotonic()
    with RawClient(d.port, timeout=5) as c:
        c.send(data)
        r = c.read_response()
        elapsed = time.monotonic() - t0
        assert r.status == status, r
        assert is_close(r)
        closed, _, _ = c.wait_closed(patience(3))
        assert closed
    assert elapsed < 2.0, "answered only after %.1f s" % elapsed
    assert redis_server.visits() == 0


def test_default_limits_boundaries(daemon_factory, redis_server):
    d = daemon_factory()            # max_header_size 8192, max_headers 100
    with RawClient(d.port) as c:
        c.send(head_of_length(8192))
        r = c.read_response()
        assert r.status == 200, r
    expect_rejected(d.port, head_of_length(8193), 431)
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(99))     # + Host
    with RawClient(d.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n" + hdrs + b"\r\n")
        r = c.read_response()
        assert r.status == 200, r
    expect_rejected(d.port, b"GET / HTTP/1.1\r\nHost: t\r\n" + hdrs +
                    b"X-H99: v\r\n\r\n", 431)
    # a request line just under 8 KiB
    with RawClient(d.port) as c:
        c.send(b"GET /?" + b"q" * 8000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
    expect_rejected(d.port, b"GET /?" + b"q" * 8200 + b" HTTP/1.1\r\n"
                    b"Host: t\r\n\r\n", 414)
    assert redis_server.visits() == 3


# --------------------------------------------------------------------------
# max_connections
# --------------------------------------------------------------------------

def test_max_connections_queues_extra_clients(daemon_factory, redis_server):
    d = daemon_factory(workers=1, max_connections=20, header_timeout=30,
                       keepalive_timeout=30)
    (worker,) = d.wait_workers(1)
    seen = 0
    keep = RawClient(d.port, timeout=5)
    idle = []
    extra = None
    try:
        r = keep.request("GET", "/")
        assert r.status == 200
        seen += 1
        for _ in range(19):
            idle.append(socket.create_connection(("127.0.0.1", d.port),
                                                 timeout=5))
        wait_for(lambda: client_sockets(worker, d.port) == 20, patience(3),
                 what="20 connections accepted by the worker")
        # the 21st: connect() succeeds (listen backlog), but is not served
        extra = RawClient(d.port, timeout=5)
        extra.send(GET_ROOT)
        extra.sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            extra._fill()
        assert client_sockets(worker, d.port) == 20
        # the worker still serves the connections it has
        for _ in range(3):
            r = keep.request("GET", "/")
            assert r.status == 200, r
            seen += 1
        assert visits_from_body(r.body) == seen
        # one closes: the waiting client is accepted and answered
        idle.pop().close()
        t0 = time.monotonic()
        extra.sock.settimeout(3)
        r = extra.read_response()
        waited = time.monotonic() - t0
        assert r.status == 200, r
        seen += 1
        assert waited < 1.0, "served %.2f s after a slot was free" % waited
    finally:
        keep.close()
        if extra:
            extra.close()
        for s in idle:
            s.close()
    assert redis_server.visits() == seen
    assert d.workers() == [worker]
