"""Taking new connections (issue 22 item 3): one worker woken per new
connection, counted by hitcountd_accept_wakeups_total, and every
connection answered; with a new connection per request, reloads (HUP)
and TTIN/TTOU lose none (test_upgrade.py does the same for USR2).
"""

import os
import signal
import subprocess

from e2e_daemon import wait_all_workers_ready, wait_log
from e2e_helpers import patience, require_tool, wait_for
from e2e_http import (WRK, assert_wrk_lost_nothing, get, serves,
                      wrk_output)
from e2e_metrics import scrape


def wakeups(port):
    m = scrape(port)
    return (m.get("hitcountd_accept_wakeups_total"),
            m.get("hitcountd_accept_empty_wakeups_total"))


def close_per_request(port, n):
    """n requests, each on a new connection, one after the other; all 200."""
    for i in range(n):
        r = get(port, "/", timeout=5, headers={"Connection": "close"})
        assert r.status == 200, "request %d: %r" % (i, r)


def sleeps(pids):
    """Voluntary context switches of every thread of the processes pids:
    how often they blocked, so how often the kernel woke them."""
    total = 0
    for pid in pids:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    return total


def test_one_worker_woken_per_connection(daemon_factory, redis_server):
    """With 8 workers, N new connections one after the other wake the
    workers about N times in all, by the daemon's count and by the
    kernel's (the workers' threads blocked and were woken about 3 times a
    connection: the accept, the request, the Redis reply), and every one
    is answered.  The old accept path, an exclusive set watched through
    libevent's epoll, woke every worker for every connection: about 9
    sleeps a connection."""
    n = 200
    d = daemon_factory(workers=8)
    kids = wait_all_workers_ready(d, 8)
    w0, e0 = wakeups(d.port)
    v0 = redis_server.visits()
    s0 = sleeps(kids)
    close_per_request(d.port, n)
    s1 = sleeps(kids)
    w1, e1 = wakeups(d.port)
    # the scrapes are connections too: one of them counted
    woken, empty = w1 - w0, e1 - e0
    print("%d connections: %d wakeups, %d empty, %.2f sleeps each" % (
        n + 1, woken, empty, (s1 - s0) / n))
    slack = n // 20 + 8
    assert woken <= n + 1 + slack, (woken, empty)
    assert empty <= slack, (woken, empty)
    assert woken >= n, (woken, empty)
    assert (s1 - s0) / n < 6, "%.2f sleeps a connection" % ((s1 - s0) / n)
    assert redis_server.visits() - v0 == n


def wrk_close(port, seconds, conns=20):
    require_tool(WRK, "wrk")
    return subprocess.Popen(
        [WRK, "-t2", "-c%d" % conns, "-d%ds" % seconds, "-H",
         "Connection: close", "http://127.0.0.1:%d/" % port],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True)


def test_reload_and_ttou_with_new_connections_lose_nothing(daemon_factory,
                                                           redis_server):
    """A new connection per request while HUP replaces every worker three
    times and TTIN/TTOU add and stop one: wrk sees no error, and Redis
    counted every answer."""
    d = daemon_factory(workers=2)
    d.wait_workers(2)
    wrk = wrk_close(d.port, 8)
    try:
        wait_for(lambda: redis_server.visits() >= 200, patience(10),
                 what="wrk load to start")
        for i in range(3):
            os.kill(d.pid, signal.SIGHUP)
            wait_log(d, "reload succeeded", i + 1)
        os.kill(d.pid, signal.SIGTTIN)
        d.wait_workers(3)
        os.kill(d.pid, signal.SIGTTOU)
        wait_for(lambda: len(d.workers()) == 2, patience(5),
                 what="TTOU to stop a worker")
    finally:
        out = wrk_output(wrk)
    assert wrk.returncode == 0, out
    assert_wrk_lost_nothing(out, redis_server.visits(), 20, d.log())
    log = d.log()
    assert "killed by signal" not in log and \
        "exited with status" not in log, log[-3000:]
    serves(d.port)
