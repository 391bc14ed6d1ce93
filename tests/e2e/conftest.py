"""Fixtures of the hitcountd end-to-end tests.

- hitcountd_bin:  path of the daemon under test ($HITCOUNTD, default
                  <srcdir>/src/hitcountd); the test fails if it is missing.
- run_hitcountd:  run the binary with arguments (for -t/-T/-V/-h tests).
- redis_server:   a real redis-server on 127.0.0.1:<free port>, with
                  stop()/start()/freeze()/thaw()/cli()/visits()
                  (e2e_servers.RedisServer).
- daemon_factory: daemon_factory(**overrides) writes a config file, starts
                  `hitcountd -D -f CONF`, waits for GET /healthz == 200
                  (e2e_daemon.Daemon).
- bare_daemon_factory: the same without the redis_server fixture.

Every process started here is stopped by its PID at teardown.
"""

import os
import subprocess

import pytest

from e2e_daemon import SANITIZER_MARKERS, Daemon, clean_env
from e2e_helpers import daemon_binary
from e2e_servers import RedisServer


# --------------------------------------------------------------------------
# the binary
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hitcountd_bin():
    path = daemon_binary()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("hitcountd binary not found or not executable: %s "
                    "(build it, or set HITCOUNTD)" % path)
    return path


@pytest.fixture
def run_hitcountd(hitcountd_bin):
    """run_hitcountd(*args, env=None) -> CompletedProcess (text mode)."""

    def run(*args, env=None, timeout=15):
        return subprocess.run([hitcountd_bin] + [str(a) for a in args],
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=clean_env(env), timeout=timeout,
                              universal_newlines=True)
    return run


# --------------------------------------------------------------------------
# redis-server
# --------------------------------------------------------------------------

@pytest.fixture
def redis_server(tmp_path):
    d = tmp_path / "redis"
    d.mkdir()
    srv = RedisServer(str(d))
    srv.start()
    try:
        yield srv
    finally:
        srv.teardown()


# --------------------------------------------------------------------------
# hitcountd
# --------------------------------------------------------------------------

@pytest.fixture
def daemon_factory(hitcountd_bin, redis_server, tmp_path):
    """daemon_factory(wait=True, env=None, args=("-D",), prefix=None,
                      pass_fds=(), binary=None, **config_overrides)

    config_overrides are top-level keys of the config file; redis={...}
    is merged into the redis section; a value of None removes a key.
    prefix: argv put before the binary (a wrapper that execs it, so that
    the PID stays the daemon's); pass_fds: descriptors the wrapper inherits;
    binary: another path of the daemon (a copy a test replaces).
    """
    yield from _daemons(hitcountd_bin, tmp_path, redis_server, "hitcountd")


def _daemons(hitcountd_bin, tmp_path, redis_server, name):
    """The body of daemon_factory and bare_daemon_factory: yields the
    factory, then stops every daemon it started and fails the test if one
    needed SIGKILL, kept running, or logged a sanitizer report."""
    started = []
    counter = [0]

    def factory(wait=True, env=None, args=("-D",), prefix=None, pass_fds=(),
                binary=None, **overrides):
        counter[0] += 1
        workdir = tmp_path / ("%s%d" % (name, counter[0]))
        workdir.mkdir()
        d = Daemon(binary or hitcountd_bin, str(workdir), redis_server,
                   overrides,
                   env, args, prefix=prefix, pass_fds=pass_fds)
        started.append(d)
        d.start(wait=wait)
        return d

    yield factory

    problems = []
    for d in reversed(started):
        if d.proc is None:
            continue
        already = d.proc.poll() is not None
        d.stop()
        if not already and d.needed_sigkill:
            problems.append("master %d did not exit within 10 s of SIGTERM "
                            "(killed); log:\n%s" % (d.pid, d.log()))
        elif d.proc.poll() is None:
            problems.append("master %d still running" % d.pid)
        log = d.log()
        for marker in SANITIZER_MARKERS:
            if marker in log:
                problems.append("sanitizer report in the log of %d:\n%s"
                                % (d.pid, log[-6000:]))
                break
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# hitcountd without the redis_server fixture (the Sentinel tests)
# --------------------------------------------------------------------------

@pytest.fixture
def bare_daemon_factory(hitcountd_bin, tmp_path):
    """Like daemon_factory, but no redis_server is started: the caller's
    redis={...} override says where Redis is (e.g. sentinels).  The default
    host and port are still written unless overridden with None."""
    yield from _daemons(hitcountd_bin, tmp_path, None, "bare-hitcountd")
