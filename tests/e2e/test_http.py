"""HTTP contract of GET/HEAD /, /healthz, 404 and 405."""

import datetime
import email.utils
import json

import pytest

from e2e_helpers import patience
from e2e_http import RawClient, SERVER_HEADER, get, http_request

HTML = "text/html; charset=utf-8"


def check_common_headers(r):
    """Every response: Content-Length (exact), Date (now, GMT), Server."""
    assert r.header("Content-Length") is not None, r
    assert int(r.header("Content-Length")) == len(r.body), r
    date = r.header("Date")
    assert date, r
    assert date.endswith(" GMT"), date
    when = email.utils.parsedate_to_datetime(date)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 120, date
    assert r.header("Server") == SERVER_HEADER, r


def test_get_root_counts(daemon_factory, redis_server):
    d = daemon_factory()
    assert redis_server.visits() == 0
    for n in (1, 2, 3):
        r = get(d.port)
        assert r.status == 200, r
        assert r.body == ("Page visited %d times" % n).encode(), r
        assert r.header("Content-Type") == HTML
        assert r.header("Content-Length") == str(len(r.body))
        assert r.header("Cache-Control") == "no-store"
        assert "accept" in r.header("Vary").lower()
        check_common_headers(r)
        assert redis_server.visits() == n


def test_counter_continues_from_existing_value(daemon_factory, redis_server):
    redis_server.cli("SET", "visits", "41")
    d = daemon_factory()
    r = get(d.port)
    assert r.status == 200
    assert r.text == "Page visited 42 times"
    assert redis_server.visits() == 42


@pytest.mark.parametrize("path", ["/?a=1", "/?", "/?x=1&y=%20z"])
def test_query_string_is_ignored(daemon_factory, redis_server, path):
    d = daemon_factory()
    r = get(d.port, path)
    assert r.status == 200, r
    assert r.text == "Page visited 1 times"
    assert redis_server.visits() == 1


JSON_ACCEPTS = [
    "application/json",
    "application/json; charset=utf-8",
    "text/html;q=0.5, application/json",
    "application/json;q=0.9, text/html;q=0.8",
    "application/json, */*;q=0.1",
]
HTML_ACCEPTS = [
    None,
    "text/html",
    "*/*",
    "application/json;q=0.5, text/html",
    "application/json, text/html",       # equal q: JSON is not preferred
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
]


@pytest.mark.parametrize("accept", JSON_ACCEPTS)
def test_json_when_preferred(daemon_factory, redis_server, accept):
    d = daemon_factory()
    for n in (1, 2):
        r = get(d.port, headers={"Accept": accept})
        assert r.status == 200, r
        ctype = r.header("Content-Type")
        assert ctype.split(";")[0].strip() == "application/json", ctype
        assert json.loads(r.body.decode("utf-8")) == {"visits": n}
        assert r.body == ('{"visits": %d}' % n).encode()
        assert "accept" in r.header("Vary").lower()
        check_common_headers(r)
    assert redis_server.visits() == 2


@pytest.mark.parametrize("accept", HTML_ACCEPTS)
def test_html_unless_json_preferred(daemon_factory, redis_server, accept):
    d = daemon_factory()
    headers = {"Accept": accept} if accept is not None else {}
    r = get(d.port, headers=headers)
    assert r.status == 200, r
    assert r.header("Content-Type") == HTML
    assert r.text == "Page visited 1 times"
    assert redis_server.visits() == 1


def test_head_root(daemon_factory, redis_server):
    d = daemon_factory()
    # key absent: the GET would answer 1
    r = http_request(d.port, "HEAD", "/")
    assert r.status == 200, r
    assert r.body == b""
    assert r.header("Content-Type") == HTML
    assert int(r.header("Content-Length")) == len("Page visited 1 times")
    assert r.header("Date") and r.header("Server") == SERVER_HEADER
    assert redis_server.visits() == 0

    for _ in range(9):
        assert get(d.port).status == 200
    assert redis_server.visits() == 9
    r = http_request(d.port, "HEAD", "/")
    assert r.status == 200, r
    expected_next = b"Page visited 10 times"
    assert int(r.header("Content-Length")) == len(expected_next)
    assert redis_server.visits() == 9, "HEAD must not increment the counter"
    g = get(d.port)
    assert g.body == expected_next
    assert int(g.header("Content-Length")) == len(g.body)

    # JSON variant: same headers as the JSON GET
    r = http_request(d.port, "HEAD", "/", headers={"Accept": "application/json"})
    assert r.status == 200
    assert r.header("Content-Type").split(";")[0] == "application/json"
    assert int(r.header("Content-Length")) == len(b'{"visits": 11}')
    assert redis_server.visits() == 10


def test_head_sends_no_body_on_keepalive_connection(daemon_factory,
                                                    redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        h = c.request("HEAD", "/")
        assert h.status == 200
        # a body after the HEAD headers would corrupt the next response
        g = c.request("GET", "/")
        assert g.status == 200, g
        assert g.body == b"Page visited 1 times"
        assert int(h.header("Content-Length")) == len(g.body)
        h = c.request("HEAD", "/healthz")
        assert h.status == 200
        assert int(h.header("Content-Length")) == 3
        g = c.request("GET", "/healthz")
        assert g.body == b"ok\n"
    assert redis_server.visits() == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH",
                                    "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/healthz"])
def test_other_methods_405(daemon_factory, redis_server, method, path):
    d = daemon_factory()
    assert get(d.port).status == 200
    body = b"a=1" if method in ("POST", "PUT", "PATCH") else None
    r = http_request(d.port, method, path, body=body)
    assert r.status == 405, r
    allow = r.header("Allow")
    assert allow is not None, r
    assert allow.replace(" ", "") == "GET,HEAD", allow
    check_common_headers(r)
    assert redis_server.visits() == 1, "405 must not count"


def test_405_with_body_keeps_stream_in_sync(daemon_factory, redis_server):
    d = daemon_factory()
    with RawClient(d.port) as c:
        c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 18\r\n"
               "Content-Type: text/plain\r\n\r\nGET /nope HTTP/1.1")
        r = c.read_response()
        assert r.status == 405, r
        if (r.header("Connection") or "").lower() == "close":
            closed, extra, _ = c.wait_closed(patience(3))
            assert closed and extra == b""
        else:
            # the request body must not have been taken for a request
            g = c.request("GET", "/")
            assert g.status == 200, g
            assert g.body == b"Page visited 1 times"
    assert redis_server.visits() <= 1


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/favicon.ico", "/nope", "/index.html",
                                  "/healthz/x", "/visits"])
def test_unknown_path_404(daemon_factory, redis_server, method, path):
    d = daemon_factory()
    assert get(d.port).status == 200
    r = http_request(d.port, method, path)
    assert r.status == 404, r
    assert r.header("Content-Length") is not None
    assert r.header("Server") == SERVER_HEADER and r.header("Date")
    if method == "GET":
        check_common_headers(r)
    assert redis_server.visits() == 1, "404 must not count"


def test_healthz(daemon_factory, redis_server):
    d = daemon_factory()
    r = get(d.port, "/healthz")
    assert r.status == 200
    assert r.body == b"ok\n"
    assert r.header("Content-Type").startswith("text/plain")
    check_common_headers(r)
    assert redis_server.visits() == 0


def test_healthz_ok_when_redis_is_stopped(daemon_factory, redis_server):
    d = daemon_factory()
    redis_server.stop()
    for _ in range(4):          # new connections: both workers are asked
        r = get(d.port, "/healthz", timeout=5)
        assert r.status == 200, r
        assert r.body == b"ok\n"
    r = http_request(d.port, "HEAD", "/healthz", timeout=5)
    assert r.status == 200
