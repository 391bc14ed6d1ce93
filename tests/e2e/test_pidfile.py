"""The pidfile: the master's PID, locked (a second instance is refused
and binds nothing), a stale one or one left by kill -9 replaced, removed
on exit.  (A detached daemon's is in test_start.py.)
"""

import fcntl
import os
import signal
import subprocess

import pytest

from e2e_helpers import assert_gone, free_port, pid_alive, port_refuses
from e2e_http import serves
from e2e_daemon import wait_exit, wait_exit_after


def test_pidfile(daemon_factory, redis_server):
    d = daemon_factory()
    with open(d.pidfile) as f:
        assert int(f.read().strip()) == d.pid


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


def test_relative_pidfile_refused(daemon_factory, run_hitcountd,
                                  redis_server):
    """The daemon runs in /, so a relative pidfile would name another file
    than the one an admin reads (USR2 refuses to upgrade, the file is never
    removed): -t and the start refuse it, saying why, and create nothing."""
    d = daemon_factory(wait=False, pidfile="relative.pid")
    rc, _ = wait_exit(d, 5)
    want = "option 'pidfile': 'relative.pid' is not an absolute path"
    assert rc == 1 and want in d.log(), (rc, d.log())
    assert not os.path.exists(os.path.join(d.workdir, "relative.pid")), \
        os.listdir(d.workdir)
    r = run_hitcountd("-t", "-f", d.conf)
    assert r.returncode == 1 and want in r.stderr, (r.returncode, r.stdout,
                                                   r.stderr)
    assert "is valid" not in r.stdout, r.stdout
