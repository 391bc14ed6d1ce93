"""Redis over a Unix socket: redis.socket and unix:// REDIS_URLs (issue
13, items 3 and 2).

redis-server listens on TCP and on a socket in a private directory; the
tests tell the connections apart in CLIENT LIST (flags=U is a socket).
"""

import os
import shutil
import signal
import tempfile

import pytest

from e2e_daemon import render_config, wait_all_workers_ready, wait_log
from e2e_helpers import free_port, patience, wait_for
from e2e_servers import RedisServer
from e2e_http import check_503, get, poll_until_200, visits_from_body
from test_redis_auth import MINIMAL, USER, lock_default_user, set_user


@pytest.fixture
def sock_dir():
    """A short directory for the socket (sun_path holds 107 bytes, too few
    for pytest's tmp_path), that the workers' user can enter."""
    d = tempfile.mkdtemp(prefix="hc-sock-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sock_redis(tmp_path, sock_dir):
    """redis-server on 127.0.0.1:PORT and on SOCK_DIR/redis.sock, which
    the workers (nobody, when the tests run as root) may use.  Not
    started."""
    d = tmp_path / "sock-redis"
    d.mkdir()
    srv = RedisServer(str(d))
    srv.socket = os.path.join(sock_dir, "redis.sock")
    srv.extra = ["--unixsocket", srv.socket, "--unixsocketperm", "777"]
    try:
        yield srv
    finally:
        srv.teardown()


def clients(redis_server):
    """(socket, TCP) connections of clients other than redis-cli."""
    lines = [l for l in redis_server.cli("CLIENT", "LIST").splitlines()
             if "cmd=client|list" not in l]
    unix = [l for l in lines if " flags=U " in l]
    return len(unix), len(lines) - len(unix)


def test_socket_and_reloads_between_tcp_and_socket(bare_daemon_factory,
                                                   sock_redis):
    sock_redis.start()
    # host and port lead nowhere: only the socket can work
    d = bare_daemon_factory(redis={"host": "no-such-host.invalid",
                                   "port": free_port(),
                                   "socket": sock_redis.socket})
    wait_all_workers_ready(d, 2)
    assert "redis: connected to %s" % sock_redis.socket in d.log()
    assert clients(sock_redis) == (2, 0)
    seen = 0
    for _ in range(3):
        seen += 1
        assert visits_from_body(get(d.port).body) == seen

    hups = 0
    for socket in ("", sock_redis.socket, ""):
        mark = len(d.log())
        d.reconfigure(redis={"host": "127.0.0.1", "port": sock_redis.port,
                             "socket": socket})
        os.kill(d.pid, signal.SIGHUP)
        hups += 1
        wait_log(d, "reload succeeded", count=hups)
        wait_all_workers_ready(d, 2, since=mark)
        want = (0, 2) if socket == "" else (2, 0)
        wait_for(lambda: clients(sock_redis) == want, patience(5),
                 what="%d socket and %d TCP connections" % want)
        for _ in range(3):
            seen += 1
            r = get(d.port)
            assert r.status == 200, (r, d.log()[-2000:])
            assert visits_from_body(r.body) == seen
    assert sock_redis.visits() == seen


def test_socket_missing_503_then_recovers(bare_daemon_factory, sock_redis):
    d = bare_daemon_factory(redis={"host": None, "port": None,
                                   "socket": sock_redis.socket,
                                   "timeout_ms": 500})
    check_503(get(d.port, timeout=10))
    wait_log(d, "redis: cannot connect to %s: No such file or directory"
             % sock_redis.socket)
    assert get(d.port, "/healthz").status == 200

    mark = len(d.log())
    sock_redis.start()
    r, _ = poll_until_200(d.port, patience(2))
    assert r.body == b"Page visited 1 times"
    wait_all_workers_ready(d, 2, since=mark)

    # killed: the socket file stays, and refuses; then it is back
    sock_redis.proc.send_signal(signal.SIGKILL)
    sock_redis.proc.wait(10)
    assert os.path.exists(sock_redis.socket)
    wait_for(lambda: get(d.port, timeout=10).status == 503, patience(2),
             what="503 once Redis is gone")
    sock_redis.start()
    r, _ = poll_until_200(d.port, patience(2))
    assert r.body == b"Page visited 1 times"   # --save "": a new count


def test_unix_redis_url(bare_daemon_factory, sock_redis):
    sock_redis.start()
    lock_default_user(sock_redis)
    set_user(sock_redis, "u-pw", MINIMAL + ["+select"])
    url = "unix://%s:u-pw@%s?db=4" % (USER, sock_redis.socket)
    d = bare_daemon_factory(env={"REDIS_URL": url,
                                 "REDIS_HOST": "no-such-host.invalid"},
                            redis={"host": "127.0.0.1",
                                   "port": sock_redis.port})
    for n in (1, 2):
        r = get(d.port, timeout=10)
        assert r.status == 200, (r, d.log()[-2000:])
        assert visits_from_body(r.body) == n
    assert sock_redis.visits(db=4) == 2
    wait_for(lambda: clients(sock_redis) == (2, 0), patience(5),
             what="both workers on the socket")


@pytest.mark.parametrize("redis,env,why", [
    ({"socket": "redis.sock"}, {}, "is not an absolute path"),
    ({"socket": "/" + "s" * 107}, {}, "the path is longer than 107 bytes"),
    ({"socket": "/run/redis.sock", "sentinels": ["127.0.0.1:26379"]}, {},
     "option 'socket' (or a unix:// REDIS_URL) and option 'sentinels'"),
    ({"sentinels": ["127.0.0.1:26379"]},
     {"REDIS_URL": "unix:///run/redis.sock"}, "option 'sentinels'"),
], ids=["relative", "too-long", "sentinels", "url-and-sentinels"])
def test_socket_errors(run_hitcountd, tmp_path, redis, env, why):
    conf = tmp_path / "h.conf"
    conf.write_text(render_config({"redis": redis}))
    r = run_hitcountd("-t", "-f", conf, env=env)
    assert r.returncode == 1 and why in r.stderr, r.stderr


def test_redis_host_overrides_the_socket(run_hitcountd, tmp_path):
    conf = tmp_path / "h.conf"
    conf.write_text('redis {\n    socket = "/run/redis/redis.sock"\n}\n')
    r = run_hitcountd("-T", "-f", conf, env={"REDIS_HOST": "10.1.2.3"})
    assert r.returncode == 0, r.stderr
    assert '    socket = ""' in r.stdout and '"10.1.2.3"' in r.stdout
