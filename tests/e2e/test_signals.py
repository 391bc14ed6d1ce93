"""Signals sent to every process of the service, and a master that may not
signal its workers.

`systemctl kill -s SIG hitcountd` (kill-whom=all by default), `pkill -SIG
hitcountd` and `docker kill` on a process group all reach the workers as
well as the master.  Each signal must leave the service serving with the
right number of workers; TERM, QUIT and INT must still stop it cleanly.
Under a systemd unit whose bounding set lacks CAP_KILL, the root master
cannot signal workers running as another user: it commands them over
their channels instead, and a worker ends itself at shutdown_timeout.
"""

import os
import shutil
import signal
import tempfile
import time

import pytest

from e2e_helpers import (assert_gone, pid_alive, port_refuses, require_tool,
                         signal_tree, wait_for)
from e2e_http import fire_requests, join_all, serves
from e2e_daemon import wait_exit, wait_log

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


# --------------------------------------------------------------------------
# a master without CAP_KILL (a systemd unit's bounding set)
# --------------------------------------------------------------------------

# The capabilities the unit had: no CAP_KILL.
NO_KILL = ["--bounding-set=-all,+setuid,+setgid,+net_bind_service",
           "--inh-caps=-all", "--no-new-privs"]


def setpriv_prefix(caps):
    """setpriv with the capability options caps: it execs the daemon."""
    return [require_tool("setpriv", "util-linux")] + caps


def no_kill_daemon(daemon_factory, **overrides):
    if os.geteuid() != 0:
        pytest.fail("needs root: the master must be root without CAP_KILL")
    return daemon_factory(prefix=setpriv_prefix(NO_KILL), user="nobody",
                          **overrides)


def master_caps(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return None


def test_master_without_cap_kill_really_lacks_it(daemon_factory,
                                                 redis_server):
    """The setup of the tests below: the master is root, and kill() of a
    worker running as nobody fails with EPERM."""
    d = no_kill_daemon(daemon_factory, workers=1)
    assert not master_caps(d.pid) & (1 << 5), "CAP_KILL is effective"
    assert os.stat("/proc/%d" % d.pid).st_uid == 0


def test_reload_without_cap_kill_replaces_workers(daemon_factory,
                                                  redis_server):
    d = no_kill_daemon(daemon_factory, workers=2)
    old = d.wait_workers(2)
    t0 = time.monotonic()
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    wait_for(lambda: not any(pid_alive(k) for k in old), 5,
             what="the old workers to exit")
    print("reload without CAP_KILL: old workers gone after %.2f s"
          % (time.monotonic() - t0))
    assert len(d.workers()) == 2
    assert "Operation not permitted" not in d.log(), d.log()
    serves(d.port, 4)
    # TTOU stops one worker the same way
    kids = d.workers()
    os.kill(d.pid, signal.SIGTTOU)
    d.wait_workers(1)
    assert sum(pid_alive(k) for k in kids) == 1


def test_stop_without_cap_kill_is_quick_and_clean(daemon_factory,
                                                  redis_server):
    d = no_kill_daemon(daemon_factory, workers=2)
    kids = d.wait_workers(2)
    serves(d.port)
    os.kill(d.pid, signal.SIGTERM)
    rc, elapsed = wait_exit(d, 5)
    assert rc == 0, d.log()
    assert elapsed < 2, elapsed
    assert_gone(kids, 1)
    assert "Operation not permitted" not in d.log(), d.log()
    assert "killing them" not in d.log(), d.log()


def test_worker_ends_itself_at_shutdown_timeout_without_cap_kill(
        daemon_factory, redis_server):
    """A request held by Redis keeps a worker busy past shutdown_timeout;
    the master may not kill it, so the worker must end itself."""
    d = no_kill_daemon(daemon_factory, workers=1, shutdown_timeout=1,
                       redis={"timeout_ms": 60000})
    kids = d.wait_workers(1)
    redis_server.cli("CLIENT", "PAUSE", "20000", "WRITE")
    try:
        threads, results = fire_requests(d.port, 2)
        wait_for(lambda: "blocked_clients:0" not in
                 redis_server.cli("INFO", "clients"), 5,
                 what="an INCR held by CLIENT PAUSE")
        os.kill(d.pid, signal.SIGTERM)
        rc, elapsed = wait_exit(d, 6)
    finally:
        redis_server.cli("CLIENT", "UNPAUSE", check=False)
    assert rc == 0, d.log()
    assert elapsed < 1 + 2.5, elapsed
    assert_gone(kids, 1)
    assert "shutdown_timeout reached" in d.log(), d.log()
    join_all(threads, 5)
    for r in results:
        assert isinstance(r, Exception) or r.status != 200, r


# The unit's bounding set (etc/hitcountd.service.in): no CAP_DAC_OVERRIDE.
UNIT_CAPS = ["--bounding-set=-all,+setuid,+setgid,+net_bind_service,+kill,"
             "+chown", "--inh-caps=-all", "--no-new-privs"]


def test_access_log_with_the_units_capabilities(daemon_factory,
                                                redis_server, request):
    """The access log needs no CAP_DAC_OVERRIDE: the master owns the file,
    the workers write it through its group, before and after dropping
    root, across a restart and a reopen."""
    if os.geteuid() != 0:
        pytest.fail("needs root")
    # pytest's tmp_path is 0700 all the way: a worker that dropped root
    # could not reach it to reopen the file
    logdir = tempfile.mkdtemp(prefix="hitcountd-caps-")
    os.chmod(logdir, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(logdir, ignore_errors=True))
    path = os.path.join(logdir, "access.log")
    for round_ in range(2):          # the second start finds the file
        d = daemon_factory(prefix=setpriv_prefix(UNIT_CAPS), user="nobody",
                           workers=2, access_log=path)
        serves(d.port, 3)
        if round_ == 1:
            os.rename(path, path + ".1")
            os.kill(d.pid, signal.SIGUSR1)
            wait_for(lambda: os.path.exists(path), 5,
                     what="the master to create the file again")
            wait_for(lambda: all(path in [os.readlink("/proc/%d/fd/%s"
                                                      % (w, fd))
                                          for fd in os.listdir(
                                              "/proc/%d/fd" % w)]
                                 for w in d.workers()), 5,
                     what="the workers to reopen the file")
            serves(d.port, 3)
        assert d.stop() == 0, d.log()
        assert "Permission denied" not in d.log(), d.log()
    lines = open(path).read().splitlines() + \
        open(path + ".1").read().splitlines()
    assert len([l for l in lines if '"GET / HTTP/1.1" 200' in l]) == 9, lines
