"""Request bodies, which the daemon reads and throws away: with
Content-Length or chunked (extensions, trailers, in pieces), after
Expect: 100-continue, up to 1 MiB (more is 413); a broken chunked body
ends the connection.  A body is never taken for the next request on the
connection: a pipelined GET / after it is answered, and counted, once.
"""

import socket
import time

import pytest

from e2e_helpers import patience
from e2e_http import (ConnectionClosed, GET_ROOT, RawClient, expect_rejected,
                      is_close)


def send_in_pieces(client, data, size, delay):
    for i in range(0, len(data), size):
        client.send(data[i:i + size])
        time.sleep(delay)


# --------------------------------------------------------------------------
# Content-Length and chunked bodies
# --------------------------------------------------------------------------

def test_content_length_body_discarded_then_pipelined_get(daemon_factory,
                                                          redis_server):
    d = daemon_factory()
    # the body looks like a request: it must be skipped, not parsed
    body = b"GET / HTTP/1.1\r\nHost: evil\r\n\r\n"
    with RawClient(d.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body + GET_ROOT)
        r = c.read_response()
        assert r.status == 405, r
        assert not is_close(r), "405 after a framed body closed: %r" % r
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Page visited 1 times"), r
        # a GET with a body (allowed, meaningless) is answered and counted
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
               % len(body) + body + GET_ROOT)
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Page visited 2 times"), r
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Page visited 3 times"), r
        # and nothing else arrives: the bodies were not answered
        c.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            c._fill()
    assert redis_server.visits() == 3


@pytest.mark.parametrize("method,status", [("POST", 405), ("GET", 200)])
def test_one_mib_body_exactly_is_skipped(daemon_factory, redis_server,
                                         method, status):
    """1 MiB is the largest body read and thrown away.  GET / with a body
    also goes through the path where the body arrives while the request
    waits for Redis."""
    d = daemon_factory()
    body = b"GET / HTTP/1.1\r\nHost: evil\r\n\r\n" * 40000
    body = body[:1024 * 1024]
    with RawClient(d.port, timeout=10) as c:
        c.send(b"%s / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
               % (method.encode(), len(body)) + body + GET_ROOT)
        r = c.read_response()
        assert r.status == status, r
        assert not is_close(r), r
        n = 1 if status == 200 else 0
        if n:
            assert r.body == b"Page visited 1 times"
        r = c.read_response()
        assert (r.status, r.body) == (
            200, b"Page visited %d times" % (n + 1)), r
        c.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            c._fill()
    assert redis_server.visits() == n + 1


CHUNKED_BODY = (
    b"5;ext=1;name=\"quoted; value\"\r\nhello\r\n"
    b"1e\r\nGET / HTTP/1.1\r\nHost: evil\r\n\r\n\r\n"     # 30 bytes of data
    b"A\r\n0123456789\r\n"
    b"0;last=yes\r\n"
    b"X-Trailer: yes\r\n"
    b"X-Other: GET / HTTP/1.1\r\n"
    b"\r\n")


@pytest.mark.parametrize("pieces", [None, 3, 1])
def test_chunked_body_skipped_then_pipelined_get(daemon_factory, redis_server,
                                                 pieces):
    d = daemon_factory()
    req = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n" + CHUNKED_BODY + GET_ROOT)
    with RawClient(d.port) as c:
        if pieces is None:
            c.send(req)
        else:
            send_in_pieces(c, req, pieces, 0.01 if pieces == 1 else 0.02)
        r = c.read_response()
        assert r.status == 405, r
        assert not is_close(r), r
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Page visited 1 times"), r
        # the connection is still in sync: another chunked GET /, then GET
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\ntransfer-encoding: CHUNKED"
               b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + GET_ROOT)
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Page visited 2 times"), r
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Page visited 3 times"), r
    assert redis_server.visits() == 3


def test_content_length_body_in_small_pieces(daemon_factory, redis_server):
    d = daemon_factory()
    body = b"a=1&b=" + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3
    req = (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
           % len(body) + body + GET_ROOT)
    with RawClient(d.port) as c:
        send_in_pieces(c, req, 4, 0.01)
        assert c.read_response().status == 405
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Page visited 1 times"), r
    assert redis_server.visits() == 1


@pytest.mark.parametrize("bad", [
    b"zz\r\n",                          # not a hex size
    b"\r\n",                            # no size at all
    b"3\r\nabcX\r\n",                   # data not followed by CRLF
    b"3\rabc\r\n0\r\n\r\n",             # bare CR after the size
    b"-1\r\n",
    b"fffffffffffffffff\r\n",           # 17 hex digits: overflow
    b"3\nabc\n0\n\n",                   # bare LF ends no chunked line
    b"3\r\nabc\n0\r\n\r\n",               # bare LF after the data
], ids=["not-hex", "no-size", "no-crlf-after-data", "bare-cr", "negative",
        "overflow", "bare-lf", "bare-lf-after-data"])
def test_malformed_chunked_body_closes(daemon_factory, redis_server, bad):
    """The 405 may already be out, but then the connection must end: the
    next request cannot be found in a broken chunked stream."""
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
               b"\r\n\r\n" + bad + GET_ROOT)
        try:
            r = c.read_response()
            assert r.status in (400, 405), r
        except ConnectionClosed:
            pass
        closed, extra, _ = c.wait_closed(patience(3))
        assert closed, "connection kept open after a broken chunked body"
        assert extra == b"", "answered after a broken chunked body: %r" % (
            extra[:300],)
    assert redis_server.visits() == 0


# --------------------------------------------------------------------------
# Expect: 100-continue
# --------------------------------------------------------------------------

@pytest.mark.parametrize("method,final", [("POST", 405), ("GET", 200)])
def test_expect_100_continue(daemon_factory, redis_server, method, final):
    d = daemon_factory()
    body = b"0123456789"
    with RawClient(d.port) as c:
        c.send(b"%s / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % (method.encode(), len(body)))
        # the interim response comes before we send the body
        c.sock.settimeout(3)
        first = c.read_response()
        assert first.status == 100, first
        assert first.version == "HTTP/1.1"
        assert first.reason == "Continue"
        c.send(body)
        r = c.read_response()
        assert r.status == final, r
        assert not is_close(r), r
        if final == 200:
            assert r.body == b"Page visited 1 times"
        # the connection stays usable
        c.send(GET_ROOT)
        r = c.read_response()
        assert r.status == 200, r
        n = 2 if final == 200 else 1
        assert r.body == b"Page visited %d times" % n
    assert redis_server.visits() == n


def test_expect_100_continue_ignored_for_http10(daemon_factory,
                                               redis_server):
    """RFC 9110 10.1.1: a server MUST ignore a 100-continue expectation in
    an HTTP/1.0 request (and must never send a 1xx to an HTTP/1.0
    client, RFC 9110 15.2)."""
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n"
               b"Connection: keep-alive\r\nContent-Length: 3\r\n\r\n")
        c.sock.settimeout(3)
        first = c.read_response()
        assert first.status == 405, \
            "expected the final 405 first, got %r" % (first,)
        c.send(b"abc")
        r = c.request("GET", "/", version="HTTP/1.0", host=None)
        assert r.status == 200 and r.body == b"Page visited 1 times", r
    assert redis_server.visits() == 1


def test_expect_100_continue_chunked(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
        c.sock.settimeout(3)
        assert c.read_response().status == 100
        c.send(b"4\r\nabcd\r\n0\r\n\r\n" + GET_ROOT)
        assert c.read_response().status == 405
        r = c.read_response()
        assert (r.status, r.body) == (200, b"Page visited 1 times"), r
    assert redis_server.visits() == 1


# --------------------------------------------------------------------------
# over 1 MiB
# --------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "GET"])
def test_body_over_one_mib_413_and_close(daemon_factory, redis_server,
                                         method):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send(b"%s / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n"
               % method.encode() + b"y" * 65536)
        r = c.read_response()
        assert r.status == 413, r
        assert is_close(r), r
        closed, extra, _ = c.wait_closed(patience(4))
        assert closed, "connection kept open after 413"
        assert extra == b""
    # one byte over the limit
    expect_rejected(d.port, b"POST / HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Length: 1048577\r\n\r\n", 413)
    assert redis_server.visits() == 0


def test_chunked_body_over_one_mib_closes(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
               b"\r\n\r\n200000\r\n" + b"z" * 4096)
        try:
            r = c.read_response()
            assert r.status in (405, 413), r
        except ConnectionClosed:
            pass
        closed, extra, _ = c.wait_closed(patience(4))
        assert closed, "a 2 MiB chunked body was accepted"
        assert extra == b""
    assert redis_server.visits() == 0
