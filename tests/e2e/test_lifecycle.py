"""Lifecycle of the daemon (issue 3): reload, stop, signals, supervision,
pidfile, privilege drop, sd_notify and socket activation.

Everything is checked from outside: HTTP answers, the Redis counter, PIDs
and credentials under /proc, exit statuses, the pidfile and the log the
daemon writes on stderr.  Waits are polls with deadlines.
"""

import fcntl
import os
import pwd
import re
import signal
import socket
import subprocess
import time

import pytest

from e2e_helpers import (assert_gone, children_of, client_sockets, free_port,
                         kill_pid, listeners_of, patience, pid_alive,
                         port_refuses, proc_ids, require_tool, wait_for)
from e2e_http import (WRK, assert_wrk_lost_nothing, fire_requests, get,
                      join_all, serves, visits_from_body)
from e2e_daemon import wait_exit, wait_log


# --------------------------------------------------------------------------
# helpers local to the lifecycle tests
# --------------------------------------------------------------------------

def require_root():
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it checks that hitcountd started "
                    "as root drops the workers' privileges); euid is %d"
                    % os.geteuid())


def log_lines(d, text):
    return [l for l in d.log().splitlines() if text in l]


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


def nobody_ids():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


# --------------------------------------------------------------------------
# 1-3: reload (HUP)
# --------------------------------------------------------------------------

def test_hup_storm_under_wrk_load(daemon_factory, redis_server):
    """20 reloads while wrk keeps 50 keep-alive connections busy: no request
    fails, no connection error, nothing is lost from the count."""
    require_tool(WRK, "wrk")
    n_hups = 20
    d = daemon_factory(workers=2)
    first = d.wait_workers(2)
    wrk = subprocess.Popen(
        [WRK, "-t2", "-c50", "-d15s", "--latency",
         "http://127.0.0.1:%d/" % d.port],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True)
    hup_times = []
    try:
        wait_for(lambda: redis_server.visits() >= 200, patience(10),
                 what="wrk load to start")
        t_start = time.monotonic()
        for i in range(n_hups):
            t0 = time.monotonic()
            os.kill(d.pid, signal.SIGHUP)
            wait_log(d, "reload succeeded", i + 1, timeout=5)
            hup_times.append(time.monotonic() - t0)
            assert d.proc.poll() is None, "master died during reload %d" % i
            time.sleep(max(0.0, 0.6 - (time.monotonic() - t0)))
        hup_phase = time.monotonic() - t_start
        wrk_running_after_hups = wrk.poll() is None
        out, _ = wrk.communicate(timeout=40)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    print(out)
    print("HUP phase %.1f s, slowest reload %.2f s, wrk still running after "
          "the last HUP: %s" % (hup_phase, max(hup_times),
                                wrk_running_after_hups))
    assert wrk.returncode == 0, out
    log = d.log()
    assert_wrk_lost_nothing(out, redis_server.visits(), 50, log)
    assert log.count("reload succeeded") == n_hups, log[-6000:]
    assert "reload failed" not in log
    assert "killed by signal" not in log and \
        "exited with status" not in log, "unexpected worker deaths:\n%s" % log
    assert d.proc.poll() is None
    last = wait_for(lambda: len(d.workers()) == 2 and d.workers(),
                    patience(10), what="the old generations to exit")
    assert not set(last) & set(first), \
        "workers not replaced by the reloads: %r -> %r" % (first, last)
    serves(d.port)


def test_hup_with_broken_config_keeps_workers(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    kids = d.wait_workers(2)
    serves(d.port)
    good = d.config_text()
    bad_line = good.count("\n") + 1
    d.write_config_text(good + "no_such_option = 1\n")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload failed")
    failed = log_lines(d, "reload failed")
    assert len(failed) == 1, failed
    assert "%s:%d" % (d.conf, bad_line) in failed[0], \
        "the error does not name %s:%d: %r" % (d.conf, bad_line, failed[0])
    assert "no_such_option" in failed[0], failed[0]
    # the same workers keep serving
    serves(d.port, 5)
    assert d.workers() == kids
    assert d.proc.poll() is None
    assert "reload succeeded" not in d.log()

    # an out-of-range value: also refused, with its line
    lines = good.splitlines()
    wline = [i for i, l in enumerate(lines) if l.startswith("workers")][0]
    lines[wline] = "workers = 999"
    d.write_config_text("\n".join(lines) + "\n")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload failed", 2)
    failed = log_lines(d, "reload failed")
    assert "%s:%d" % (d.conf, wline + 1) in failed[1], failed[1]
    serves(d.port, 3)
    assert d.workers() == kids

    # once fixed, a reload goes through
    d.write_config_text(good)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    new = wait_for(lambda: len(d.workers()) == 2 and
                   not set(d.workers()) & set(kids) and d.workers(),
                   patience(10), what="the new generation alone")
    assert len(new) == 2
    serves(d.port)


def test_hup_changes_listen(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    gen1 = d.wait_workers(2)
    old_port = d.port
    new_port = free_port()
    assert port_refuses(new_port)
    d.reconfigure(listen=["127.0.0.1:%d" % new_port])
    os.kill(d.pid, signal.SIGHUP)
    # the old port serves until the reload; the first moment it refuses,
    # the new one must already accept (bound before the old one closed)
    try:
        wait_for(lambda: port_refuses(old_port), patience(5),
                 what="old port %d to refuse connections" % old_port)
    except AssertionError as exc:
        raise AssertionError(
            "%s: it still accepts connections; processes holding a "
            "listening socket on it: %r (master %d, workers now %r); "
            "log:\n%s" % (exc, listeners_of(old_port), d.pid, d.workers(),
                           d.log()[-3000:]))
    r = get(new_port, timeout=5)
    assert r.status == 200, r
    wait_log(d, "reload succeeded")
    serves(new_port)
    assert port_refuses(old_port)
    wait_for(lambda: len(d.workers()) == 2 and
             not set(d.workers()) & set(gen1), patience(10),
             what="generation 2 alone")
    assert port_refuses(old_port)


def test_hup_changes_workers(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    gen1 = d.wait_workers(2)
    d.reconfigure(workers=3)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    gen2 = wait_for(lambda: len(d.workers()) == 3 and
                    not set(d.workers()) & set(gen1) and d.workers(),
                    patience(10), what="3 workers of generation 2 alone")
    serves(d.port, 6)
    d.reconfigure(workers=1)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded", 2)
    wait_for(lambda: len(d.workers()) == 1 and
             not set(d.workers()) & set(gen2), patience(10),
             what="1 worker of generation 3 alone")
    serves(d.port)


# --------------------------------------------------------------------------
# 4-5: stopping (TERM, QUIT, INT, TERM twice)
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# 6-7: supervision (CHLD, PDEATHSIG, crash storm)
# --------------------------------------------------------------------------

def test_killed_worker_is_replaced_within_one_second(daemon_factory,
                                                     redis_server):
    d = daemon_factory(workers=1)
    [old] = d.wait_workers(1)
    serves(d.port)
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    # the only worker is gone: this request waits in the listen backlog
    # until the replacement accepts it
    r = get(d.port, timeout=5)
    elapsed = time.monotonic() - t0
    assert r.status == 200, r
    new = d.workers()
    assert len(new) == 1 and new[0] != old, (old, new)
    assert elapsed <= 1.0, "replacement served after %.2f s" % elapsed
    wait_log(d, "worker %d killed by signal 9" % old)
    assert d.proc.poll() is None
    serves(d.port)


def test_kill_9_of_master_takes_workers_down(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    kids = d.wait_workers(2)
    serves(d.port)
    t0 = time.monotonic()
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(5)
    assert_gone(kids, 2)
    print("workers gone %.2f s after kill -9 of the master"
          % (time.monotonic() - t0))
    assert port_refuses(d.port)


def test_crash_storm_gives_up(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    killed = []
    t0 = time.monotonic()
    for i in range(5):
        kids = wait_for(lambda: len(d.workers()) == 2 and
                        not set(d.workers()) & set(killed) and d.workers(),
                        patience(3), what="2 workers before kill %d" % (i + 1))
        os.kill(kids[0], signal.SIGKILL)
        killed.append(kids[0])
    storm = time.monotonic() - t0
    assert storm < 10, "the 5 kills took %.1f s" % storm
    rc, _ = wait_exit(d, 5)
    assert rc != 0, "master gave up with exit status 0; log:\n%s" % d.log()
    assert "giving up" in d.log(), d.log()
    assert_gone(kids, 2)
    assert port_refuses(d.port)


def test_four_crashes_are_tolerated(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    killed = []
    for i in range(4):
        kids = wait_for(lambda: len(d.workers()) == 2 and
                        not set(d.workers()) & set(killed) and d.workers(),
                        patience(3), what="2 workers before kill %d" % (i + 1))
        os.kill(kids[0], signal.SIGKILL)
        killed.append(kids[0])
    wait_for(lambda: len(d.workers()) == 2 and
             not set(d.workers()) & set(killed), patience(3),
             what="replacement of the 4th worker")
    assert d.proc.poll() is None, d.log()
    assert "giving up" not in d.log()
    serves(d.port)


# --------------------------------------------------------------------------
# 8: other signals
# --------------------------------------------------------------------------

def barrier(d, n):
    """Make sure the master handled every signal sent before: WINCH is
    handled after TTIN/TTOU in the same pass; wait for its n-th log line."""
    os.kill(d.pid, signal.SIGWINCH)
    wait_log(d, "WINCH ignored", n)


def test_ttin_ttou_change_worker_count(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    two = d.wait_workers(2)
    os.kill(d.pid, signal.SIGTTIN)
    three = d.wait_workers(3)
    assert set(two) < set(three), "TTIN replaced workers: %r -> %r" % (
        two, three)
    serves(d.port, 6)
    os.kill(d.pid, signal.SIGTTOU)
    d.wait_workers(2)
    os.kill(d.pid, signal.SIGTTOU)
    [one] = d.wait_workers(1)
    serves(d.port)
    # the minimum is one worker
    os.kill(d.pid, signal.SIGTTOU)
    barrier(d, 1)
    time.sleep(0.3)
    assert d.workers() == [one]
    serves(d.port)
    os.kill(d.pid, signal.SIGTTIN)
    d.wait_workers(2)
    assert d.proc.poll() is None
    serves(d.port)


def test_usr1_keeps_workers(daemon_factory, redis_server):
    # log_level debug: each worker logs that it handled USR1
    d = daemon_factory(workers=2, log_level="debug")
    kids = d.wait_workers(2)
    os.kill(d.pid, signal.SIGUSR1)
    wait_log(d, "USR1")
    barrier(d, 1)            # USR1 was forwarded before this point
    # each worker handled it (and lived on)
    for k in kids:
        wait_log(d, "hitcountd[%d]: debug: access log reopened" % k)
    assert d.workers() == kids
    assert all(pid_alive(k) for k in kids)
    serves(d.port, 6)
    assert "killed by signal" not in d.log()
    # also sent to a worker directly
    os.kill(kids[0], signal.SIGUSR1)
    wait_log(d, "hitcountd[%d]: debug: access log reopened" % kids[0],
             2)
    assert d.workers() == kids
    serves(d.port, 4)


def test_winch_is_ignored(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    kids = d.wait_workers(2)
    os.kill(d.pid, signal.SIGWINCH)
    wait_log(d, "WINCH ignored")
    time.sleep(0.3)
    assert d.proc.poll() is None
    assert d.workers() == kids
    serves(d.port)
    assert "reload" not in d.log()


def test_usr1_and_winch_together_are_both_handled(daemon_factory,
                                                  redis_server):
    """Both signals pending at once (master stopped meanwhile): each one
    is handled, neither swallows the other.  (Not TTIN: SIGCONT discards
    a pending TTIN, as it does every stop signal.)"""
    d = daemon_factory(workers=2)
    kids = d.wait_workers(2)
    os.kill(d.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: open("/proc/%d/stat" % d.pid).read()
                 .rsplit(")", 1)[1].split()[0] == "T", patience(2),
                 what="master stopped")
        os.kill(d.pid, signal.SIGUSR1)
        os.kill(d.pid, signal.SIGWINCH)
    finally:
        os.kill(d.pid, signal.SIGCONT)
    wait_log(d, "USR1: reopening log files")
    wait_log(d, "WINCH ignored")
    assert d.workers() == kids
    serves(d.port)


# --------------------------------------------------------------------------
# 9: pidfile
# --------------------------------------------------------------------------

def test_pidfile_is_locked_and_second_instance_refused(daemon_factory,
                                                       redis_server):
    d = daemon_factory(workers=2)
    kids = d.wait_workers(2)
    with open(d.pidfile) as f:
        assert int(f.read().strip()) == d.pid
    fd = os.open(d.pidfile, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)

    other_port = free_port()
    d2 = daemon_factory(wait=False, workers=2, pidfile=d.pidfile,
                        listen=["127.0.0.1:%d" % other_port])
    rc, elapsed = wait_exit(d2, 5)
    assert rc == 1, "second instance: status %r; log:\n%s" % (rc, d2.log())
    assert "another hitcountd is running" in d2.log(), d2.log()
    assert port_refuses(other_port), "the refused instance bound its port"
    # the first instance and its pidfile are untouched
    with open(d.pidfile) as f:
        assert int(f.read().strip()) == d.pid
    assert d.workers() == kids
    serves(d.port)


def test_stale_pidfile_is_replaced(daemon_factory, redis_server, tmp_path):
    pidfile = str(tmp_path / "stale.pid")
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not pid_alive(dead.pid)
    with open(pidfile, "w") as f:
        f.write("%d\n" % dead.pid)
    d = daemon_factory(workers=2, pidfile=pidfile)
    with open(pidfile) as f:
        assert f.read() == "%d\n" % d.pid
    serves(d.port)


def test_pidfile_left_by_kill_9_is_reused(daemon_factory, redis_server,
                                          tmp_path):
    pidfile = str(tmp_path / "crash.pid")
    d = daemon_factory(workers=1, pidfile=pidfile)
    kids = d.wait_workers(1)
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(5)
    assert_gone(kids, 2)
    with open(pidfile) as f:
        assert int(f.read()) == d.pid   # left behind by the dead master
    d2 = daemon_factory(workers=1, pidfile=pidfile)
    with open(pidfile) as f:
        assert int(f.read()) == d2.pid
    serves(d2.port)


def test_pidfile_removed_on_exit(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    assert os.path.exists(d.pidfile)
    rc, _ = wait_exit_after(d, signal.SIGTERM, 10)
    assert rc == 0
    assert not os.path.exists(d.pidfile), "pidfile left after TERM"

    d2 = daemon_factory(workers=2)
    rc, _ = wait_exit_after(d2, signal.SIGINT, 5)
    assert not os.path.exists(d2.pidfile), "pidfile left after INT"


def wait_exit_after(d, sig, timeout):
    kids = d.workers()
    os.kill(d.pid, sig)
    res = wait_exit(d, timeout)
    assert_gone(kids, 2)
    return res


def test_detached_daemon_keeps_lock_and_removes_pidfile(daemon_factory,
                                                        redis_server):
    """Without -D: the parent returns 0 promptly; the lock taken before the
    fork still refuses a second instance; the pidfile goes on exit."""
    d = daemon_factory(wait=False, args=(), workers=2)
    rc, elapsed = wait_exit(d, 5)
    assert rc == 0, d.log()
    assert elapsed < 2, "the parent took %.1f s to return" % elapsed
    mpid = wait_for(lambda: int(open(d.pidfile).read().strip()),
                    patience(5), what="pidfile of the detached daemon")
    kids = []
    try:
        wait_for(lambda: get(d.port, "/healthz", timeout=1).status == 200,
                 patience(5), what="/healthz of the detached daemon")
        kids = wait_for(lambda: len(children_of(mpid)) == 2 and
                        children_of(mpid), patience(5), what="2 workers")
        d2 = daemon_factory(wait=False, workers=1, pidfile=d.pidfile,
                            listen=["127.0.0.1:%d" % free_port()])
        rc2, _ = wait_exit(d2, 5)
        assert rc2 == 1, d2.log()
        assert "another hitcountd is running (pid %d)" % mpid in d2.log(), \
            d2.log()
        os.kill(mpid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(mpid), patience(10),
                 what="detached daemon to exit on SIGTERM")
        assert_gone(kids, 2)
        assert not os.path.exists(d.pidfile), "pidfile left by the daemon"
    finally:
        for p in [mpid] + kids:
            if pid_alive(p):
                kill_pid(p)


# --------------------------------------------------------------------------
# 10: privilege drop (root only)
# --------------------------------------------------------------------------

def test_workers_run_as_nobody(daemon_factory, redis_server):
    require_root()
    uid, gid = nobody_ids()
    d = daemon_factory(workers=2)           # user defaults to "nobody"
    kids = d.wait_workers(2)
    master = proc_ids(d.pid)
    assert master["Uid"] == [0, 0, 0, 0], master
    for k in kids:
        ids = proc_ids(k)
        assert ids["Uid"] == [uid] * 4, "worker %d: %r" % (k, ids)
        assert ids["Gid"] == [gid] * 4, "worker %d: %r" % (k, ids)
        assert ids["Groups"] == [gid], "worker %d: %r" % (k, ids)
    serves(d.port)
    # also after a reload, and for a replacement worker
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    gen2 = wait_for(lambda: len(d.workers()) == 2 and
                    not set(d.workers()) & set(kids) and d.workers(),
                    patience(10), what="generation 2")
    os.kill(gen2[0], signal.SIGKILL)
    gen3 = wait_for(lambda: len(d.workers()) == 2 and
                    gen2[0] not in d.workers() and d.workers(), patience(3),
                    what="replacement worker")
    for k in gen3:
        assert proc_ids(k)["Uid"] == [uid] * 4, k
    assert proc_ids(d.pid)["Uid"] == [0, 0, 0, 0]
    serves(d.port)


@pytest.mark.parametrize("user", ["", "root"])
def test_workers_as_root_refused(daemon_factory, redis_server, user):
    require_root()
    d = daemon_factory(wait=False, workers=2, user=user)
    rc, _ = wait_exit(d, 5)
    assert rc == 1, "status %r; log:\n%s" % (rc, d.log())
    assert "refusing to run workers as root" in d.log(), d.log()
    assert port_refuses(d.port)
    assert not os.path.exists(d.pidfile)


def test_reload_to_root_workers_refused(daemon_factory, redis_server):
    require_root()
    d = daemon_factory(workers=2)
    kids = d.wait_workers(2)
    d.reconfigure(user="root")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload failed")
    assert "refusing to run workers as root" in \
        log_lines(d, "reload failed")[0]
    assert d.workers() == kids
    serves(d.port)


@pytest.mark.parametrize("user", ["", "root"])
def test_allow_root_runs_workers_as_root(daemon_factory, redis_server, user):
    require_root()
    d = daemon_factory(workers=2, user=user, allow_root=True)
    kids = d.wait_workers(2)
    for k in kids:
        assert proc_ids(k)["Uid"] == [0, 0, 0, 0], k
    serves(d.port)


# --------------------------------------------------------------------------
# 11: sd_notify and socket activation
# --------------------------------------------------------------------------

class NotifySocket:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []

    def next(self, timeout=5):
        """The next message (deadline: patience(timeout))."""
        timeout = patience(timeout)
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError("no sd_notify message within %.1f s "
                                 "(so far: %r)" % (timeout, self.messages))
        msg = data.decode()
        self.messages.append(msg)
        return msg

    def pending(self, wait=0.3):
        """Messages that arrive within wait seconds."""
        out = []
        self.sock.settimeout(wait)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except socket.timeout:
            pass
        self.messages.extend(out)
        return out

    def close(self):
        self.sock.close()


def test_sd_notify(daemon_factory, redis_server, tmp_path):
    path = str(tmp_path / "notify.sock")
    ns = NotifySocket(path)
    try:
        d = daemon_factory(wait=False, workers=2,
                           env={"NOTIFY_SOCKET": path})
        msg = ns.next(10)
        assert msg == "READY=1\nMAINPID=%d" % d.pid, msg
        # READY means serving
        r = get(d.port, timeout=5)
        assert r.status == 200, r
        assert ns.next() == "STATUS=2 workers serving"

        os.kill(d.pid, signal.SIGHUP)
        assert ns.next() == "RELOADING=1"
        assert ns.next(10) == "READY=1"
        wait_log(d, "reload succeeded")
        # systemctl status shows how the last reload went
        assert ns.next() == ("STATUS=2 workers serving; "
                             "reload succeeded (generation 1)")
        serves(d.port)

        # a failed reload also ends with READY=1, and says why
        good = d.config_text()
        d.write_config_text(good + "bogus = 1\n")
        os.kill(d.pid, signal.SIGHUP)
        assert ns.next() == "RELOADING=1"
        assert ns.next() == "READY=1"
        status = ns.next()
        assert status.startswith("STATUS=2 workers serving; reload failed: "), status
        assert "bogus" in status, status
        wait_log(d, "reload failed")
        d.write_config_text(good)

        kids = d.workers()
        os.kill(d.pid, signal.SIGTERM)
        assert ns.next() == "STOPPING=1"
        rc, _ = wait_exit(d, 10)
        assert rc == 0
        assert_gone(kids, 1)
        assert ns.pending() == [], ns.messages
    finally:
        ns.close()


def test_no_notify_socket_no_problem(daemon_factory, redis_server):
    """NOTIFY_SOCKET naming nothing: the daemon serves and stops normally."""
    d = daemon_factory(workers=1, env={"NOTIFY_SOCKET": "/nonexistent/x"})
    serves(d.port)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    serves(d.port)


def activated_daemon(daemon_factory, **overrides):
    """Start hitcountd the way systemd does for socket activation: a
    listening socket as fd 3, LISTEN_PID = the daemon's own pid."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    act_port = lsock.getsockname()[1]
    fd = lsock.fileno()
    # the wrapper execs hitcountd, so LISTEN_PID (its own pid) is the daemon's
    wrapper = ("import os, sys\n"
               "fd = int(sys.argv[1])\n"
               "if fd != 3:\n"
               "    os.dup2(fd, 3)\n"
               "    os.close(fd)\n"
               "os.environ['LISTEN_PID'] = str(os.getpid())\n"
               "os.environ['LISTEN_FDS'] = '1'\n"
               "os.execv(sys.argv[2], sys.argv[2:])\n")
    conf_port = free_port()
    try:
        d = daemon_factory(wait=False,
                           prefix=["/usr/bin/python3", "-c", wrapper,
                                   str(fd)],
                           pass_fds=(fd,),
                           listen=["127.0.0.1:%d" % conf_port], **overrides)
    finally:
        lsock.close()       # only the daemon holds the socket now
    d.port = act_port
    d.wait_healthy()
    return d, act_port, conf_port


def test_socket_activation(daemon_factory, redis_server):
    d, act_port, conf_port = activated_daemon(daemon_factory, workers=2)
    kids = d.wait_workers(2)
    serves(act_port)
    assert port_refuses(conf_port), \
        "the configured listen address was bound despite socket activation"
    assert "socket activation" in d.log()
    assert redis_server.visits() == 3
    # a reload keeps serving the inherited socket
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    wait_for(lambda: len(d.workers()) == 2 and
             not set(d.workers()) & set(kids), patience(10),
             what="generation 2")
    serves(act_port)
    assert port_refuses(conf_port)
    kids = d.workers()
    rc, _ = wait_exit_after(d, signal.SIGTERM, 10)
    assert rc == 0
    assert port_refuses(act_port)


def test_listen_pid_of_another_process_is_ignored(daemon_factory,
                                                  redis_server):
    d = daemon_factory(workers=1, env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    serves(d.port)
    assert "socket activation" not in d.log()
