"""Fixtures of the hitcountd end-to-end tests.

- hitcountd_bin:  path of the daemon under test ($HITCOUNTD, default
                  <srcdir>/src/hitcountd); the test fails if it is missing.
- redis_server:   a real redis-server on 127.0.0.1:<free port>, with
                  stop()/start()/freeze()/thaw()/cli()/visits().
- daemon_factory: daemon_factory(**overrides) writes a config file, starts
                  `hitcountd -D -f CONF`, waits for GET /healthz == 200.
- run_hitcountd:  run the binary with arguments (for -t/-T/-V/-h tests).

Every process started here is stopped by its PID at teardown.
"""

import os
import signal
import socket
import subprocess
import time

import pytest

from e2e_helpers import (children_of, daemon_binary, free_port, get,
                         kill_pid, patience, pid_alive, read_log,
                         require_tool, wait_for)

# the daemon answers /healthz within this (scaled for a sanitizer build)
START_TIMEOUT = (float(os.environ["E2E_START_TIMEOUT"])
                 if os.environ.get("E2E_START_TIMEOUT") else patience(5))

# A build with --enable-sanitizers reports errors on stderr (our log).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:")

# Variables the daemon reads: never inherit them from the caller's env.
_SCRUB = ("REDIS_HOST", "REDIS_PORT")


def clean_env(extra=None):
    env = dict(os.environ)
    for k in _SCRUB:
        env.pop(k, None)
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


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


@pytest.fixture
def port():
    return free_port()


# --------------------------------------------------------------------------
# redis-server
# --------------------------------------------------------------------------

class RedisServer:
    def __init__(self, workdir):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = workdir
        self.password = None
        self.proc = None
        self.logpath = os.path.join(workdir, "redis.log")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _ping(self):
        try:
            with socket.create_connection((self.host, self.port),
                                          timeout=1) as s:
                s.sendall(b"PING\r\n")
                data = s.recv(64)
        except OSError:
            return False
        return data.startswith(b"+PONG") or data.startswith(b"-NOAUTH")

    def start(self, timeout=10):
        """Start (or restart, on the same port) and wait for PING."""
        assert not self.running(), "redis-server already running"
        cmd = [require_tool("redis-server", "redis-server",
                            env="REDIS_SERVER_BIN"),
               "--port", str(self.port), "--bind", self.host,
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--dir", self.dir]
        log = open(self.logpath, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited: %s"
                                     % self.log()[-2000:])
            return self._ping()
        wait_for(up, timeout, what="redis-server PING")
        self.password = None     # CONFIG SET requirepass is not persistent

    def stop(self, persist=True, timeout=10):
        """Stop redis-server.

        persist=True: SHUTDOWN SAVE (data is written to dump.rdb in dir and
        loaded again by start(), so the counter survives the restart);
        persist=False: SIGTERM (with --save '' the data is lost).
        """
        if not self.running():
            return
        self.thaw()
        if persist:
            self.cli("SHUTDOWN", "SAVE", check=False)
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("redis-server did not stop in %s s"
                                 % timeout)

    def freeze(self):
        """SIGSTOP: connections stay open but nothing is answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGCONT)

    def cli(self, *args, db=None, check=True):
        cmd = [require_tool("redis-cli", "redis-tools", env="REDIS_CLI_BIN"),
               "-h", self.host, "-p", str(self.port), "--raw"]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        if db is not None:
            cmd += ["-n", str(db)]
        cmd += [str(a) for a in args]
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=15)
        if check:
            assert res.returncode == 0, "redis-cli %r failed: %s %s" % (
                args, res.stdout, res.stderr)
        return res.stdout.strip()

    def visits(self, key="visits", db=None):
        """Current integer value of key (0 if the key does not exist)."""
        out = self.cli("GET", key, db=db)
        return int(out) if out else 0

    def log(self):
        return read_log(self.logpath)

    def teardown(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kill_pid(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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

def _fmt(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(_fmt(v) for v in value) + "}"
    s = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s + '"'


def render_config(settings):
    """libconfuse text for a dict (nested dicts become sections)."""
    lines = []
    for key, value in settings.items():
        if value is None:
            continue
        if isinstance(value, dict):
            lines.append("%s {" % key)
            for k, v in value.items():
                if v is not None:
                    lines.append("    %s = %s" % (k, _fmt(v)))
            lines.append("}")
        else:
            lines.append("%s = %s" % (key, _fmt(value)))
    return "\n".join(lines) + "\n"


def _merge_settings(settings, overrides):
    """Merge config overrides into settings (redis={...} merges sections)."""
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(settings.get(k), dict):
            settings[k] = dict(settings[k], **v)
        else:
            settings[k] = v
    return settings


class Daemon:
    def __init__(self, binary, workdir, redis, overrides, env, args,
                 prefix=None, pass_fds=()):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.pidfile = os.path.join(workdir, "hitcountd.pid")
        self.conf = os.path.join(workdir, "hitcountd.conf")
        self.logpath = os.path.join(workdir, "hitcountd.log")
        settings = {
            "listen": ["127.0.0.1:%d" % self.port],
            "workers": 2,
            "pidfile": self.pidfile,
            "redis": {"host": "127.0.0.1",
                      "port": redis.port if redis else 6379},
        }
        _merge_settings(settings, overrides)
        self.settings = settings
        # health checks and tests use the first listen address
        if settings.get("listen"):
            first = settings["listen"][0]
            host, _, port = first.rpartition(":")
            if host in ("127.0.0.1", "localhost") and port.isdigit():
                self.port = int(port)
        with open(self.conf, "w") as f:
            f.write(render_config(settings))
        self.env = env or {}
        self.args = list(args)
        self.prefix = list(prefix or [])     # e.g. a sh wrapper that execs
        self.pass_fds = tuple(pass_fds)
        self.proc = None
        self.returncode = None
        self.needed_sigkill = False
        self.last_workers = []

    @property
    def pid(self):
        return self.proc.pid

    def config_text(self):
        with open(self.conf) as f:
            return f.read()

    def reconfigure(self, **overrides):
        """Rewrite the config file with overrides merged into the current
        settings (same rules as daemon_factory); the running daemon reads
        it on its next SIGHUP.  self.port is left alone."""
        _merge_settings(self.settings, overrides)
        with open(self.conf, "w") as f:
            f.write(render_config(self.settings))

    def write_config_text(self, text):
        """Replace the config file with raw text (e.g. a broken one)."""
        with open(self.conf, "w") as f:
            f.write(text)

    def log(self):
        return read_log(self.logpath)

    def start(self, wait=True):
        logf = open(self.logpath, "ab")
        try:
            self.proc = subprocess.Popen(
                self.prefix + [self.binary] + self.args + ["-f", self.conf],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                env=clean_env(self.env), cwd=self.workdir,
                pass_fds=self.pass_fds)
        finally:
            logf.close()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("hitcountd exited with status %s before "
                            "answering /healthz; config:\n%s\nlog:\n%s"
                            % (self.proc.returncode, self.config_text(),
                               self.log()))
            try:
                r = get(self.port, "/healthz", timeout=1)
                if r.status == 200:
                    return
                last = "status %d" % r.status
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.05)
        pytest.fail("hitcountd did not answer GET /healthz with 200 within "
                    "%.1f s (last: %s); config:\n%s\nlog:\n%s"
                    % (timeout, last, self.config_text(), self.log()))

    def workers(self):
        return children_of(self.pid)

    def wait_workers(self, n, timeout=5):
        """Wait for n worker processes (deadline: patience(timeout))."""
        return wait_for(lambda: len(self.workers()) == n and self.workers(),
                        patience(timeout), what="%d worker processes" % n)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal the master, wait for it; returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            kids = self.workers()
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.needed_sigkill = True
                self.proc.kill()
                self.proc.wait()
            self.last_workers = kids
            # never leave workers behind (the tests check this separately)
            for k in kids:
                if pid_alive(k):
                    kill_pid(k)
        self.returncode = self.proc.returncode
        return self.returncode


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
# hitcountd without the redis_server fixture (tests/e2e/test_scaleout.py)
# --------------------------------------------------------------------------

@pytest.fixture
def bare_daemon_factory(hitcountd_bin, tmp_path):
    """Like daemon_factory, but no redis_server is started: the caller's
    redis={...} override says where Redis is (e.g. sentinels).  The default
    host and port are still written unless overridden with None."""
    yield from _daemons(hitcountd_bin, tmp_path, None, "bare-hitcountd")
