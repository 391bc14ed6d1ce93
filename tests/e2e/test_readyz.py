"""/readyz: 200 from a worker connected to Redis, 503 (Retry-After: 1)
from one that is not, while /healthz stays 200; readyz_path = "" turns
it off; readyz_redis = false makes it follow only the process.
"""

import time

import pytest

from e2e_http import get
from e2e_daemon import wait_all_workers_down, wait_all_workers_ready


@pytest.mark.parametrize("setting", [{}, {"readyz_redis": True}],
                         ids=["default", "readyz_redis=true"])
def test_readyz_follows_redis(daemon_factory, redis_server, setting):
    d = daemon_factory(workers=2, **setting)
    wait_all_workers_ready(d, 2)
    for _ in range(6):
        r = get(d.port, "/readyz", timeout=5)
        assert r.status == 200, r
        assert r.text.strip() == "ready", r
    assert get(d.port, "/healthz", timeout=5).status == 200

    def all_are(want):
        for _ in range(6):
            assert get(d.port, "/healthz", timeout=2).status == 200
            r = get(d.port, "/readyz", timeout=2)
            if r.status != want:
                return False
            if want == 503:
                assert r.header("Retry-After") == "1", r
        return True

    # every worker notices (its own log line), then all /readyz say so
    mark = len(d.log())
    redis_server.stop()
    t0 = time.monotonic()
    wait_all_workers_down(d, timeout=2.5, since=mark)
    down_after = time.monotonic() - t0
    assert all_are(503)
    mark = len(d.log())
    redis_server.start()
    t1 = time.monotonic()
    wait_all_workers_ready(d, 2, timeout=2.5, since=mark)
    up_after = time.monotonic() - t1
    assert all_are(200)
    assert down_after <= 2.5 and up_after <= 2.5, (down_after, up_after)
    assert get(d.port, "/healthz", timeout=5).status == 200


def test_readyz_path_empty_turns_readyz_off(daemon_factory, redis_server):
    d = daemon_factory(readyz_path="")
    assert get(d.port, "/readyz", timeout=5).status == 404
    assert get(d.port, "/healthz", timeout=5).status == 200
    assert get(d.port, "/metrics", timeout=5).status == 200


def test_readyz_redis_false_is_ready_while_serving(daemon_factory,
                                                   redis_server):
    """Under Kubernetes, a /readyz that follows Redis takes every pod out
    of the Service at once when Redis is down, so clients are refused
    instead of getting the 503 + Retry-After the daemon gives:
    readyz_redis = false makes /readyz mean "this process serves"."""
    d = daemon_factory(workers=2, readyz_redis=False)
    wait_all_workers_ready(d, 2)
    assert get(d.port, "/readyz", timeout=5).status == 200
    mark = len(d.log())
    redis_server.stop()
    wait_all_workers_down(d, timeout=2.5, since=mark)
    # the page says Redis is down, the probe still says the pod serves
    assert get(d.port, "/", timeout=5).status == 503
    for _ in range(6):
        r = get(d.port, "/readyz", timeout=2)
        assert r.status == 200, r
        assert r.text.strip() == "ready", r
