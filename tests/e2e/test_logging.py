"""The daemon's own log on stderr: the text format (hitcountd[PID]:
level: message) of its first lines, log_level and -d, and the json and
kv formats, every line of which must parse even with a hostile value
quoted in it.
"""

import json
import os
import re
import signal

from e2e_helpers import patience, wait_for
from e2e_http import get
from e2e_daemon import wait_log


# --------------------------------------------------------------------------
# the text format, log_level and -d
# --------------------------------------------------------------------------

def test_startup_log_lines(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    kids = d.wait_workers(2)
    started = "hitcountd[%d]: info: hitcountd 0.1.0 started, 2 workers" % d.pid
    wait_for(lambda: started in d.log(), patience(3),
             what="the start log line")

    def worker_lines():
        pids = re.findall(r"^hitcountd\[(\d+)\]: info: .*worker started",
                          d.log(), re.M)
        return sorted(int(p) for p in pids) == kids
    wait_for(worker_lines, patience(3),
             what="'worker started' from each worker %r" % kids)
    for line in d.log().splitlines():
        if line.startswith("hitcountd["):
            assert re.match(r"^hitcountd\[\d+\]: (error|warning|info|debug): ",
                            line), line


def test_debug_flag_logs_at_debug_level(daemon_factory, redis_server):
    d = daemon_factory(args=("-d",), log_level="error")
    assert get(d.port).status == 200
    wait_for(lambda: re.search(r"^hitcountd\[\d+\]: debug: ", d.log(), re.M),
             patience(3), what="a debug line with -d (overriding log_level)")
    # -d also keeps the daemon in the foreground, logging to stderr
    assert d.proc.poll() is None


def test_log_level_error_hides_info_and_warnings(daemon_factory,
                                                 redis_server):
    redis_server.stop(persist=False)
    d = daemon_factory(log_level="error")
    assert get(d.port, timeout=10).status == 503
    d.wait_workers(2)
    assert get(d.port, timeout=10).status == 503
    log = d.log()
    assert not re.search(r"^hitcountd\[\d+\]: (info|warning|debug): ", log,
                         re.M), log


def test_log_level_info_has_no_debug(daemon_factory, redis_server):
    d = daemon_factory(log_level="info")
    for _ in range(3):
        assert get(d.port).status == 200
    d.wait_workers(2)
    log = d.log()
    assert re.search(r"^hitcountd\[\d+\]: info: ", log, re.M), log
    assert not re.search(r"^hitcountd\[\d+\]: debug: ", log, re.M), log


# --------------------------------------------------------------------------
# json and kv
# --------------------------------------------------------------------------

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?"
                   r"(Z|[+-]\d{2}:?\d{2})$")


LEVELS = ("error", "warning", "info", "debug")


# an invalid value with a quote, a backslash and a tab: the error message
# of the failed reload quotes it
HOSTILE_VALUE = 've"ry\\ b\tad'
HOSTILE_CONF = 'log_level = "ve\\"ry\\\\ b\\tad"\n'


def exercise_log(d, redis_server):
    """Make the daemon log a variety of lines: a failed reload (the error
    quotes a hostile config line), a Redis outage, a good reload, a stop."""
    good = d.config_text()
    d.write_config_text(good + HOSTILE_CONF)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload failed")
    d.write_config_text(good)
    redis_server.stop()
    wait_for(lambda: get(d.port, timeout=5).status == 503, patience(3),
             what="503 with Redis down")
    redis_server.start()
    wait_for(lambda: get(d.port, timeout=5).status == 200, patience(3),
             what="200 after Redis returned")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    assert d.stop() == 0
    return d.log()


def test_log_format_json(daemon_factory, redis_server):
    d = daemon_factory(workers=2, log_format="json")
    log = exercise_log(d, redis_server)
    lines = log.splitlines()
    assert len(lines) >= 10, log
    msgs = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise AssertionError("log line is not JSON (%s): %r" % (exc, line))
        assert isinstance(obj, dict), line
        assert {"ts", "level", "pid", "msg"} <= set(obj), line
        assert isinstance(obj["ts"], str) and TS_RE.match(obj["ts"]), line
        assert obj["level"] in LEVELS, line
        assert isinstance(obj["pid"], int) and obj["pid"] > 0, line
        assert isinstance(obj["msg"], str) and obj["msg"], line
        msgs.append((obj["pid"], obj["level"], obj["msg"]))
    assert (d.pid, "info", "hitcountd 0.1.0 started, 2 workers") in msgs, msgs
    failed = [m for p, _, m in msgs if p == d.pid and "reload failed" in m]
    assert len(failed) == 1, msgs
    assert HOSTILE_VALUE in failed[0], \
        "the hostile value did not survive JSON encoding: %r" % failed[0]
    assert any(l == "warning" for _, l, _ in msgs), msgs


KV_RE = re.compile(r'^ts=(\S+) level=(\w+) pid=(\d+) msg="((?:[^"\\]|\\.)*)"$')


def test_log_format_kv(daemon_factory, redis_server):
    d = daemon_factory(workers=2, log_format="kv")
    log = exercise_log(d, redis_server)
    lines = log.splitlines()
    assert len(lines) >= 10, log
    msgs = []
    for line in lines:
        m = KV_RE.match(line)
        assert m, "log line is not ts=... level=... pid=N msg=\"...\": %r" % (
            line,)
        assert TS_RE.match(m.group(1)), line
        assert m.group(2) in LEVELS, line
        msgs.append((int(m.group(3)), m.group(2), m.group(4)))
    assert (d.pid, "info", "hitcountd 0.1.0 started, 2 workers") in msgs, msgs
    failed = [line for line in lines if "reload failed" in line]
    assert len(failed) == 1, lines
    # the quote of the hostile value is escaped (else KV_RE fails above)
    assert 've\\"ry' in failed[0], failed[0]
