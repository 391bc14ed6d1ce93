"""Which Redis server the end-to-end tests run: the one they are meant to.

The counting, fault and Sentinel tests also run against Debian 13's
Redis 8.0 and Valkey 8.1 (.ci/run, through the wrappers that
.ci/debian13-redis writes, set as REDIS_SERVER_BIN and REDIS_CLI_BIN).
A wrapper that quietly ran Debian 12's redis-server 7.0 instead would
make those runs prove nothing, so this file checks what the started
server says of itself (INFO server), as a server and as a sentinel, and
that the PID the tests signal (kill -9, SIGSTOP) is the server's own.

REDIS_SERVER_VERSION ("redis 8.0", "valkey 8.1") names the server
expected; unset, it is what `$REDIS_SERVER_BIN --version` says, so that
the check still compares the running server with the binary on disk.
"""

import os
import re
import subprocess

from e2e_helpers import require_tool
from e2e_servers import SentinelNode, redis_info, redis_server_binary


def _version_output(binary):
    return subprocess.run([binary, "--version"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, universal_newlines=True,
                          timeout=15, check=True).stdout


def _version_line(binary):
    """(name, version) from `binary --version`: "Redis server v=8.0.2"
    or "Valkey server v=8.1.1" -> ("redis", "8.0.2")."""
    out = _version_output(binary)
    m = re.match(r"(\w+) server v=(\d+\.\d+\.\d+) ", out)
    assert m, "unexpected --version output of %s: %r" % (binary, out)
    return m.group(1).lower(), m.group(2)


def expected_server():
    """(name, version prefix) of the server the tests should be running."""
    want = os.environ.get("REDIS_SERVER_VERSION")
    if not want:
        return _version_line(redis_server_binary())
    name, _, version = want.partition(" ")
    assert name and version, "REDIS_SERVER_VERSION=%r: want NAME X.Y" % want
    return name.lower(), version


def reported_server(info):
    """(name, version) from INFO server: Valkey says server_name:valkey
    and valkey_version (its redis_version is a fixed 7.2.4 kept for
    clients); Redis has neither server_name nor valkey_version."""
    name = info.get("server_name", "redis")
    return name, info.get(name + "_version")


def check_identity(info, pid, mode):
    name, prefix = expected_server()
    got_name, got_version = reported_server(info)
    assert got_name == name, (name, info)
    assert got_version and (got_version == prefix or
                            got_version.startswith(prefix + ".")), (
        "%s %s expected, the server reports %s %s"
        % (name, prefix, got_name, got_version))
    assert info.get("server_mode", info.get("redis_mode")) == mode, info
    # the PID the tests kill and stop is the server, not a wrapper's
    assert int(info["process_id"]) == pid, (info["process_id"], pid)


def test_server_reports_expected_version(redis_server):
    check_identity(redis_info(redis_server.port, "server"), redis_server.pid,
                   "standalone")
    # the redis-cli that the tests read the counter with comes with the
    # server ("redis-cli 8.0.2", "valkey-cli 8.1.1") and works with it
    name, prefix = expected_server()
    cli = require_tool("redis-cli", "redis-tools", env="REDIS_CLI_BIN")
    out = _version_output(cli)
    assert re.match(r"%s-cli %s[.\s]" % (name, re.escape(prefix)), out), out
    redis_server.cli("SET", "visits", "41")
    redis_server.cli("INCR", "visits")
    assert redis_server.visits() == 42


def test_sentinel_reports_expected_version(redis_server, tmp_path):
    s = SentinelNode("sentinel", str(tmp_path / "sentinel"),
                     redis_server.port)
    try:
        s.start()
        check_identity(redis_info(s.port, "server"), s.pid, "sentinel")
        assert s.master_addr() == ("127.0.0.1", redis_server.port)
    finally:
        s.teardown()
