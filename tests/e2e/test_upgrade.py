"""Binary upgrade on USR2: the binary on disk replaces the running one
without losing a request.

Each test runs a copy of the daemon from its own directory, so that it can
replace that file as a package upgrade does (a new file renamed over the
old one).  The new master is a child of the old one until the old one
exits; the tests stop it by the pid it writes into the pidfile.
"""

import os
import shutil
import signal
import subprocess

import pytest

from e2e_helpers import (assert_gone, children_of, made_by, patience,
                         pid_alive, require_tool, signal_tree, wait_for)
from e2e_http import WRK, assert_wrk_lost_nothing, serves, wrk_output
from e2e_daemon import wait_exit, wait_log


@pytest.fixture
def copied_bin(hitcountd_bin, tmp_path):
    d = tmp_path / "sbin"
    d.mkdir()
    path = str(d / "hitcountd")
    shutil.copy2(hitcountd_bin, path)
    return path


def replace_file(path, source=None, text=None, mode=0o755):
    """Put a new file at path the way package managers do: write a
    temporary file beside it, then rename it over the old one."""
    tmp = path + ".new"
    if source is not None:
        shutil.copy2(source, tmp)
    else:
        with open(tmp, "w") as f:
            f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def read_pid(path):
    try:
        with open(path) as f:
            s = f.read().strip()
    except FileNotFoundError:
        return None
    return int(s) if s.isdigit() else None


class NewMaster:
    """The master a USR2 started, found through the pidfile; stopped by
    its pid at the end of the test."""

    def __init__(self, d):
        self.d = d
        self.pid = None

    def wait(self, timeout=15):
        self.pid = wait_for(
            lambda: (read_pid(self.d.pidfile) or self.d.pid) != self.d.pid
            and read_pid(self.d.pidfile), timeout,
            what="a new master's pid in %s" % self.d.pidfile)
        return self.pid

    def stop(self):
        if self.pid is None or not pid_alive(self.pid):
            return
        kids = children_of(self.pid)
        os.kill(self.pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(self.pid) or
                 open("/proc/%d/stat" % self.pid).read()
                 .rsplit(")", 1)[1].split()[0] == "Z", 10,
                 what="the new master to exit")
        assert_gone(kids, 5)


@pytest.fixture
def new_master():
    yield from made_by(NewMaster, NewMaster.stop)


@pytest.mark.parametrize("close", [False, True],
                         ids=["keepalive", "connection-per-request"])
def test_upgrade_under_wrk_load_loses_nothing(daemon_factory, redis_server,
                                              copied_bin, new_master,
                                              hitcountd_bin, close):
    require_tool(WRK, "wrk")
    d = daemon_factory(workers=2, binary=copied_bin)
    old_workers = d.wait_workers(2)
    old_exe = os.stat("/proc/%d/exe" % d.pid).st_ino
    wrk = subprocess.Popen(
        [WRK, "-t2", "-c50", "-d6s"] +
        (["-H", "Connection: close"] if close else []) +
        ["http://127.0.0.1:%d/" % d.port],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True)
    nm = new_master(d)
    try:
        wait_for(lambda: redis_server.visits() >= 200, 10,
                 what="wrk load to start")
        replace_file(copied_bin, source=hitcountd_bin)
        os.kill(d.pid, signal.SIGUSR2)
        newpid = nm.wait()
        rc, _ = wait_exit(d, 15)
    finally:
        out = wrk_output(wrk, timeout=30)
    assert rc == 0, d.log()
    assert_wrk_lost_nothing(out, redis_server.visits(), 50, d.log())
    # the new master runs the new file, with workers of its own
    assert os.stat("/proc/%d/exe" % newpid).st_ino == \
        os.stat(copied_bin).st_ino
    assert os.stat(copied_bin).st_ino != old_exe
    assert len(children_of(newpid)) == 2
    assert_gone(old_workers, 5)
    assert not os.path.exists(d.pidfile + ".oldbin")
    assert read_pid(d.pidfile) == newpid
    log = d.log()
    assert "binary upgrade: new master %d serves" % newpid in log, log
    wait_log(d, "binary upgrade complete: the previous master has exited")
    assert "killed by signal" not in log and "exited with status" not in log
    serves(d.port)
    # the new master reloads and upgrades like the first one
    os.kill(newpid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    serves(d.port)


@pytest.mark.parametrize("broken", ["not executable", "exits at once"])
def test_failed_upgrade_leaves_the_old_master_serving(
        daemon_factory, redis_server, copied_bin, broken):
    d = daemon_factory(workers=2, binary=copied_bin)
    kids = d.wait_workers(2)
    if broken == "not executable":
        replace_file(copied_bin, text="\x7fELF garbage\n", mode=0o755)
    else:
        replace_file(copied_bin, text="#!/bin/sh\nexit 1\n", mode=0o755)
    os.kill(d.pid, signal.SIGUSR2)
    wait_log(d, "binary upgrade failed", timeout=10)
    assert d.proc.poll() is None
    assert read_pid(d.pidfile) == d.pid
    assert not os.path.exists(d.pidfile + ".oldbin")
    assert [k for k in d.workers() if k in kids] == kids
    serves(d.port, 4)
    # and it stops as usual afterwards
    d.stop()
    assert d.returncode == 0


def test_usr2_to_every_process_upgrades_once(daemon_factory, redis_server,
                                             copied_bin, new_master):
    """systemctl kill -s USR2: the master upgrades once, and neither a
    worker nor the new master dies of the USR2 that reaches it too."""
    d = daemon_factory(workers=2, binary=copied_bin)
    d.wait_workers(2)
    nm = new_master(d)
    # for a second, the new master and its workers get USR2 as they appear
    signal_tree(d.pid, signal.SIGUSR2, seconds=1.0)
    newpid = nm.wait()
    rc, _ = wait_exit(d, 15)
    assert rc == 0, d.log()
    log = d.log()
    assert log.count("binary upgrade: started") == 1, log
    assert "killed by signal" not in log and "exited with status" not in log
    wait_for(lambda: len(children_of(newpid)) == 2, 5,
             what="the new master's workers")
    serves(d.port)


def test_upgrade_refused_during_a_reload(daemon_factory, redis_server,
                                         copied_bin):
    d = daemon_factory(workers=1, binary=copied_bin,
                       env={"HITCOUNTD_TEST_READY_DELAY_MS": "2000"})
    d.wait_workers(1)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload: configuration")
    os.kill(d.pid, signal.SIGUSR2)
    wait_log(d, "not upgrading")
    wait_log(d, "reload succeeded", timeout=10)
    assert read_pid(d.pidfile) == d.pid
    serves(d.port)


def test_upgrade_aborted_by_timeout_keeps_the_old_masters_pidfile(
        daemon_factory, redis_server, copied_bin, new_master):
    """The new master does not serve in time: the old master takes its
    pidfile back at once, and the new master, stopped, must not remove
    that file on its way out (it names the old master now)."""
    d = daemon_factory(workers=1, binary=copied_bin,
                       env={"HITCOUNTD_TEST_READY_DELAY_MS": "4000",
                            "HITCOUNTD_TEST_UPGRADE_TIMEOUT_MS": "1500"})
    kids = d.wait_workers(1)
    nm = new_master(d)
    os.kill(d.pid, signal.SIGUSR2)
    newpid = nm.wait()
    wait_log(d, "binary upgrade failed", timeout=10)
    assert "did not serve in time" in d.log(), d.log()
    # the new master is the old one's child: gone once reaped
    wait_for(lambda: not pid_alive(newpid) and newpid not in d.workers(),
             patience(10), what="the new master %d to exit" % newpid)
    assert read_pid(d.pidfile) == d.pid, \
        "pidfile %s holds %r; log:\n%s" % (d.pidfile, read_pid(d.pidfile),
                                           d.log())
    assert not os.path.exists(d.pidfile + ".oldbin")
    assert "now belongs to another master; left in place" in d.log()
    assert d.workers() == kids
    serves(d.port)
