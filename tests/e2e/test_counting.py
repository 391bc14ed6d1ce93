"""Counting: each GET / is one INCR, exactly, also under concurrent
keep-alive load (the answers are 1..N, each once); and which Redis, key,
database and password the counter uses, from the configuration file and
from the environment (REDIS_HOST, REDIS_PORT, Docker's link form).

What the count looks like over HTTP is in test_http.py; what happens
when Redis cannot count, in test_redis_faults.py.
"""

from e2e_helpers import free_port
from e2e_http import check_503, get, keepalive_load


def test_load_exact_count(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    n_conn, per_conn = 50, 400
    total = n_conn * per_conn
    statuses, values, errors, elapsed, hung = keepalive_load(
        d.port, n_conn, per_conn, 120)
    assert not hung, "load clients hung"
    n200 = statuses.get(200, 0)
    print("load: %d requests in %.1f s, statuses %r, %d errors"
          % (total, elapsed, statuses, len(errors)))
    assert not errors, errors[:10]
    assert statuses == {200: total}, statuses
    assert redis_server.visits() == n200
    # every answer is a distinct INCR result: exactly 1..total
    assert len(values) == total
    assert sorted(values) == list(range(1, total + 1))


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
