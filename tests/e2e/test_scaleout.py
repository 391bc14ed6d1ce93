"""Scale-out behind a load balancer (issue 8): three instances on one
Redis behind a real nginx (Debian's nginx-light) with upstream
keep-alive.  30,000 GET / through nginx: every answer is 200, Redis
counted exactly the 200s, and each instance's own /metrics shows it
served its share.

Following a Redis primary through Redis Sentinel is in test_sentinel.py.
"""

from e2e_http import get, keepalive_load, visits_from_body
from e2e_metrics import scrape
from e2e_servers import Nginx, nginx_binary


def _scrape(port):
    """(200s served, visits counted) from the /metrics of the daemon on
    port."""
    m = scrape(port)
    return m.code(200), m.get("hitcountd_visits_total")


def test_nginx_balances_three_instances(daemon_factory, redis_server,
                                        tmp_path):
    nginx_bin = nginx_binary()
    instances = [daemon_factory(workers=1) for _ in range(3)]
    ports = [d.port for d in instances]
    assert len(set(ports)) == 3, ports
    ng = Nginx(nginx_bin, str(tmp_path / "nginx"), ports)
    try:
        ng.start()
        _nginx_load(ng, instances, redis_server)
    finally:
        ng.teardown()


def _nginx_load(ng, instances, redis_server):
    # one request through nginx first: the path works end to end
    r = get(ng.port, "/", timeout=5)
    assert r.status == 200, r
    visits_from_body(r.body)

    # a scrape may count itself: measure what one scrape adds
    s0 = [_scrape(d.port) for d in instances]
    s1 = [_scrape(d.port) for d in instances]
    self_count = [b[0] - a[0] for a, b in zip(s0, s1)]
    assert all(x in (0, 1) for x in self_count), self_count
    assert all(b[1] == a[1] for a, b in zip(s0, s1))
    redis_before = redis_server.visits()

    n_conn, per_conn = 50, 600
    total = n_conn * per_conn
    statuses, values, errors, elapsed, hung = keepalive_load(
        ng.port, n_conn, per_conn, 60)
    assert not hung, "load clients hung"
    n200 = statuses.get(200, 0)

    s2 = [_scrape(d.port) for d in instances]
    served = [c[0] - b[0] - sc for b, c, sc in zip(s1, s2, self_count)]
    visits = [c[1] - b[1] for b, c in zip(s1, s2)]
    redis_delta = redis_server.visits() - redis_before
    print("nginx -> 3 hitcountd: %d requests in %.1f s (%.0f req/s), "
          "statuses %r, %d client errors; 200s per instance %r "
          "(%s), visits_total deltas %r, redis +%d; a scrape counts %r"
          % (total, elapsed, total / elapsed, statuses, len(errors), served,
             ", ".join("%.1f%%" % (100.0 * s / max(1, n200))
                       for s in served),
             visits, redis_delta, self_count))

    assert not errors, errors[:10]
    assert statuses == {200: total}, statuses
    assert redis_delta == n200
    assert len(set(values)) == len(values), "duplicate visit values"
    assert sum(served) == n200, (served, n200)
    assert sum(visits) == n200, (visits, n200)
    for port, s in zip([d.port for d in instances], served):
        assert s > 0, "instance on port %d served nothing: %r" % (port,
                                                                    served)
        assert s >= 0.10 * n200, \
            "instance on port %d served only %d of %d" % (port, s, n200)
    assert not ng.errors(), ng.errors()[:10]
