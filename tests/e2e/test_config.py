"""The configuration file as a whole: what -t/-T accept, and reloads.

tests/e2e/test_cli.py covers each bad value; this file covers what is
wrong with a file as a whole, and what a reload (SIGHUP) does with a
changed file.
"""

import pytest


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
