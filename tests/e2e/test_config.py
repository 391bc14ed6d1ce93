"""The configuration file as a whole: what -t/-T accept, and reloads.

tests/e2e/test_cli.py covers each bad value; this file covers what is
wrong with a file as a whole, and what a reload (SIGHUP) does with a
changed file.
"""

import os
import signal
import subprocess

import pytest

from e2e_helpers import free_port, require_tool
from e2e_http import serves
from e2e_daemon import wait_log


def test_check_directory_is_an_error(run_hitcountd, tmp_path):
    # libconfuse's scanner exits 2 on a read error: refused before parsing
    r = run_hitcountd("-t", "-f", str(tmp_path))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.strip() == "%s: Is a directory" % tmp_path, r.stderr


@pytest.mark.parametrize("text", [
    'listen = {}\n',
    'listen = {}\nmetrics_listen = {"127.0.0.1:5999"}\n',
])
def test_check_no_listen_address_is_an_error(run_hitcountd, tmp_path, text):
    # libconfuse validates no empty list: accepted, the daemon served
    # nothing, and -H read past the end of the (empty) address list
    conf = tmp_path / "hitcountd.conf"
    conf.write_text(text)
    r = run_hitcountd("-t", "-f", str(conf))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.strip() == ("%s: option 'listen' needs at least one "
                                "address" % conf), r.stderr


def test_reload_of_a_directory_keeps_serving(daemon_factory, redis_server):
    d = daemon_factory(workers=1)
    d.wait_workers(1)
    os.rename(d.conf, d.conf + ".away")
    os.mkdir(d.conf)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload failed")
    assert "Is a directory" in d.log()
    assert d.proc.poll() is None, "the master exited:\n" + d.log()
    serves(d.port)
    os.rmdir(d.conf)
    os.rename(d.conf + ".away", d.conf)


def _backlog(port):
    """The backlog of the socket listening on 127.0.0.1:port, as ss(8)
    shows it (Send-Q), or None if ss fails or lists no such socket."""
    ss = require_tool("ss", "iproute2")
    try:
        out = subprocess.run([ss, "-Hltn", "sport = :%d" % port],
                             stdout=subprocess.PIPE, universal_newlines=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    fields = out.split()
    return int(fields[2]) if len(fields) > 2 else None


RESTART_WARNING = "the change takes effect only at a restart"


def test_reload_warns_about_keys_only_a_restart_applies(
        daemon_factory, redis_server, run_hitcountd):
    d = daemon_factory(workers=1, backlog=511)
    d.wait_workers(1)
    # a reload that changes only what a reload applies: no warning
    d.reconfigure(workers=2)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    d.wait_workers(2)
    assert RESTART_WARNING not in d.log()

    # pidfile and backlog: warned about, and the old values stay in force
    old_pid, new_pid = d.pidfile, os.path.join(d.workdir, "other.pid")
    p2 = free_port()
    d.reconfigure(pidfile=new_pid, backlog=100, workers=1,
                  listen=["127.0.0.1:%d" % d.port, "127.0.0.1:%d" % p2])
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded", 2)
    log = d.log()
    assert ("reload: option 'pidfile' changed from \"%s\" to \"%s\" in %s; "
            % (old_pid, new_pid, d.conf) + RESTART_WARNING) in log, log
    assert ("reload: option 'backlog' changed from 511 to 100 in %s; "
            % d.conf + RESTART_WARNING) in log, log
    d.wait_workers(1)               # what a reload applies, it applied
    serves(p2)
    with open(old_pid) as f:
        assert int(f.read()) == d.pid
    assert not os.path.exists(new_pid)
    if _backlog(p2) is not None:    # the new address got the backlog in force
        assert _backlog(p2) == 511
        assert _backlog(d.port) == 511

    # the file still differs from what is in force: warned at each reload
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded", 3)
    assert d.log().count(RESTART_WARNING) == 4, d.log()

    # -T prints the file's values: what the next start will use
    r = run_hitcountd("-T", "-f", d.conf)
    assert r.returncode == 0, r.stderr
    assert 'pidfile = "%s"\n' % new_pid in r.stdout, r.stdout
    assert "backlog = 100\n" in r.stdout, r.stdout
