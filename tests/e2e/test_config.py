"""The configuration file as a whole, as -t judges it: a directory, a
file without a listen address, and keys that may not agree (readyz_path
with metrics_path, metrics_listen with listen).

tests/e2e/test_cli.py covers each bad value; a reload of a changed file
is in test_reload.py.
"""

import os
import pytest

from e2e_helpers import free_port


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


def test_check_access_log_that_cannot_be_written(run_hitcountd, tmp_path):
    """-t runs where the daemon will (systemd's ExecStartPre shares its
    sandbox): an access log it could not open is an error there, not at
    the start that follows."""
    conf = tmp_path / "hitcountd.conf"
    path = str(tmp_path / "missing-dir" / "access.log")
    conf.write_text('access_log = "%s"\n' % path)
    r = run_hitcountd("-t", "-f", str(conf))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.strip() == ("access_log %s: cannot create it in %s: "
                                "No such file or directory"
                                % (path, os.path.dirname(path))), r.stderr
    # a writable place passes, and -t creates nothing there
    path = str(tmp_path / "access.log")
    conf.write_text('access_log = "%s"\n' % path)
    r = run_hitcountd("-t", "-f", str(conf))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert not os.path.exists(path)


def _check_conf(run_hitcountd, tmp_path, text):
    conf = tmp_path / "check.conf"
    conf.write_text(text)
    return conf, run_hitcountd("-t", "-f", conf)


def test_check_rejects_readyz_path_equal_to_metrics_path(run_hitcountd,
                                                         tmp_path):
    """metrics_path = "/healthz" is refused as "not a path of its own";
    readyz_path = metrics_path hides the metrics the same way."""
    conf, r = _check_conf(run_hitcountd, tmp_path,
                          'listen = {"127.0.0.1:%d"}\n'
                          'readyz_path = "/metrics"\n' % free_port())
    assert r.returncode == 1 and "readyz_path" in r.stderr, \
        "readyz_path equal to metrics_path: -t exit %d, stdout %r, " \
        "stderr %r" % (r.returncode, r.stdout, r.stderr)


def test_check_rejects_metrics_listen_equal_to_listen(run_hitcountd,
                                                      tmp_path):
    """The daemon cannot start with the same address in listen and
    metrics_listen (bind: Address already in use), so -t must not call
    that configuration valid."""
    p = free_port()
    conf, r = _check_conf(run_hitcountd, tmp_path,
                          'listen = {"127.0.0.1:%d"}\n'
                          'metrics_listen = {"127.0.0.1:%d"}\n' % (p, p))
    assert r.returncode == 1 and "metrics_listen" in r.stderr, \
        "same address in listen and metrics_listen: -t exit %d, " \
        "stdout %r, stderr %r" % (r.returncode, r.stdout, r.stderr)
