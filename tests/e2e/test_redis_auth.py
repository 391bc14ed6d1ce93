"""Authentication to Redis as Redis 6 and later do it (issue 13, item 1).

An ACL user (redis.username) with only the rights hitcountd needs, the
password read from redis.password_file at start and on reload, a wrong
password (503, a log line that says why, and no reconnect storm), the
secret kept out of -T, the log and /metrics, and the same for the
sentinels.  Every test runs against a real redis-server whose default
user needs a password, so a connection that failed AUTH can do nothing.
"""

import os
import re
import signal
import time

import pytest

from e2e_daemon import wait_all_workers_ready, wait_log
from e2e_helpers import patience
from e2e_http import (check_503, get, http_request, poll_until_200,
                      visits_from_body)
from e2e_servers import MASTER_NAME, SentinelNode

ADMIN_PW = "admin-pw"
USER = "hitcountd"
# The rights hitcountd(8) needs for the default key, as hitcountd.conf(5)
# documents them ("Redis ACL").
MINIMAL = ["~visits", "+incrby", "+get"]


def lock_default_user(redis_server):
    """Give the default user a password: a connection that failed AUTH
    (or sent none) is refused everything."""
    redis_server.cli("ACL", "SETUSER", "default", "resetpass", ">" + ADMIN_PW)
    redis_server.password = ADMIN_PW


def set_user(redis_server, password, rules=MINIMAL, name=USER):
    redis_server.cli("ACL", "SETUSER", name, "reset", "on", ">" + password,
                     *rules)


def write_secret(path, text, mode=0o600):
    """A password file with mode, written in place (same inode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def connections_received(redis_server):
    out = redis_server.cli("INFO", "stats")
    m = re.search(r"^total_connections_received:(\d+)", out, re.M)
    assert m, out
    return int(m.group(1))


def user_clients(redis_server, name=USER):
    """CLIENT LIST lines of the connections authenticated as name."""
    return [l for l in redis_server.cli("CLIENT", "LIST").splitlines()
            if " user=%s " % name in l]


def test_acl_user_with_only_what_hitcountd_needs(daemon_factory,
                                                 redis_server, tmp_path):
    lock_default_user(redis_server)
    # db 2 needs SELECT: the documented minimal ACL plus +select
    set_user(redis_server, "u-pw", MINIMAL + ["+select"])
    pw = write_secret(str(tmp_path / "redis.pass"), "u-pw\n")
    d = daemon_factory(redis={"username": USER, "password_file": pw,
                              "db": 2})
    wait_all_workers_ready(d, 2)
    for n in (1, 2, 3):
        r = get(d.port)
        assert r.status == 200, (r, d.log()[-2000:])
        assert visits_from_body(r.body) == n
    h = http_request(d.port, "HEAD", "/")         # GET, for HEAD
    assert h.status == 200, h
    assert redis_server.visits(db=2) == 3
    # both workers are authenticated as the ACL user, which was refused
    # nothing (ACL LOG lists every refusal)
    assert len(user_clients(redis_server)) == 2, \
        redis_server.cli("CLIENT", "LIST")
    assert redis_server.cli("ACL", "LOG") == ""
    # the user really is that narrow: another key, another command: no
    for cmd in (("SET", "visits", "1"), ("INCR", "other"), ("KEYS", "*")):
        assert redis_server.cli("ACL", "DRYRUN", USER, *cmd) != "OK", cmd

    # without +select, db 2 cannot be used: 503, and the log says why
    set_user(redis_server, "u-pw")
    redis_server.cli("CLIENT", "KILL", "USER", USER)
    check_503(get(d.port, timeout=10))
    wait_log(d, "redis: connection setup failed: SELECT 2 at 127.0.0.1:%d: "
             "NOPERM" % redis_server.port)
    assert redis_server.visits(db=2) == 3


@pytest.mark.parametrize("as_user", [False, True],
                         ids=["default-user", "acl-user"])
def test_wrong_password_503_says_why_without_reconnect_storm(
        daemon_factory, redis_server, tmp_path, as_user):
    lock_default_user(redis_server)
    if as_user:
        set_user(redis_server, "right-pw")
        pw = write_secret(str(tmp_path / "redis.pass"), "wrong-pw")
        redis = {"username": USER, "password_file": pw}
        who = USER
    else:
        redis = {"password": "wrong-pw"}
        who = "default"
    workers = 2
    d = daemon_factory(workers=workers, redis=dict(redis, timeout_ms=500))
    wait_log(d, "warning: redis: connection setup failed", count=workers)

    # Over a window, each worker tries again after pauses of 50, 100, 200
    # and 400 ms, then every 500 ms, as for a server that is down (before,
    # every 50 ms: 91 connections in this window).  The second INFO call
    # is one connection too.
    window = 2.5
    before = connections_received(redis_server)
    end = time.monotonic() + window
    n = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        check_503(get(d.port, timeout=10))
        assert time.monotonic() - t0 < 0.5 + 1.0
        n += 1
        time.sleep(0.1)
    attempts = connections_received(redis_server) - before - 1
    bound = workers * (window / 0.5 + 4)
    print("%d connection attempts in %.1f s" % (attempts, window))
    assert 1 <= attempts <= bound, \
        "%d connections in %.1f s (at most %d allowed)" % (
            attempts, window, bound)
    # the reason is given once per worker, not once per attempt
    why = ("warning: redis: connection setup failed: AUTH as user '%s' at "
           "127.0.0.1:%d: WRONGPASS" % (who, redis_server.port))
    assert d.log().count(why) == workers, d.log()[-3000:]
    assert "wrong-pw" not in d.log()

    # the password becomes right on the server: served again at once
    redis_server.cli("ACL", "SETUSER", who, ">wrong-pw")
    r, _ = poll_until_200(d.port, patience(2))
    assert r.body == b"Page visited 1 times"


def test_password_file_at_start_and_reload_secret_never_shown(
        daemon_factory, redis_server, tmp_path, run_hitcountd):
    lock_default_user(redis_server)
    set_user(redis_server, "first-Secret")
    pw = write_secret(str(tmp_path / "redis.pass"), "first-Secret\n")
    d = daemon_factory(log_level="debug",
                       redis={"username": USER, "password_file": pw})
    wait_all_workers_ready(d, 2)
    assert get(d.port).body == b"Page visited 1 times"
    assert "can be read by" not in d.log()

    # rotate: the server takes only the new password, the file says it
    # (readable by its group now: a warning), and a reload reads it
    redis_server.cli("ACL", "SETUSER", USER, "resetpass", ">second-Secret")
    write_secret(pw, "second-Secret\n", mode=0o640)
    mark = len(d.log())
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    wait_log(d, "option 'password_file': %s can be read by its group "
             "(mode 0640)" % pw)
    wait_all_workers_ready(d, 2, since=mark)
    assert len(user_clients(redis_server)) == 2
    for n in (2, 3, 4):
        assert get(d.port).body == ("Page visited %d times" % n).encode()

    # the secrets are in neither the log (at debug level), nor /metrics,
    # nor -T, nor -t
    metrics = get(d.port, "/metrics").text
    t = run_hitcountd("-T", "-f", d.conf)
    assert t.returncode == 0, t.stderr
    assert re.search(r'^\s*password = "\*{8}"$', t.stdout, re.M), t.stdout
    assert 'password_file = "%s"' % pw in t.stdout
    c = run_hitcountd("-t", "-f", d.conf)
    assert c.returncode == 0 and "can be read by its group" in c.stderr
    for secret in ("first-Secret", "second-Secret"):
        for what, text in (("log", d.log()), ("/metrics", metrics),
                           ("-T", t.stdout + t.stderr),
                           ("-t", c.stdout + c.stderr)):
            assert secret not in text, "%s shows the password" % what


def test_password_file_errors_and_rules(run_hitcountd, tmp_path):
    conf = str(tmp_path / "h.conf")
    pw = str(tmp_path / "pw")

    def check(redis, want):
        with open(conf, "w") as f:
            f.write("redis {\n%s\n}\n" % "\n".join(
                '    %s = "%s"' % kv for kv in redis.items()))
        r = run_hitcountd("-t", "-f", conf)
        assert r.returncode == 1 and want in r.stderr, (redis, r.stderr)
        assert "t0p" not in r.stderr

    check({"password_file": pw}, "%s: No such file or directory" % pw)
    write_secret(pw, "")
    check({"password_file": pw}, "must hold the password alone")
    write_secret(pw, "t0p\nsecond line\n")
    check({"password_file": pw}, "must hold the password alone")
    check({"password_file": "relative/pw"}, "is not an absolute path")
    check({"password_file": str(tmp_path)}, "is not a regular file")
    write_secret(pw, "t0p")
    check({"password_file": pw, "password": "t0p"},
          "options 'password' and 'password_file' are both set")
    check({"username": USER}, "option 'username' needs a password")
    check({"sentinel_username": USER},
          "option 'sentinel_username' needs a password")
    check({"sentinel_password_file": pw, "sentinel_password": "t0p"},
          "options 'sentinel_password' and 'sentinel_password_file'")


@pytest.fixture
def sentinel(redis_server, tmp_path):
    """One sentinel watching redis_server, with an ACL user of its own that
    may only ask where the primary is; its default user may only PING."""
    lock_default_user(redis_server)
    s = SentinelNode("sentinel", str(tmp_path / "sentinel"),
                     redis_server.port)
    with open(s.conf, "a") as f:
        f.write("sentinel auth-pass %s %s\n"
                "user default on nopass -@all +ping\n"
                "user hc-sentinel on >s-pw -@all "
                "+sentinel|get-master-addr-by-name\n"
                % (MASTER_NAME, ADMIN_PW))
    s.start()
    try:
        yield s
    finally:
        s.teardown()


def test_sentinel_acl_user(bare_daemon_factory, redis_server, sentinel,
                           tmp_path):
    # with sentinels, hitcountd also asks the primary for its ROLE
    set_user(redis_server, "u-pw", MINIMAL + ["+role"])
    spw = write_secret(str(tmp_path / "sentinel.pass"), "s-pw\n")
    redis = {"host": None, "port": None,
             "sentinels": ["127.0.0.1:%d" % sentinel.port],
             "master_name": MASTER_NAME, "username": USER,
             "password": "u-pw", "sentinel_username": "hc-sentinel",
             "sentinel_password_file": spw, "timeout_ms": 500}
    d = bare_daemon_factory(redis=redis)
    r, _ = poll_until_200(d.port, patience(5))
    assert r.body == b"Page visited 1 times"
    wait_all_workers_ready(d, 2)
    assert redis_server.cli("ACL", "LOG") == ""
    assert "s-pw" not in d.log()

    # a wrong sentinel password: 503, and the log says what the sentinel
    # answered (the question, asked as the default user, is refused)
    write_secret(spw, "wrong-s-pw\n")
    bad = bare_daemon_factory(redis=redis)
    check_503(get(bad.port, timeout=10))
    wait_log(bad, "redis: sentinel 127.0.0.1:%d: NOPERM" % sentinel.port)
    assert "wrong-s-pw" not in bad.log()
