"""Requests that cannot be served: garbage, malformed request lines and
header fields, a missing or invalid Host, request smuggling
(Content-Length with Transfer-Encoding), unknown transfer codings,
versions and expectations.  Each gets its status (400, 417, 501, 505)
with Connection: close, and nothing sent after it on the connection is
answered.

Everything is checked against the real daemon over raw sockets: the status
line, and whether the server closes the connection afterwards (a request
that cannot be framed must end the connection, or the bytes after it would
be taken for the next request: request smuggling).  Every test also checks
that nothing was counted twice: the key in Redis equals the number of 200
answers to GET / that the test saw.
"""

import time

import pytest

from e2e_helpers import patience
from e2e_http import GET_ROOT, RawClient, expect_rejected, get, is_close


# --------------------------------------------------------------------------
# garbage and a missing Host
# --------------------------------------------------------------------------

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


def test_400_has_common_headers(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send(b"this is not http\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        assert int(r.header("Content-Length")) == len(r.body)
        assert r.header("Date") and r.header("Server") == "hitcountd/0.1.0"


# --------------------------------------------------------------------------
# malformed requests (RFC 9112 / RFC 9110)
# --------------------------------------------------------------------------

BAD_400 = {
    "bare-cr-in-header": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
    "bare-cr-in-request-line": b"GET /\r HTTP/1.1\r\nHost: t\r\n\r\n",
    "bare-cr-line-end": b"GET / HTTP/1.1\r\nHost: t\rX-A: b\r\n\r\n",
    "nul-in-header-value": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
    "nul-in-target": b"GET /\x00 HTTP/1.1\r\nHost: t\r\n\r\n",
    "ctl-in-header-value": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n",
    "del-in-header-value": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x7fb\r\n\r\n",
    "obs-fold-space": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  b\r\n\r\n",
    "obs-fold-tab": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n\tb\r\n\r\n",
    "obs-fold-host": b"GET / HTTP/1.1\r\nX-A: a\r\n Host: t\r\n\r\n",
    "bad-char-in-name": b"GET / HTTP/1.1\r\nHo(st: x\r\n\r\n",
    "bad-char-in-name2": b"GET / HTTP/1.1\r\nHost: t\r\nX/A: b\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
    "tab-before-colon": b"GET / HTTP/1.1\r\nHost: t\r\nX-A\t: b\r\n\r\n",
    "empty-name": b"GET / HTTP/1.1\r\nHost: t\r\n: b\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "two-hosts-same": b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
    "http11-no-host": b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "cl-and-te": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "te-and-cl": (b"POST / HTTP/1.1\r\nHost: t\r\n"
                  b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                  b"0\r\n\r\n"),
    "te-in-http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0\r\n\r\n"),
    "two-differing-cl": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                         b"Content-Length: 4\r\n\r\nabcd"),
    "cl-list-differing": (b"POST / HTTP/1.1\r\nHost: t\r\n"
                          b"Content-Length: 3, 4\r\n\r\nabcd"),
    "cl-negative": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    "cl-plus": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc",
    "cl-overflow": (b"POST / HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Length: 99999999999999999999\r\n\r\n"),
    "cl-overflow-2^64": (b"POST / HTTP/1.1\r\nHost: t\r\n"
                         b"Content-Length: 18446744073709551617\r\n\r\n"),
    "cl-hex": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x10\r\n\r\n",
    "cl-empty": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n\r\n",
    "cl-inner-space": (b"POST / HTTP/1.1\r\nHost: t\r\n"
                       b"Content-Length: 1 2\r\n\r\n"),
}


@pytest.mark.parametrize("name", sorted(BAD_400))
def test_malformed_request_400_and_close(daemon_factory, redis_server, name):
    d = daemon_factory()
    # a request pipelined after the bad one must not be answered (and not
    # counted): the bad request makes the rest of the stream meaningless
    expect_rejected(d.port, BAD_400[name] + GET_ROOT, 400)
    assert redis_server.visits() == 0
    # the worker is fine: the next connection is served
    r = get(d.port)
    assert r.status == 200 and r.body == b"Page visited 1 times", r
    assert redis_server.visits() == 1


def test_cl_te_smuggling_is_not_answered(daemon_factory, redis_server):
    """The classic CL.TE smuggle: a front end honouring Content-Length
    would forward the chunked terminator plus a hidden request; we must
    refuse the whole thing and answer nothing of it."""
    d = daemon_factory()
    smuggled = b"GET /?smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    req = (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" % len(body)) + body
    expect_rejected(d.port, req, 400)
    # TE.CL variant: a CL-honouring parser would see a request inside
    req2 = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 4\r\n\r\n%x\r\n" % len(smuggled) + smuggled +
            b"\r\n0\r\n\r\n")
    expect_rejected(d.port, req2, 400)
    assert redis_server.visits() == 0


@pytest.mark.parametrize("te", ["gzip", "chunked, gzip", "identity",
                                "x-unknown"])
def test_unknown_transfer_coding_501(daemon_factory, redis_server, te):
    d = daemon_factory()
    req = (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: %s\r\n\r\n"
           b"xxxx" % te.encode()) + GET_ROOT
    expect_rejected(d.port, req, 501)
    assert redis_server.visits() == 0


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9",
                                     "HTTP/9.9"])
def test_unsupported_version_505(daemon_factory, redis_server, version):
    d = daemon_factory()
    expect_rejected(d.port, ("GET / %s\r\nHost: t\r\n\r\n" % version)
                    .encode() + GET_ROOT, 505)
    assert redis_server.visits() == 0


@pytest.mark.parametrize("host", ["a b", "a/b", "user@host", "h:8x"])
def test_invalid_host_value_400(daemon_factory, redis_server, host):
    """RFC 9112 3.2: a server MUST answer 400 to a request whose Host field
    value is invalid (Host = uri-host [ ":" port ])."""
    d = daemon_factory()
    expect_rejected(d.port, ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
                    .encode() + GET_ROOT, 400)
    assert redis_server.visits() == 0


def test_unknown_expectation_417(daemon_factory, redis_server):
    d = daemon_factory()
    expect_rejected(d.port, b"POST / HTTP/1.1\r\nHost: t\r\n"
                    b"Expect: 200-ok\r\nContent-Length: 3\r\n\r\nabc" +
                    GET_ROOT, 417)
    assert redis_server.visits() == 0


@pytest.mark.parametrize("line,status", [
    (b"GARBAGE\r\n", 400),
    (b"GET  / HTTP/1.1\r\n", 400),
    (b"GET nopath HTTP/1.1\r\n", 400),
    (b"GET / HTTP/1.1 x\r\n", 400),
    (b"GET / HTTP/2.0\r\n", 505),
], ids=["no-target", "two-spaces", "not-a-path", "after-version",
        "version"])
def test_malformed_request_line_refused_before_the_head_ends(
        daemon_factory, redis_server, line, status):
    """A complete line that is not `METHOD SP request-target SP
    HTTP-version` is answered as soon as it has come: waiting for the end
    of the head would only end in a 408 at header_timeout."""
    d = daemon_factory(header_timeout=30)
    t0 = time.monotonic()
    with RawClient(d.port, timeout=5) as c:
        c.send(line + b"Host: t\r\n")          # the head goes on ...
        r = c.read_response()
        elapsed = time.monotonic() - t0
        assert r.status == status, r
        assert is_close(r)
        closed, extra, _ = c.wait_closed(3)
        assert closed and extra == b"", extra
    assert elapsed < 2.0, "answered only after %.1f s" % elapsed
    assert redis_server.visits() == 0


# --------------------------------------------------------------------------
# HEAD: no error answer has a body either
# --------------------------------------------------------------------------

@pytest.mark.parametrize("req,status", [
    (b"HEAD / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"h" * 20000 + b"\r\n\r\n",
     431),
    (b"HEAD /" + b"u" * 20000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    (b"HEAD / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n", 400),
    (b"HEAD nopath HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    (b"HEAD / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    (b"HEAD / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"HEAD / HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\n\r\n", 417),
    (b"HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413),
    (b"HEAD / HTTP/1.1\r\nHost: t\r\n", 408),   # the head never ends
], ids=["431", "414", "400-field", "400-line", "505", "501", "417", "413",
        "408"])
def test_error_answer_to_head_has_no_body(daemon_factory, redis_server, req,
                                          status):
    """RFC 9110 9.3.2: the answer to HEAD has no body, whatever its status
    (tests/INVARIANTS.md I1).  Each of these closes the connection, so
    any byte after the head of the answer is a body that must not be."""
    d = daemon_factory(header_timeout=1)
    with RawClient(d.port, timeout=5) as c:
        c.send(req)
        r = c.read_response(head=True)
        assert r.status == status, r
        assert is_close(r), r
        closed, extra, _ = c.wait_closed(patience(4))
        assert closed, "connection left open after %d" % status
        assert extra == b"", "a body in the %d to HEAD: %r" % (status,
                                                              extra[:200])
    assert redis_server.visits() == 0


def test_404_to_head_has_no_body(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port, timeout=5) as c:
        c.send(b"HEAD /nowhere HTTP/1.1\r\nHost: t\r\n\r\n" + GET_ROOT)
        r = c.read_response(head=True)
        assert r.status == 404, r
        r = c.read_response()           # a body of the 404 would be here
        assert (r.status, r.body) == (200, b"Page visited 1 times"), r
    assert redis_server.visits() == 1
