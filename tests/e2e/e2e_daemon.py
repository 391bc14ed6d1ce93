"""The daemon under test: its configuration file, the process (Daemon:
start, wait for /healthz, workers, stop), and what the tests wait for in
it: lines of its log, its exit, and each worker's Redis connection as the
worker logs it.  The fixtures that make daemons are in conftest.py.
"""

import os
import re
import signal
import subprocess
import time

import pytest

from e2e_helpers import (assert_gone, children_of, free_port, kill_pid,
                         patience, pid_alive, read_log, wait_for)
from e2e_http import get


# the daemon answers /healthz within this (scaled for a sanitizer build)
START_TIMEOUT = (float(os.environ["E2E_START_TIMEOUT"])
                 if os.environ.get("E2E_START_TIMEOUT") else patience(5))


# A build with --enable-sanitizers reports errors on stderr (our log).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:")


# Variables the daemon reads: never inherit them from the caller's env.
_SCRUB = ("REDIS_HOST", "REDIS_PORT", "REDIS_URL", "REDIS_PASSWORD")


def clean_env(extra=None):
    env = dict(os.environ)
    for k in _SCRUB:
        env.pop(k, None)
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


# --------------------------------------------------------------------------
# the configuration file
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


# --------------------------------------------------------------------------
# the process
# --------------------------------------------------------------------------

class Daemon:
    """One hitcountd that daemon_factory started: a work directory with
    its config file (settings), pidfile and log (stdout and stderr); the
    first listen address is self.port."""

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


# --------------------------------------------------------------------------
# its log and its exit
# --------------------------------------------------------------------------

def log_count(d, text):
    return d.log().count(text)


def log_lines(d, text):
    """The lines of the daemon's log that hold text."""
    return [l for l in d.log().splitlines() if text in l]


def wait_log(d, text, count=1, timeout=5):
    """Wait until text occurs at least count times in the daemon's log
    (deadline: patience(timeout))."""
    try:
        return wait_for(lambda: log_count(d, text) >= count,
                        patience(timeout),
                        what="%d x %r in the log" % (count, text))
    except AssertionError as exc:
        raise AssertionError("%s; log:\n%s" % (exc, d.log()[-6000:]))


def wait_exit(d, timeout):
    """Wait for the master to exit; returns (status, seconds waited)."""
    t0 = time.monotonic()
    try:
        rc = d.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("master %d still running after %.1f s; log:\n%s"
                             % (d.pid, timeout, d.log()[-6000:]))
    return rc, time.monotonic() - t0


def wait_exit_after(d, sig, timeout):
    """sig to the master; wait_exit(), and for its workers to go."""
    kids = d.workers()
    os.kill(d.pid, sig)
    res = wait_exit(d, timeout)
    assert_gone(kids, 2)
    return res


def barrier(d, n):
    """Make sure the master handled every signal sent before: WINCH is
    handled after TTIN/TTOU in the same pass; wait for its n-th log line."""
    os.kill(d.pid, signal.SIGWINCH)
    wait_log(d, "WINCH ignored", n)


# --------------------------------------------------------------------------
# each worker's Redis connection, from the daemon's log
# --------------------------------------------------------------------------
#
# /readyz is answered by whichever worker accepts the connection, and
# /metrics has no per-worker series, so "every worker can serve GET /" is
# not observable over HTTP.  Each worker logs its own Redis connection
# (src/counter.c, with its PID on every line): "redis: connected to ..."
# when it becomes ready, and one of REDIS_DOWN when it stops being ready.
# The last of these lines a worker wrote is its state.


REDIS_UP = "redis: connected to "

REDIS_DOWN = ("redis: lost connection to ", "redis: cannot connect to ",
              "redis: no reply within ", "redis: connection setup failed",
              "is not the primary; asking the sentinels",
              "redis: the sentinels moved the primary",
              "redis: the sentinels are promoting a replica",
              "redis: cannot resolve ", "redis: no answer from sentinel ",
              "redis: cannot reach sentinel ",
              "redis: cannot look up sentinel ",
              "redis: sentinel has no primary for ", "redis: bad sentinel ")


_LOG_PID_RE = (re.compile(r"^hitcountd\[(\d+)\]: \w+: (.*)$"),        # text
               re.compile(r'^ts=\S+ level=\w+ pid=(\d+) msg="(.*)"$'),  # kv
               re.compile(r'^\{"ts":"[^"]*","level":"\w+","pid":(\d+),'
                          r'"msg":"(.*)"\}$'))                         # json


def log_pid_messages(text):
    """[(pid, message)] of the daemon's own lines in a log (any format)."""
    out = []
    for line in text.splitlines():
        for rx in _LOG_PID_RE:
            m = rx.match(line)
            if m:
                out.append((int(m.group(1)), m.group(2)))
                break
    return out


def redis_states(text):
    """{pid: True (connected) or False (not)} from the last Redis
    connection line each process wrote in text."""
    states = {}
    for pid, msg in log_pid_messages(text):
        if msg.startswith(REDIS_UP):
            states[pid] = True
        elif any(m in msg for m in REDIS_DOWN):
            states[pid] = False
    return states


def _wait_workers_redis(daemon, judge, timeout, since, what):
    """Wait until judge(workers, states) says yes for the daemon's workers
    and the Redis states their log lines after offset `since` give
    (redis_states); judge returns (yes, why).  The deadline is
    patience(timeout).  Returns the worker PIDs."""
    state = {}

    def done():
        workers = daemon.workers()
        yes, state["why"] = judge(workers,
                                  redis_states(daemon.log()[since:]))
        return yes and workers
    try:
        return wait_for(done, patience(timeout), interval=0.02, what=what)
    except AssertionError as exc:
        raise AssertionError("%s (%s); log:\n%s" % (
            exc, state.get("why"), daemon.log()[since:][-4000:]))


def wait_all_workers_ready(daemon, n=None, timeout=5, since=0):
    """Wait until the daemon has n worker processes (default: whatever it
    has) and every one of them is connected to Redis according to its own
    log lines after offset `since` of the log (pass len(daemon.log()) taken
    before an event such as a Redis restart, so that only what came after
    it counts).  The deadline is patience(timeout).  Returns the worker
    PIDs.  Needs log_level info or debug (info is the default)."""
    def judge(workers, states):
        if not workers or (n is not None and len(workers) != n):
            return False, "workers %r" % (workers,)
        waiting = [w for w in workers if not states.get(w)]
        return not waiting, "workers %r, not connected yet: %r" % (
            workers, waiting)
    return _wait_workers_redis(daemon, judge, timeout, since,
                               "every worker connected to Redis")


def wait_all_workers_down(daemon, timeout=5, since=0):
    """Wait until every worker of the daemon has logged, after offset
    `since`, that it is not connected to Redis.  Returns the worker PIDs."""
    def judge(workers, states):
        still = [w for w in workers if states.get(w) is not False]
        return bool(workers) and not still, \
            "workers %r, not seen down: %r" % (workers, still)
    return _wait_workers_redis(daemon, judge, timeout, since,
                               "every worker to lose Redis")
