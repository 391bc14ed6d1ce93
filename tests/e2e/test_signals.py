"""Signals besides those that stop, reload and upgrade: USR1 (reopen
the log files) and WINCH (ignored), alone and pending together; and each
signal sent to every process of the service.

`systemctl kill -s SIG hitcountd` (kill-whom=all by default), `pkill -SIG
hitcountd` and `docker kill` on a process group all reach the workers as
well as the master.  Each signal must leave the service serving with the
right number of workers; TERM, QUIT and INT must still stop it cleanly.
"""

import os
import signal
import time

import pytest

from e2e_helpers import (assert_gone, patience, pid_alive, port_refuses,
                         signal_tree, wait_for)
from e2e_http import serves
from e2e_daemon import barrier, wait_exit, wait_log


# --------------------------------------------------------------------------
# USR1 and WINCH
# --------------------------------------------------------------------------

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
    # a second WINCH, handled: the master went through the whole turn of
    # the first one (a stop or a worker it stopped would be logged by now)
    barrier(d, 2)
    assert d.proc.poll() is None
    assert d.workers() == kids
    serves(d.port)
    for what in ("reload", "stop", "exited", "killed"):
        assert what not in d.log(), d.log()


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
# signals to every process
# --------------------------------------------------------------------------

# What each signal does to the number of workers when sent to all.
SAFE_SIGNALS = [
    ("HUP", 0), ("USR1", 0), ("WINCH", 0), ("TTIN", +1), ("TTOU", -1),
]


def signal_all(d, sig):
    """sig to the master and each of its workers, as systemctl kill does."""
    return signal_tree(d.pid, sig)


def worker_deaths(d):
    log = d.log()
    return [l for l in log.splitlines()
            if "killed by signal" in l or "exited with status" in l]


@pytest.mark.parametrize("name,delta", SAFE_SIGNALS)
def test_signal_to_every_process_keeps_serving(daemon_factory, redis_server,
                                               name, delta):
    sig = getattr(signal, "SIG" + name)
    d = daemon_factory(workers=3)
    kids = d.wait_workers(3)
    signal_all(d, sig)
    if name == "HUP":
        wait_log(d, "reload succeeded")
        wait_for(lambda: len(d.workers()) == 3 and
                 not set(d.workers()) & set(kids), 10,
                 what="the old generation to be replaced")
    elif name == "USR1":
        wait_log(d, "USR1: reopening log files")
    elif name == "WINCH":
        wait_log(d, "WINCH ignored")
    else:
        wait_log(d, "%s: %d workers" % (name, 3 + delta))
        d.wait_workers(3 + delta)
    # a stopped (TTIN/TTOU) or killed worker would show up here
    for k in d.workers():
        state = open("/proc/%d/stat" % k).read().rsplit(")", 1)[1].split()[0]
        assert state in "RS", "worker %d is in state %s" % (k, state)
    assert d.proc.poll() is None
    serves(d.port, 6)
    assert worker_deaths(d) == [], d.log()
    if name in ("USR1", "WINCH"):
        assert d.workers() == kids


def test_hup_to_every_process_repeatedly_during_reloads(daemon_factory,
                                                        redis_server):
    """HUP to all, again and again, including to new workers that have not
    installed their handlers yet: none of them dies of it."""
    d = daemon_factory(workers=2)
    d.wait_workers(2)
    for _ in range(15):
        signal_all(d, signal.SIGHUP)
        time.sleep(0.02)
    wait_for(lambda: "reload" in d.log() and
             len(d.workers()) == 2 and
             d.log().count("reload succeeded") +
             d.log().count("reload: a reload") +
             d.log().count("reload failed") >= 1, 15,
             what="the reloads to settle")
    wait_for(lambda: len(d.workers()) == 2, 15, what="two workers")
    serves(d.port, 6)
    assert worker_deaths(d) == [], d.log()
    assert d.proc.poll() is None


@pytest.mark.parametrize("name", ["TERM", "QUIT", "INT"])
def test_stop_signal_to_every_process_stops_cleanly(daemon_factory,
                                                    redis_server, name):
    d = daemon_factory(workers=3)
    kids = d.wait_workers(3)
    serves(d.port)
    signal_all(d, getattr(signal, "SIG" + name))
    rc, elapsed = wait_exit(d, 5)
    assert rc == 0, d.log()
    assert elapsed < 2, elapsed
    assert_gone(kids, 1)
    assert port_refuses(d.port)
    assert "killing them" not in d.log()
    assert not os.path.exists(d.pidfile)
