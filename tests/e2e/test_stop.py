"""Stopping: TERM and QUIT stop gracefully (the listeners close at once,
requests in flight are answered, workers still busy at shutdown_timeout
are killed), INT and a second TERM stop at once; the workers go with the
master and the port is released.

Requests are held in flight with CLIENT PAUSE WRITE: their INCRs wait in
Redis, so the daemon cannot answer them until the pause ends.
"""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from e2e_helpers import (assert_gone, client_sockets, kill_pid, patience,
                         pid_alive, port_refuses, wait_for)
from e2e_http import RawClient, fire_requests, get, join_all, visits_from_body
from e2e_daemon import wait_exit, wait_log


# --------------------------------------------------------------------------
# TERM
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# requests in flight
# --------------------------------------------------------------------------

def pause_redis_writes(redis_server, ms):
    """CLIENT PAUSE ms WRITE: INCRs wait, the daemon's answers are held."""
    redis_server.cli("CLIENT", "PAUSE", str(ms), "WRITE")


def unpause_redis(redis_server):
    if redis_server.running():
        redis_server.cli("CLIENT", "UNPAUSE", check=False)


def wait_incr_blocked(redis_server, timeout=3):
    """Wait until Redis holds at least one paused client (an INCR sent)."""
    def blocked():
        info = redis_server.cli("INFO", "clients")
        m = re.search(r"blocked_clients:(\d+)", info)
        return m and int(m.group(1)) >= 1
    wait_for(blocked, patience(timeout), what="an INCR held by CLIENT PAUSE")


def wait_accepted(d, kids, n, timeout=3):
    """Wait until the workers kids hold n established client connections
    on d.port: the requests fire_requests started have all been accepted
    (a stop closes the listeners; what is still in the backlog then is
    refused, what a worker accepted is answered)."""
    wait_for(lambda: sum(client_sockets(k, d.port) for k in kids) >= n,
             patience(timeout),
             what="%d connections accepted by the workers %r" % (n, kids))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT],
                         ids=["TERM", "QUIT"])
def test_graceful_stop_finishes_requests_in_flight(daemon_factory,
                                                   redis_server, sig):
    shutdown_timeout = 5
    n = 6
    d = daemon_factory(workers=2, shutdown_timeout=shutdown_timeout,
                       redis={"timeout_ms": 5000})
    kids = d.wait_workers(2)
    try:
        pause_redis_writes(redis_server, 1500)
        t_pause = time.monotonic()
        threads, results = fire_requests(d.port, n)
        wait_accepted(d, kids, n)
        wait_incr_blocked(redis_server)
        assert all(r is None for r in results), \
            "answered despite CLIENT PAUSE: %r" % results
        os.kill(d.pid, sig)
        # listeners are closed at once, while the requests still wait
        wait_for(lambda: port_refuses(d.port), 1.0,
                 what="the port to refuse new connections")
        assert any(r is None for r in results), \
            "requests were answered before the pause ended: %r" % results
        rc, elapsed = wait_exit(d, shutdown_timeout + 2)
        join_all(threads, 5)
    finally:
        unpause_redis(redis_server)
    print("stopped %.2f s after the signal, %.2f s after the pause began"
          % (elapsed, time.monotonic() - t_pause))
    assert rc == 0, "exit status %r; log:\n%s" % (rc, d.log())
    assert elapsed <= shutdown_timeout + 0.5
    for r in results:
        assert not isinstance(r, Exception), \
            "a request in flight failed: %r; log:\n%s" % (r, d.log())
        assert r.status == 200, r
    assert sorted(visits_from_body(r.body) for r in results) == \
        list(range(1, n + 1))
    assert_gone(kids, 1)
    assert redis_server.visits() == n
    assert "killing them" not in d.log()


def test_graceful_stop_kills_workers_at_shutdown_timeout(daemon_factory,
                                                         redis_server):
    """A request that cannot finish does not hold the stop beyond
    shutdown_timeout: the workers get SIGKILL and the master exits 0."""
    shutdown_timeout = 1
    d = daemon_factory(workers=2, shutdown_timeout=shutdown_timeout,
                       redis={"timeout_ms": 60000})
    kids = d.wait_workers(2)
    try:
        pause_redis_writes(redis_server, 30000)
        threads, results = fire_requests(d.port, 2, timeout=10)
        wait_accepted(d, kids, 2)
        wait_incr_blocked(redis_server)
        os.kill(d.pid, signal.SIGTERM)
        rc, elapsed = wait_exit(d, shutdown_timeout + 3)
        join_all(threads, 5)
    finally:
        unpause_redis(redis_server)
    assert rc == 0, d.log()
    assert shutdown_timeout - 0.3 <= elapsed <= shutdown_timeout + 2, elapsed
    assert_gone(kids, 1)
    for r in results:
        assert isinstance(r, Exception) or r.status != 200, r


def test_int_is_a_fast_stop(daemon_factory, redis_server):
    d = daemon_factory(workers=2, shutdown_timeout=30,
                       redis={"timeout_ms": 10000})
    kids = d.wait_workers(2)
    try:
        pause_redis_writes(redis_server, 5000)
        threads, results = fire_requests(d.port, 4)
        wait_accepted(d, kids, 4)
        wait_incr_blocked(redis_server)
        os.kill(d.pid, signal.SIGINT)
        rc, elapsed = wait_exit(d, 5)
        join_all(threads, 5)
    finally:
        unpause_redis(redis_server)
    print("INT: exit %r after %.2f s" % (rc, elapsed))
    assert elapsed <= 1.5, "INT took %.2f s; log:\n%s" % (elapsed, d.log())
    assert rc is not None and rc >= 0, "master killed by signal %r" % -rc
    assert_gone(kids, 0.5)
    assert port_refuses(d.port)


def test_second_term_makes_the_stop_fast(daemon_factory, redis_server):
    d = daemon_factory(workers=2, shutdown_timeout=30,
                       redis={"timeout_ms": 10000})
    kids = d.wait_workers(2)
    try:
        pause_redis_writes(redis_server, 5000)
        threads, results = fire_requests(d.port, 4)
        wait_accepted(d, kids, 4)
        wait_incr_blocked(redis_server)
        os.kill(d.pid, signal.SIGTERM)
        wait_log(d, "graceful stop")
        # the graceful stop is busy with the held requests
        time.sleep(0.5)
        assert d.proc.poll() is None, \
            "master exited although requests were in flight: %s" % d.log()
        assert any(pid_alive(k) for k in kids)
        os.kill(d.pid, signal.SIGTERM)
        rc, elapsed = wait_exit(d, 5)
        join_all(threads, 5)
    finally:
        unpause_redis(redis_server)
    print("second TERM: exit %r after %.2f s" % (rc, elapsed))
    assert elapsed <= 1.5, "second TERM took %.2f s; log:\n%s" % (
        elapsed, d.log())
    assert rc is not None and rc >= 0
    assert_gone(kids, 0.5)
