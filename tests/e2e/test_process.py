"""Process model: workers, supervision, logging, pidfile, signals, detach."""

import re

from e2e_helpers import patience, wait_for
from e2e_http import get


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
