"""REDIS_URL and REDIS_PASSWORD, the environment conventions of Redis
clients (issue 13, item 2), and which wins over what.

The unix:// form is tested with the Unix socket, in test_redis_socket.py.
"""

import re
import subprocess
import urllib.parse

import pytest

from e2e_helpers import free_port, wait_for
from e2e_http import check_503, get, visits_from_body
from test_redis_auth import (ADMIN_PW, MINIMAL, USER, lock_default_user,
                             set_user, user_clients, write_secret)

# Every character that must be percent-encoded in a URL's password.
ODD_PASSWORD = "p@ss:w/rd?%#x y"


def settings(text):
    """{"key": "value"} of the redis section printed by -T."""
    sec = text[text.index("redis {"):]
    return dict(re.findall(r'^\s+(\w+) = "?(.*?)"?$', sec, re.M))


def test_redis_url_wins_over_the_file_and_the_other_variables(
        daemon_factory, redis_server, tmp_path, run_hitcountd):
    lock_default_user(redis_server)
    set_user(redis_server, ODD_PASSWORD, MINIMAL + ["+select"])
    wrong = write_secret(str(tmp_path / "wrong.pass"), "wrong")
    url = "redis://%s:%s@127.0.0.1:%d/3" % (
        USER, urllib.parse.quote(ODD_PASSWORD, safe=""), redis_server.port)
    env = {"REDIS_URL": url, "REDIS_HOST": "no-such-host.invalid",
           "REDIS_PORT": free_port(), "REDIS_PASSWORD": "wrong"}
    d = daemon_factory(env=env, redis={"host": "no-such-host.invalid",
                                       "port": free_port(),
                                       "password_file": wrong, "db": 5})
    for n in (1, 2):
        r = get(d.port, timeout=10)
        assert r.status == 200, (r, d.log()[-2000:])
        assert visits_from_body(r.body) == n
    assert redis_server.visits(db=3) == 2
    wait_for(lambda: len(user_clients(redis_server)) == 2, 5,
             what="both workers connected as %s" % USER)

    t = run_hitcountd("-T", "-f", d.conf, env=env)
    assert t.returncode == 0, t.stderr
    got = settings(t.stdout)
    assert (got["host"], got["port"], got["db"], got["username"],
            got["password"], got["password_file"]) == (
        "127.0.0.1", str(redis_server.port), "3", USER, "********", ""), \
        t.stdout
    for secret in (ODD_PASSWORD, urllib.parse.quote(ODD_PASSWORD, safe="")):
        assert secret not in t.stdout + t.stderr
        assert secret not in d.log()


def test_redis_password_over_the_file(daemon_factory, redis_server,
                                      tmp_path):
    lock_default_user(redis_server)
    set_user(redis_server, "u-pw")
    wrong = write_secret(str(tmp_path / "wrong.pass"), "wrong")
    # the default user's password, over the file's password_file
    d = daemon_factory(env={"REDIS_PASSWORD": ADMIN_PW},
                       redis={"password_file": wrong})
    assert get(d.port).body == b"Page visited 1 times"
    # a URL with a user but no password takes REDIS_PASSWORD's
    url = "redis://%s@127.0.0.1:%d" % (USER, redis_server.port)
    u = daemon_factory(env={"REDIS_URL": url, "REDIS_PASSWORD": "u-pw"},
                       redis={"port": free_port(), "password": "wrong"})
    assert get(u.port).body == b"Page visited 2 times"
    # control: the file alone has the wrong password
    f = daemon_factory(redis={"password_file": wrong})
    check_503(get(f.port, timeout=10))


BAD_URLS = [
    ("http://127.0.0.1:6379", "the scheme is not redis://, rediss:// or "
     "unix://"),
    ("redis://", "no host"),
    ("redis://:hunter2@", "no host"),
    ("redis://u:hunter2@host:0", "the port is not a number from 1 to 65535"),
    ("redis://u:hunter2@host:65536", "the port is not a number"),
    ("redis://u:hunter2@host:6379/x", "the database (/DB) is not a number"),
    ("redis://host/2000000", "database 2000000 is out of range"),
    ("redis://host/1?db=2", "the database is given twice"),
    ("redis://host?timeout=1", "the query may only be ?db=N"),
    ("redis://:hunt%zzer2@host", "the password has a bad percent-encoding"),
    ("redis://:hunter2%00@host", "the password has a bad percent-encoding"),
    ("redis://u:hunter2@a:b:c", "more than one ':'"),
    ("redis://ho st", "a character that is not in a host name"),
    ("unix://u:hunter2@host/tmp/redis.sock", "unix:// takes no host"),
    ("unix://u:hunter2@", "no socket path"),
    ("unix:///" + "x" * 200, "longer than 107 bytes"),
    ("unix:///tmp/redis.sock?db=x", "the database is not a number"),
    ("redis://user@host", "option 'username' needs a password"),
]


@pytest.mark.parametrize("url,why", BAD_URLS, ids=[u for u, _ in BAD_URLS])
def test_bad_redis_url_is_a_clear_error(run_hitcountd, tmp_path, url, why):
    conf = tmp_path / "h.conf"
    conf.write_text("")
    r = run_hitcountd("-t", "-f", conf, env={"REDIS_URL": url})
    assert r.returncode == 1, r
    assert why in r.stderr, r.stderr
    if "username" not in why:
        assert r.stderr.startswith("REDIS_URL: "), r.stderr
    assert "hunter2" not in r.stderr


def test_bad_redis_url_stops_the_start(hitcountd_bin, tmp_path):
    from conftest import clean_env
    conf = tmp_path / "h.conf"
    conf.write_text('listen = {"127.0.0.1:%d"}\npidfile = ""\n'
                    % free_port())
    p = subprocess.run([hitcountd_bin, "-D", "-f", str(conf)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=15,
                       env=clean_env({"REDIS_URL": "redis://h:99999"}))
    assert p.returncode == 1, p
    assert "REDIS_URL: the port is not a number from 1 to 65535" in p.stderr
