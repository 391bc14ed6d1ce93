"""Command line: -V, -h, bad options, -t (config check), -T (effective
config), and REDIS_PORT that is no port."""

import os
import re
import socket
import subprocess

import pytest

from e2e_helpers import children_of, kill_pid
from e2e_daemon import clean_env

VALID_CONF = """\
# a valid configuration
listen = {{"127.0.0.1:{port}"}}
workers = 2
pidfile = "{pidfile}"
keepalive_timeout = 5
redis {{
    host = "127.0.0.1"
    port = 6379
    key = "visits"
}}
"""


def write_conf(tmp_path, text, name="hitcountd.conf"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def valid_conf(tmp_path, port=5999):
    return write_conf(tmp_path, VALID_CONF.format(
        port=port, pidfile=str(tmp_path / "hitcountd.pid")))


def test_version(run_hitcountd):
    r = run_hitcountd("-V")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hitcountd 0.1.0"


def test_help_is_usage_on_stdout(run_hitcountd):
    r = run_hitcountd("-h")
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()
    assert "-f" in r.stdout


@pytest.mark.parametrize("opt", ["-Z", "--bogus", "-q"])
def test_unknown_option_exits_1_with_usage_on_stderr(run_hitcountd, opt):
    r = run_hitcountd(opt)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "usage" in r.stderr.lower()
    assert "usage" not in r.stdout.lower()


def test_check_valid_config(run_hitcountd, tmp_path):
    conf = valid_conf(tmp_path)
    r = run_hitcountd("-t", "-f", conf)
    assert r.returncode == 0, r.stderr
    assert "hitcountd: configuration file %s is valid" % conf in r.stdout
    # -t must not create the pidfile of a daemon that it does not start
    assert not os.path.exists(str(tmp_path / "hitcountd.pid"))


@pytest.mark.parametrize("timeout,delay,warned", [
    (8, 0, False), (13, 0, False), (14, 0, True), (3600, 0, True),
    (8, 5, False), (8, 6, True), (1, 13, True)])
def test_check_warns_when_the_unit_would_cut_the_stop_short(
        run_hitcountd, tmp_path, timeout, delay, warned):
    """The shipped unit's TimeoutStopSec=15 kills what is left of a
    graceful stop; -t (its ExecStartPre) says so when shutdown_delay plus
    shutdown_timeout, plus the master's 2 s, does not fit in it (issue
    20)."""
    conf = valid_conf(tmp_path)
    with open(conf, "a") as f:
        f.write("shutdown_timeout = %d\n" % timeout)
        f.write("shutdown_delay = %d\n" % delay)
    r = run_hitcountd("-t", "-f", conf)
    assert r.returncode == 0, r.stderr
    assert ("TimeoutStopSec" in r.stderr) == warned, r.stderr


def test_check_missing_file(run_hitcountd, tmp_path):
    missing = str(tmp_path / "does-not-exist.conf")
    r = run_hitcountd("-t", "-f", missing)
    assert r.returncode == 1
    assert missing in r.stderr


# (name, config text, 1-based line of the error, key name to be mentioned)
BAD_CONFIGS = [
    ("unknown-key",
     'listen = {"127.0.0.1:5999"}\nworkers = 2\nbogus_key = 1\n', 3,
     "bogus_key"),
    ("wrong-type-workers",
     'listen = {"127.0.0.1:5999"}\nworkers = "two"\n', 2, "workers"),
    ("workers-negative",
     'listen = {"127.0.0.1:5999"}\n\nworkers = -1\n', 3, "workers"),
    ("workers-too-many",
     'workers = 257\n', 1, "workers"),
    ("redis-port-70000",
     'listen = {"127.0.0.1:5999"}\nworkers = 1\nredis {\n'
     '    host = "127.0.0.1"\n    key = "visits"\n    port = 70000\n}\n',
     6, "port"),
    ("redis-port-0",
     'redis {\n    port = 0\n}\n', 2, "port"),
    ("redis-unknown-key",
     'workers = 1\nredis {\n    hots = "127.0.0.1"\n}\n', 3, "hots"),
    ("redis-empty-key",
     'workers = 1\nredis {\n    key = ""\n}\n', 3, "key"),
    ("redis-timeout-0",
     'redis {\n    host = "127.0.0.1"\n    timeout_ms = 0\n}\n', 3,
     "timeout_ms"),
    ("redis-db-negative",
     'redis {\n    db = -1\n}\n', 2, "db"),
    ("keepalive-too-big",
     'keepalive_timeout = 3601\n', 1, "keepalive_timeout"),
    ("shutdown-timeout-0",
     'workers = 1\nshutdown_timeout = 0\n', 2, "shutdown_timeout"),
    ("header-timeout-0",
     'header_timeout = 0\n', 1, "header_timeout"),
    ("max-header-size-too-small",
     'workers = 1\n\n\nmax_header_size = 100\n', 4, "max_header_size"),
    ("max-connections-0",
     'max_connections = 0\n', 1, "max_connections"),
    ("backlog-too-big",
     'backlog = 65536\n', 1, "backlog"),
    ("max-headers-0",
     'max_headers = 0\n', 1, "max_headers"),
    ("log-level-bad",
     'workers = 1\nlog_level = "loud"\n', 2, "log_level"),
    ("wrong-type-keepalive",
     'keepalive_timeout = "soon"\n', 1, "keepalive_timeout"),
]


@pytest.mark.parametrize("name,text,line,key", BAD_CONFIGS,
                         ids=[b[0] for b in BAD_CONFIGS])
def test_check_invalid_config(run_hitcountd, tmp_path, name, text, line, key):
    conf = write_conf(tmp_path, text)
    r = run_hitcountd("-t", "-f", conf)
    assert r.returncode == 1, (name, r.stdout, r.stderr)
    assert re.search("^" + re.escape("%s:%d: " % (conf, line)), r.stderr,
                     re.M), \
        "expected a line starting %s:%d: in stderr, got %r" % (conf, line,
                                                              r.stderr)
    assert key in r.stderr, "key %r not named in %r" % (key, r.stderr)
    assert "is valid" not in r.stdout


@pytest.mark.parametrize("addr", ["nonsense", "127.0.0.1:70000",
                                  "127.0.0.1:0x", "127.0.0.1"])
def test_check_invalid_listen(run_hitcountd, tmp_path, addr):
    conf = write_conf(tmp_path, 'listen = {"%s"}\nworkers = 1\n' % addr)
    r = run_hitcountd("-t", "-f", conf)
    assert r.returncode == 1, (addr, r.stdout, r.stderr)
    assert conf in r.stderr
    assert "listen" in r.stderr or addr in r.stderr


def test_check_never_binds(run_hitcountd, tmp_path):
    # hold the listen port ourselves: -t must still succeed (it never binds)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        conf = valid_conf(tmp_path, port=taken)
        r = run_hitcountd("-t", "-f", conf)
        assert r.returncode == 0, r.stderr
        assert "is valid" in r.stdout
        r = run_hitcountd("-T", "-f", conf)
        assert r.returncode == 0, r.stderr
    finally:
        holder.close()


def _redis_section(text):
    m = re.search(r"^\s*redis\s*\{(.*?)\}", text, re.S | re.M)
    assert m, "no redis section in -T output:\n" + text
    return m.group(1)


def _top_level(text):
    return re.sub(r"^\s*redis\s*\{.*?\}", "", text, flags=re.S | re.M)


def _has(text, key, value):
    return re.search(r"^\s*%s\s*=\s*%s\s*$" % (re.escape(key),
                                               re.escape(value)),
                     text, re.M) is not None


def test_dump_effective_config_with_env_overrides(run_hitcountd, tmp_path):
    conf = write_conf(tmp_path, (
        'listen = {"127.0.0.1:5999"}\nworkers = 3\nkeepalive_timeout = 7\n'
        'redis {\n    host = "cfg-host.invalid"\n    port = 6000\n'
        '    key = "hits"\n}\n'))
    # without env: the file's values
    r = run_hitcountd("-T", "-f", conf)
    assert r.returncode == 0, r.stderr
    top, red = _top_level(r.stdout), _redis_section(r.stdout)
    assert _has(top, "workers", "3"), r.stdout
    assert _has(top, "keepalive_timeout", "7"), r.stdout
    assert _has(red, "host", '"cfg-host.invalid"'), r.stdout
    assert _has(red, "port", "6000"), r.stdout
    assert _has(red, "key", '"hits"'), r.stdout
    # defaults are printed too
    assert _has(top, "shutdown_timeout", "8"), r.stdout
    assert _has(red, "timeout_ms", "1000"), r.stdout

    # with env: REDIS_HOST/REDIS_PORT win
    env = {"REDIS_HOST": "10.1.2.3", "REDIS_PORT": "6390"}
    r = run_hitcountd("-T", "-f", conf, env=env)
    assert r.returncode == 0, r.stderr
    top, red = _top_level(r.stdout), _redis_section(r.stdout)
    assert _has(red, "host", '"10.1.2.3"'), r.stdout
    assert _has(red, "port", "6390"), r.stdout
    assert _has(top, "workers", "3"), r.stdout

    # the output is itself a valid configuration with the same meaning
    dumped = write_conf(tmp_path, r.stdout, name="dumped.conf")
    r2 = run_hitcountd("-t", "-f", dumped)
    assert r2.returncode == 0, (r.stdout, r2.stderr)
    r3 = run_hitcountd("-T", "-f", dumped)
    assert r3.returncode == 0, r3.stderr
    assert _has(_redis_section(r3.stdout), "host", '"10.1.2.3"'), r3.stdout
    assert _has(_redis_section(r3.stdout), "port", "6390"), r3.stdout


@pytest.mark.parametrize("env,host,port", [
    ({"REDIS_PORT": "tcp://10.9.8.7:6391"}, "10.9.8.7", "6391"),
    ({"REDIS_PORT": "tcp://10.9.8.7:6391", "REDIS_HOST": "10.1.1.1"},
     "10.1.1.1", "6391"),
    ({"REDIS_HOST": "10.1.1.1"}, "10.1.1.1", "6000"),
])
def test_dump_effective_config_docker_link_form(run_hitcountd, tmp_path,
                                                env, host, port):
    conf = write_conf(tmp_path, 'redis {\n    host = "cfg-host.invalid"\n'
                                '    port = 6000\n}\n')
    r = run_hitcountd("-T", "-f", conf, env=env)
    assert r.returncode == 0, r.stderr
    red = _redis_section(r.stdout)
    assert _has(red, "host", '"%s"' % host), r.stdout
    assert _has(red, "port", port), r.stdout


def test_dump_invalid_config_exits_1(run_hitcountd, tmp_path):
    conf = write_conf(tmp_path, "workers = -1\n")
    r = run_hitcountd("-T", "-f", conf)
    assert r.returncode == 1
    assert "%s:1" % conf in r.stderr


@pytest.mark.parametrize("value", ["0", "70000", "abc", "tcp://10.0.0.1:0",
                                   "-5"])
def test_invalid_redis_port_env_is_config_error(run_hitcountd, tmp_path,
                                                value):
    conf = valid_conf(tmp_path)
    r = run_hitcountd("-t", "-f", conf, env={"REDIS_PORT": value})
    assert r.returncode == 1, (value, r.stdout, r.stderr)
    assert re.search(r"^REDIS_PORT: ", r.stderr, re.M), r.stderr


def test_invalid_redis_port_env_refuses_to_start(hitcountd_bin, tmp_path):
    from e2e_helpers import free_port
    port = free_port()
    conf = valid_conf(tmp_path, port=port)
    p = subprocess.Popen([hitcountd_bin, "-D", "-f", conf],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True,
                         env=clean_env({"REDIS_PORT": "70000"}))
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        for k in children_of(p.pid):
            kill_pid(k)
        p.kill()
        p.communicate()
        pytest.fail("hitcountd started although REDIS_PORT=70000")
    assert p.returncode == 1, (out, err)
    assert "REDIS_PORT" in err
