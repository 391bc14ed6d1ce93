"""Hardening (issue 5): hostile or unusual HTTP input, slow clients and
error replies from Redis.

Everything is checked against the real daemon over raw sockets: the status
line, and whether the server closes the connection afterwards (a request
that cannot be framed must end the connection, or the bytes after it would
be taken for the next request: request smuggling).  Every test also checks
that nothing was counted twice: the key in Redis equals the number of 200
answers to GET / that the test saw.

The slow-client tests run slowhttptest (Debian package) with 1000
connections while a probe asks GET / every 100 ms on fresh connections.
"""

import time

import pytest

from e2e_helpers import free_port, patience, wait_for
from e2e_http import RawClient, get, visits_from_body
from e2e_daemon import wait_all_workers_ready

UNAVAILABLE = b"Redis is unavailable\n"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def check_503(r):
    assert r.status == 503, r
    assert r.header("Retry-After") == "1", r
    assert r.body == UNAVAILABLE, r


# --------------------------------------------------------------------------
# C. Redis error replies
# --------------------------------------------------------------------------

def timed_get(port, timeout=10):
    t0 = time.monotonic()
    r = get(port, timeout=timeout)
    return r, time.monotonic() - t0


def poll_until_200(port, timeout):
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


def test_wrongtype_503_workers_survive(daemon_factory, redis_server):
    timeout_ms = 1000
    d = daemon_factory(redis={"timeout_ms": timeout_ms})
    workers = d.wait_workers(2)
    assert get(d.port).body == b"Page visited 1 times"
    redis_server.cli("DEL", "visits")
    redis_server.cli("LPUSH", "visits", "x")
    for _ in range(6):              # fresh connections: both workers
        r, el = timed_get(d.port)
        check_503(r)
        assert el < timeout_ms / 1000.0 + 0.5, "503 took %.2f s" % el
    h = RawClient(d.port)
    try:
        r = h.request("HEAD", "/")
        assert r.status == 503, r
    finally:
        h.close()
    assert d.workers() == workers, "a worker died on WRONGTYPE"
    assert redis_server.cli("LRANGE", "visits", "0", "-1") == "x"
    redis_server.cli("DEL", "visits")
    r, _ = poll_until_200(d.port, patience(2))
    assert r.body == b"Page visited 1 times", r
    assert get(d.port).body == b"Page visited 2 times"
    assert d.workers() == workers
    assert redis_server.visits() == 2


@pytest.mark.parametrize("kind", ["incr-overflow", "oom"])
def test_redis_error_reply_503(daemon_factory, redis_server, kind):
    d = daemon_factory(redis={"timeout_ms": 1000})
    workers = d.wait_workers(2)
    assert get(d.port).body == b"Page visited 1 times"
    if kind == "incr-overflow":
        redis_server.cli("SET", "visits", str(2 ** 63 - 1))
    else:
        redis_server.cli("CONFIG", "SET", "maxmemory", "1")
    try:
        for _ in range(4):
            r, el = timed_get(d.port)
            check_503(r)
            assert el < 1.5, "503 took %.2f s" % el
        assert d.workers() == workers
    finally:
        if kind == "incr-overflow":
            redis_server.cli("SET", "visits", "41")
        else:
            redis_server.cli("CONFIG", "SET", "maxmemory", "0")
    r, _ = poll_until_200(d.port, patience(2))
    expect = 42 if kind == "incr-overflow" else 2
    assert visits_from_body(r.body) == expect, r
    assert redis_server.visits() == expect
    assert d.workers() == workers


def test_readonly_replica_503_then_recovers(daemon_factory, redis_server):
    timeout_ms = 1000
    d = daemon_factory(redis={"timeout_ms": timeout_ms})
    workers = d.wait_workers(2)
    assert get(d.port).body == b"Page visited 1 times"
    nowhere = free_port()
    redis_server.cli("REPLICAOF", "127.0.0.1", nowhere)
    try:
        for _ in range(6):
            r, el = timed_get(d.port)
            check_503(r)
            assert el < timeout_ms / 1000.0 + 0.5, "503 took %.2f s" % el
        assert d.workers() == workers
    finally:
        redis_server.cli("REPLICAOF", "NO", "ONE")
    r, _ = poll_until_200(d.port, patience(2))
    assert r.body == b"Page visited 2 times", r
    assert d.workers() == workers
    assert redis_server.visits() == 2


def test_noauth_503_then_recovers(daemon_factory, redis_server):
    timeout_ms = 1000
    d = daemon_factory(redis={"timeout_ms": timeout_ms})
    workers = d.wait_workers(2)
    seen = 0
    for _ in range(4):
        assert get(d.port).status == 200
        seen += 1
    redis_server.cli("CONFIG", "SET", "requirepass", "x")
    redis_server.password = "x"
    try:
        # the existing connections stay authenticated
        for _ in range(4):
            r = get(d.port)
            assert r.status == 200, r
            seen += 1
        # force reconnects: from then on every INCR gets -NOAUTH
        mark = len(d.log())
        redis_server.cli("CLIENT", "KILL", "TYPE", "normal")
        # each worker has noticed and connected again (unauthenticated)
        wait_all_workers_ready(d, 2, timeout=3, since=mark)
        for _ in range(8):
            r, el = timed_get(d.port)
            check_503(r)
            assert el < timeout_ms / 1000.0 + 0.5, "503 took %.2f s" % el
            time.sleep(0.05)
        assert d.workers() == workers, "a worker died on NOAUTH"
        assert redis_server.visits() == seen
    finally:
        redis_server.cli("CONFIG", "SET", "requirepass", "")
        redis_server.password = None
    r, _ = poll_until_200(d.port, patience(1.5))
    seen += 1
    assert visits_from_body(r.body) == seen
    for _ in range(4):
        r = get(d.port)
        assert r.status == 200, r
        seen += 1
    assert d.workers() == workers
    assert redis_server.visits() == seen
    assert "NOAUTH" in d.log()


def test_client_pause_503_within_timeout(daemon_factory, redis_server):
    timeout_ms = 500
    d = daemon_factory(redis={"timeout_ms": timeout_ms})
    workers = d.wait_workers(2)
    seen = 0
    for _ in range(2):
        assert get(d.port).status == 200
        seen += 1
    pause_ms = 3000
    redis_server.cli("CLIENT", "PAUSE", pause_ms, "ALL")
    paused_at = time.monotonic()
    n503 = 0
    worst = 0.0
    while time.monotonic() - paused_at < pause_ms / 1000.0 - 1.0:
        r, el = timed_get(d.port)
        check_503(r)
        n503 += 1
        worst = max(worst, el)
        assert el <= timeout_ms / 1000.0 + 0.3, \
            "503 after %.3f s (timeout_ms=%d)" % (el, timeout_ms)
    print("CLIENT PAUSE: %d 503s, slowest %.3f s" % (n503, worst))
    assert n503 >= 2
    # wait for the pause to end, then a 200 within a second
    end = paused_at + pause_ms / 1000.0
    while time.monotonic() < end:
        time.sleep(0.02)
    r, more = poll_until_200(d.port, 1.0)
    recovered = time.monotonic() - end
    print("CLIENT PAUSE: 200 %.3f s after the pause ended" % recovered)
    n503 += more
    seen += 1
    n = visits_from_body(r.body)
    # a timed-out INCR may have run after the pause, but never twice
    assert seen <= n <= seen + n503, (n, seen, n503)
    wait_for(lambda: redis_server.visits() == n, patience(2),
             what="redis value == last answer %d" % n)
    assert d.workers() == workers
