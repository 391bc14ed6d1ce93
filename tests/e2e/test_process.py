"""Process model: workers, supervision, logging, pidfile, signals, detach."""

import os
import re
import signal
import socket
import subprocess
import time

from e2e_helpers import children_of, kill_pid, patience, pid_alive, wait_for
from e2e_http import RawClient, get
from e2e_daemon import wait_all_workers_ready


def test_two_workers(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    kids = d.wait_workers(2)
    for _ in range(10):
        assert get(d.port).status == 200
    assert d.workers() == kids, "worker set changed under normal load"


def test_three_workers(daemon_factory, redis_server):
    d = daemon_factory(workers=3)
    d.wait_workers(3)


def test_workers_zero_means_one_per_cpu(daemon_factory, redis_server):
    d = daemon_factory(workers=0)
    d.wait_workers(os.sysconf("SC_NPROCESSORS_ONLN"))


def test_dead_worker_is_replaced(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    kids = d.wait_workers(2)
    victim = kids[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(d.workers()) == 2 and victim not in d.workers(),
             patience(5), what="a replacement worker")
    assert d.proc.poll() is None, "master died with its worker"
    # the replacement has connected to Redis (its own log line), not just
    # some worker answering 200: then every fresh connection gets 200
    wait_all_workers_ready(d, 2, timeout=3)
    for _ in range(6):
        assert get(d.port).status == 200


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


def test_pidfile(daemon_factory, redis_server):
    d = daemon_factory()
    with open(d.pidfile) as f:
        assert int(f.read().strip()) == d.pid


def test_sigterm_graceful_exit(daemon_factory, redis_server):
    shutdown_timeout = 3
    d = daemon_factory(workers=2, shutdown_timeout=shutdown_timeout)
    kids = d.wait_workers(2)
    assert get(d.port).status == 200
    idle = RawClient(d.port)              # an idle keep-alive connection
    try:
        assert idle.request("GET", "/").status == 200
        t0 = time.monotonic()
        os.kill(d.pid, signal.SIGTERM)
        try:
            rc = d.proc.wait(shutdown_timeout + 2)
        except subprocess.TimeoutExpired:
            raise AssertionError("master still running %d s after SIGTERM "
                                 "(shutdown_timeout=%d)"
                                 % (shutdown_timeout + 2, shutdown_timeout))
        elapsed = time.monotonic() - t0
        assert rc == 0, "exit status %r; log:\n%s" % (rc, d.log())
        assert elapsed <= shutdown_timeout + 2
        left = [k for k in kids if pid_alive(k)]
        for k in left:
            kill_pid(k)
        assert not left, "workers %r outlived the master" % left
        closed, _, _ = idle.wait_closed(2)
        assert closed, "client connection left open after shutdown"
    finally:
        idle.close()
    # the listen port is released
    s = socket.socket()
    try:
        assert s.connect_ex(("127.0.0.1", d.port)) != 0
    finally:
        s.close()


def test_sigterm_with_redis_down(daemon_factory, redis_server):
    d = daemon_factory(workers=2, shutdown_timeout=2)
    redis_server.stop()
    assert get(d.port, timeout=10).status == 503
    kids = d.workers()
    os.kill(d.pid, signal.SIGTERM)
    rc = d.proc.wait(4)
    assert rc == 0
    left = [k for k in kids if pid_alive(k)]
    for k in left:
        kill_pid(k)
    assert not left


def test_detaches_without_D(daemon_factory, redis_server):
    d = daemon_factory(wait=False, args=())
    try:
        rc = d.proc.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError("hitcountd without -D did not detach")
    assert rc == 0, d.log()
    mpid = wait_for(lambda: int(open(d.pidfile).read().strip()),
                    patience(5), what="pidfile of the detached daemon")
    kids = []
    try:
        assert mpid != d.proc.pid
        assert pid_alive(mpid)
        assert os.getsid(mpid) == mpid, "detached daemon did not setsid()"
        assert os.readlink("/proc/%d/cwd" % mpid) == "/"
        wait_for(lambda: get(d.port, "/healthz", timeout=1).status == 200,
                 patience(5), what="/healthz of the detached daemon")
        assert get(d.port).body == b"Page visited 1 times"
        kids = wait_for(lambda: len(children_of(mpid)) == 2 and
                        children_of(mpid), patience(5), what="2 workers")
        os.kill(mpid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(mpid), patience(10),
                 what="detached daemon to exit on SIGTERM")
        wait_for(lambda: not any(pid_alive(k) for k in kids), 3,
                 what="workers to exit")
    finally:
        for p in [mpid] + kids:
            if pid_alive(p):
                kill_pid(p)


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


def test_sigterm_during_load_is_graceful(daemon_factory, redis_server):
    import threading
    from e2e_http import ConnectionClosed
    shutdown_timeout = 4
    d = daemon_factory(workers=2, shutdown_timeout=shutdown_timeout)
    lock = threading.Lock()
    st = {"200": 0, "other": [], "truncated": 0, "no_answer": 0}
    stop = threading.Event()

    def client():
        c = None
        while not stop.is_set():
            try:
                if c is None:
                    c = RawClient(d.port, timeout=15)
            except OSError:
                time.sleep(0.02)          # refused: the daemon is gone
                continue
            try:
                c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                r = c.read_response()
            except (OSError, ConnectionClosed):
                with lock:
                    if c.buf:
                        st["truncated"] += 1
                    else:
                        st["no_answer"] += 1
                c.close()
                c = None
                continue
            with lock:
                if r.status == 200:
                    st["200"] += 1
                else:
                    st["other"].append(r.status)
            if (r.header("Connection") or "").lower() == "close":
                c.close()
                c = None
        if c is not None:
            c.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: st["200"] >= 300, patience(20), what="300 answers")
        kids = d.workers()
        t0 = time.monotonic()
        os.kill(d.pid, signal.SIGTERM)
        rc = d.proc.wait(shutdown_timeout + 4)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    left = [k for k in kids if pid_alive(k)]
    for k in left:
        kill_pid(k)
    print("sigterm during load: %r, %.2f s" % (st, elapsed))
    assert rc == 0, d.log()
    assert elapsed <= shutdown_timeout + 2
    assert not left, "workers outlived the master"
    assert st["truncated"] == 0, "responses cut in the middle: %r" % st
    assert st["other"] == [], st
    counter = redis_server.visits()
    assert st["200"] <= counter <= st["200"] + st["no_answer"], (counter, st)
