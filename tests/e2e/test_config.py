"""The configuration file as a whole: what -t/-T accept, and reloads.

tests/e2e/test_cli.py covers each bad value; this file covers what is
wrong with a file as a whole, and what a reload (SIGHUP) does with a
changed file.
"""

import os
import signal

from e2e_helpers import serves, wait_log


def test_check_directory_is_an_error(run_hitcountd, tmp_path):
    # libconfuse's scanner exits 2 on a read error: refused before parsing
    r = run_hitcountd("-t", "-f", str(tmp_path))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.strip() == "%s: Is a directory" % tmp_path, r.stderr


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
