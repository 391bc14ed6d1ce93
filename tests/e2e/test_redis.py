"""Redis outages, reconnection, environment overrides, key/db/password."""

import re
import time

from e2e_helpers import free_port, patience, wait_for
from e2e_http import get, http_request, visits_from_body
from e2e_daemon import wait_all_workers_ready

UNAVAILABLE = b"Redis is unavailable\n"


def check_503(r):
    assert r.status == 503, r
    assert r.header("Retry-After") == "1", r
    assert r.header("Content-Type") == "text/plain; charset=utf-8", r
    assert r.body == UNAVAILABLE, r
    assert int(r.header("Content-Length")) == len(r.body)
    assert r.header("Date") and r.header("Server") == "hitcountd/0.1.0"


def poll_until_200(port, timeout):
    """GET / on fresh connections until a 200; returns (reply, n_non200)."""
    deadline = time.monotonic() + timeout
    others = 0
    while True:
        try:
            r = get(port, timeout=5)
            if r.status == 200:
                return r, others
            assert r.status == 503, r
        except OSError:
            pass
        others += 1
        if time.monotonic() > deadline:
            raise AssertionError("no 200 within %.1f s" % timeout)
        time.sleep(0.05)


def test_redis_down_503_then_recovers(daemon_factory, redis_server):
    timeout_ms = 1000
    d = daemon_factory(redis={"timeout_ms": timeout_ms})
    for n in (1, 2, 3):
        assert get(d.port).body == ("Page visited %d times" % n).encode()

    redis_server.stop()          # SHUTDOWN SAVE: data comes back on start()
    for _ in range(6):           # fresh connections: both workers answer
        t0 = time.monotonic()
        r = get(d.port, timeout=15)
        elapsed = time.monotonic() - t0
        check_503(r)
        assert elapsed < timeout_ms / 1000.0 + 2.0, \
            "503 took %.2f s (timeout_ms=%d)" % (elapsed, timeout_ms)
    h = http_request(d.port, "HEAD", "/", timeout=15)
    assert h.status == 503 and h.body == b""
    assert h.header("Retry-After") == "1"
    assert get(d.port, "/healthz").status == 200

    mark = len(d.log())
    redis_server.start()
    t0 = time.monotonic()
    r, _ = poll_until_200(d.port, 2.5)
    assert time.monotonic() - t0 <= 2.5
    # the counter continues where it was; 503s counted nothing
    assert r.body == b"Page visited 4 times", r
    # both workers recover (each logs its new connection); then 8 fresh
    # connections in a row are all 200
    wait_all_workers_ready(d, 2, timeout=3, since=mark)
    expect = 5
    for _ in range(8):
        r = get(d.port, timeout=5)
        assert r.status == 200, (r, d.log()[-3000:])
        assert visits_from_body(r.body) == expect, r
        expect += 1
    assert redis_server.visits() == expect - 1


def test_redis_absent_at_start(daemon_factory, redis_server):
    redis_server.stop(persist=False)
    d = daemon_factory()                  # /healthz answers without Redis
    for _ in range(3):
        check_503(get(d.port, timeout=15))
    wait_for(lambda: re.search(r"hitcountd\[\d+\]: warning: ", d.log()), 5,
             what="a warning about the Redis connection in the log")

    redis_server.start()
    r, _ = poll_until_200(d.port, patience(3))
    assert r.body == b"Page visited 1 times"
    assert redis_server.visits() == 1


def test_redis_slower_than_timeout_503(daemon_factory, redis_server):
    d = daemon_factory(redis={"timeout_ms": 300})
    assert get(d.port).body == b"Page visited 1 times"
    redis_server.freeze()                 # SIGSTOP: nothing answers
    n503 = 0
    try:
        for _ in range(3):
            t0 = time.monotonic()
            r = get(d.port, timeout=15)
            elapsed = time.monotonic() - t0
            check_503(r)
            n503 += 1
            assert elapsed < 0.3 + 2.0, "503 took %.2f s" % elapsed
    finally:
        redis_server.thaw()
    r, others = poll_until_200(d.port, patience(3))
    n = visits_from_body(r.body)
    # a timed-out INCR may still have been executed, but never twice
    assert 2 <= n <= 2 + n503 + others, (n, n503, others)
    wait_for(lambda: redis_server.visits() == n, patience(2),
             what="redis value == last answer %d" % n)


def test_env_overrides_config(daemon_factory, redis_server):
    wrong = free_port()
    # control: with the config alone Redis is not reachable
    d0 = daemon_factory(redis={"port": wrong})
    check_503(get(d0.port, timeout=15))

    d = daemon_factory(redis={"port": wrong},
                       env={"REDIS_PORT": redis_server.port})
    assert get(d.port).body == b"Page visited 1 times"
    assert get(d.port).body == b"Page visited 2 times"
    assert redis_server.visits() == 2


def test_env_host_and_port_override_config(daemon_factory, redis_server):
    d = daemon_factory(redis={"host": "no-such-host.invalid",
                              "port": free_port()},
                       env={"REDIS_HOST": "127.0.0.1",
                            "REDIS_PORT": redis_server.port})
    assert get(d.port).body == b"Page visited 1 times"
    assert redis_server.visits() == 1


def test_env_docker_link_form(daemon_factory, redis_server):
    d = daemon_factory(redis={"host": "no-such-host.invalid",
                              "port": free_port()},
                       env={"REDIS_PORT": "tcp://127.0.0.1:%d"
                            % redis_server.port})
    assert get(d.port).body == b"Page visited 1 times"
    assert redis_server.visits() == 1


def test_key_and_db(daemon_factory, redis_server):
    d = daemon_factory(redis={"key": "hits", "db": 3})
    assert get(d.port).body == b"Page visited 1 times"
    assert get(d.port).body == b"Page visited 2 times"
    assert redis_server.visits("hits", db=3) == 2
    assert redis_server.visits("visits", db=3) == 0
    assert redis_server.visits("hits", db=0) == 0
    assert redis_server.visits("visits", db=0) == 0


def test_password(daemon_factory, redis_server):
    redis_server.cli("CONFIG", "SET", "requirepass", "s3cret")
    redis_server.password = "s3cret"
    good = daemon_factory(redis={"password": "s3cret"})
    assert get(good.port).body == b"Page visited 1 times"
    assert redis_server.visits() == 1
    bad = daemon_factory(redis={"password": "wrong"})
    check_503(get(bad.port, timeout=15))
    none = daemon_factory()
    check_503(get(none.port, timeout=15))
    assert redis_server.visits() == 1


def test_unresolvable_redis_host_503(daemon_factory, redis_server):
    d = daemon_factory(redis={"host": "no-such-host.invalid",
                              "timeout_ms": 500})
    for _ in range(3):
        t0 = time.monotonic()
        check_503(get(d.port, timeout=15))
        assert time.monotonic() - t0 < 0.5 + 2.0
    assert get(d.port, "/healthz").status == 200


def test_non_integer_value_is_an_error_not_a_count(daemon_factory,
                                                  redis_server):
    d = daemon_factory()
    redis_server.cli("SET", "visits", "not-a-number")
    r = get(d.port, timeout=10)
    assert r.status in (500, 503), r
    assert b"Page visited" not in r.body
    assert redis_server.cli("GET", "visits") == "not-a-number"
    # the daemon keeps working once the value is fixed
    redis_server.cli("SET", "visits", "7")
    r, _ = poll_until_200(d.port, patience(3))
    assert r.body == b"Page visited 8 times"


def test_reconnect_pause_is_capped_after_long_outage(daemon_factory,
                                                     redis_server):
    d = daemon_factory(redis={"timeout_ms": 500})
    assert get(d.port).body == b"Page visited 1 times"
    redis_server.stop()
    # a 3 s outage: the reconnect pause grows, but stays <= 500 ms
    end = time.monotonic() + 3
    n = 0
    while time.monotonic() < end:
        check_503(get(d.port, timeout=10))
        n += 1
        time.sleep(0.1)
    assert n >= 5
    mark = len(d.log())
    redis_server.start()
    t0 = time.monotonic()
    r, _ = poll_until_200(d.port, 2.0)
    assert r.body == b"Page visited 2 times"
    assert time.monotonic() - t0 <= 2.0
    # every worker is back soon after (each logs its new connection);
    # then 8 fresh connections in a row are all 200
    wait_all_workers_ready(d, 2, timeout=3, since=mark)
    expect = 3
    for _ in range(8):
        r = get(d.port, timeout=5)
        assert r.status == 200, (r, d.log()[-3000:])
        assert visits_from_body(r.body) == expect
        expect += 1
    assert redis_server.visits() == expect - 1
