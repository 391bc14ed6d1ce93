"""Privileges: a master started as root runs its workers as nobody
(also after a reload, and a replacement), refuses to run them as root
unless allow_root, and needs no more than the capabilities of a systemd
unit.  Under a unit whose bounding set lacks CAP_KILL, the root master
cannot signal workers running as another user: it commands them over
their channels instead, and a worker ends itself at shutdown_timeout.
The access log needs no CAP_DAC_OVERRIDE.  Every test here needs root.
"""

import os
import pwd
import shutil
import signal
import tempfile
import time

import pytest

from e2e_helpers import (assert_gone, patience, pid_alive, port_refuses,
                         proc_ids, require_tool, wait_for)
from e2e_http import fire_requests, join_all, serves
from e2e_daemon import log_lines, wait_exit, wait_log


def require_root():
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it checks that hitcountd started "
                    "as root drops the workers' privileges); euid is %d"
                    % os.geteuid())


def nobody_ids():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


# --------------------------------------------------------------------------
# workers as nobody
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


# --------------------------------------------------------------------------
# the unit's capabilities and the access log
# --------------------------------------------------------------------------

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
