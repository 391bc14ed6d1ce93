"""Reloading (SIGHUP): a new generation of workers with the new
configuration, the old one serving until it is ready -- also under wrk
load, without a failed request; a broken or unreadable file keeps the
workers; listen and workers change; the keys only a restart applies are
warned about; and the two configurations alive during a reload.

While a reload's workers start, the old configuration still serves: a
worker forked for it in that window (a crash replacement, or TTIN) must
get exactly its sockets, not the new configuration's, and not none.  A
reload that is given up closes the addresses only it bound and leaves the
log settings as they were.  HITCOUNTD_TEST_READY_DELAY_MS makes the
reload's workers slow to start, which holds that window open.

A new worker (a reload's, or TTIN's) takes clients only once its first
attempt to reach Redis has ended; before, it answered 503 while it
resolved the Redis host name.  There the Redis host is a name that a DNS
server of the test answers slowly, and the daemon runs in a mount
namespace of its own (unshare; needs root) where /etc/resolv.conf names
that server: the host's file is left alone, no query leaves 127.0.0.1.
"""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from e2e_daemon import log_count, log_lines, wait_log
from e2e_helpers import (SlowDNS, free_port, listeners_of, patience,
                         port_refuses, private_resolv_conf,
                         require_tool, wait_for)
from e2e_http import (WRK, assert_wrk_lost_nothing, get, serves,
                      wrk_output)


# --------------------------------------------------------------------------
# a reload, and what it changes
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
    finally:
        out = wrk_output(wrk)
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


# --------------------------------------------------------------------------
# the two configurations alive during a reload
# --------------------------------------------------------------------------

def test_worker_respawned_during_reload_gets_the_current_sockets(
        daemon_factory, redis_server):
    p1, p2 = free_port(), free_port()
    # The window: the reload's workers wait this long before they serve
    # (under the master's 10 s limit for a new generation).  Under load
    # the kill, the respawn and the /proc scans below take seconds, and
    # once the reload succeeds the replacement is stopped and its sockets
    # closed: 3 s was too narrow on a busy CI machine.
    d = daemon_factory(workers=2, listen=["127.0.0.1:%d" % p1],
                       env={"HITCOUNTD_TEST_READY_DELAY_MS": "6000"})
    old = d.wait_workers(2)
    d.reconfigure(listen=["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2])
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload: configuration")
    # the new generation is starting ...
    starting = wait_for(lambda: len(d.workers()) == 4 and
                        [k for k in d.workers() if k not in old], 5,
                        what="the reload's two workers")
    # ... when a current worker crashes
    os.kill(old[0], signal.SIGKILL)
    respawned = wait_for(
        lambda: [k for k in d.workers()
                 if k not in old and k not in starting], 5,
        what="a replacement of the current generation")[0]
    wait_for(lambda: respawned in listeners_of(p1) or
             "reload succeeded" in d.log(), 5,
             what="the replacement to hold the current address")
    assert "reload succeeded" not in d.log(), "the window closed too early"
    assert respawned in listeners_of(p1), \
        "the replacement does not hold the current address"
    assert respawned not in listeners_of(p2), \
        "a current-generation worker holds the reload's new address"
    # it serves p1 together with the surviving old worker
    for _ in range(6):
        assert get(p1, timeout=5).status == 200
    wait_log(d, "reload succeeded", timeout=15)
    serves(p1)
    serves(p2)
    assert "killed by signal 9" in d.log()
    assert "exited with status" not in d.log()


def test_aborted_reload_closes_its_addresses_and_keeps_log_settings(
        daemon_factory, redis_server):
    """The master says "reload failed" once the old state is back: the
    given-up workers are gone (their exits are logged before it, at debug
    level), and with them their copies of the reload's new address."""
    p1, p2 = free_port(), free_port()
    # slower than the master's 10 s wait for a new generation
    d = daemon_factory(workers=1, listen=["127.0.0.1:%d" % p1],
                       log_format="text", args=("-d",),
                       env={"HITCOUNTD_TEST_READY_DELAY_MS": "15000"})
    old = d.wait_workers(1)
    d.reconfigure(listen=["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2],
                  log_format="json")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload: configuration")
    given_up = wait_for(lambda: len(d.workers()) == 2 and
                        [k for k in d.workers() if k not in old], 5,
                        what="the reload's worker")
    assert not port_refuses(p2), "the reload did not bind its new address"
    serves(p1)
    wait_log(d, "reload failed", timeout=15)
    log = d.log()
    failed_at = log.index("reload failed")
    for pid in given_up:
        exited = "worker %d exited" % pid
        assert exited in log[:failed_at], \
            "\"reload failed\" was logged before %r:\n%s" % (
                exited, log[-3000:])
    assert port_refuses(p2), \
        "the aborted reload's address is still bound"
    serves(p1)
    failed = [l for l in d.log().splitlines() if "reload failed" in l][-1]
    assert not failed.lstrip().startswith("{"), \
        "the aborted reload's log format stayed: %r" % failed


def test_committed_reload_applies_log_settings(daemon_factory, redis_server):
    d = daemon_factory(workers=1, log_format="text")
    d.wait_workers(1)
    d.reconfigure(log_format="json")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    line = [l for l in d.log().splitlines() if "reload succeeded" in l][-1]
    assert json.loads(line[line.index("{"):])["msg"].startswith(
        "reload succeeded"), line


# --------------------------------------------------------------------------
# new workers and a Redis host that takes time to resolve
# --------------------------------------------------------------------------

DNS_NAME = "redis.hitcountd.test"      # a reserved TLD: never a real name
DNS_DELAY = 0.4                        # seconds before every answer


@pytest.fixture
def slow_dns():
    srv = SlowDNS(DNS_NAME, DNS_DELAY)
    try:
        yield srv
    finally:
        srv.close()


def test_new_workers_serve_only_once_redis_host_resolved(
        daemon_factory, redis_server, slow_dns, tmp_path):
    """A new worker (reload, TTIN) takes clients only once its first
    attempt to reach Redis has ended: while it resolves the Redis host the
    old workers serve, and not one client gets 503."""
    n_hups = 4
    prefix, resolv = private_resolv_conf(slow_dns, tmp_path)
    with open("/etc/resolv.conf") as f:
        host_resolv = f.read()
    # timeout_ms also bounds the first attempt: well above DNS_DELAY
    d = daemon_factory(workers=2, prefix=prefix,
                       redis={"host": DNS_NAME, "timeout_ms": 3000})
    # the wrapper exec'd the daemon, in its own mount namespace
    assert os.path.realpath("/proc/%d/exe" % d.pid) == \
        os.path.realpath(d.binary)
    assert os.readlink("/proc/%d/ns/mnt" % d.pid) != \
        os.readlink("/proc/self/ns/mnt")
    with open("/proc/%d/root/etc/resolv.conf" % d.pid) as f, \
            open(resolv) as g:
        assert f.read() == g.read()
    d.wait_workers(2)
    # (before the fix the first workers too served, 503, until then)
    wait_log(d, "redis: connected to", 2)
    serves(d.port)
    before = redis_server.visits()

    stop = threading.Event()
    lock = threading.Lock()
    answers, errors = [], []            # (time, status); repr of failures

    def client():
        while not stop.is_set():
            try:
                r = get(d.port, timeout=10)
            except Exception as exc:    # noqa: B902 - reported below
                with lock:
                    errors.append(repr(exc))
                continue
            with lock:
                answers.append((time.monotonic(), r.status))

    threads = [threading.Thread(target=client, daemon=True)
               for _ in range(4)]
    for t in threads:
        t.start()
    windows = []                        # (what, sent, seen ready)
    try:
        wait_for(lambda: len(answers) >= 50, 5, what="50 answers")
        for i in range(n_hups):
            t0 = time.monotonic()
            os.kill(d.pid, signal.SIGHUP)
            wait_log(d, "reload succeeded", i + 1, timeout=4)
            windows.append(("HUP %d" % (i + 1), t0, time.monotonic()))
            time.sleep(0.2)
        started = log_count(d, "worker started")
        t0 = time.monotonic()
        os.kill(d.pid, signal.SIGTTIN)
        wait_log(d, "worker started", started + 1, timeout=4)
        windows.append(("TTIN", t0, time.monotonic()))
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not any(t.is_alive() for t in threads), "client threads hung"

    statuses = {}
    for _, status in answers:
        statuses[status] = statuses.get(status, 0) + 1
    print("%d answers %r, %d errors; windows %s"
          % (len(answers), statuses, len(errors),
             ", ".join("%s %.2f s" % (w, b - a) for w, a, b in windows)))
    assert statuses.get(503, 0) == 0, \
        "503 while new workers resolved the Redis host: %r" % statuses
    assert set(statuses) == {200}, statuses
    assert not errors, errors[:10]
    assert redis_server.visits() - before == statuses[200]
    log = d.log()
    assert log.count("reload succeeded") == n_hups, log[-6000:]
    assert "reload failed" not in log
    assert "cannot resolve" not in log, log[-6000:]
    assert "killed by signal" not in log and "exited with status" not in log

    # the slow resolution was really in the way of every new worker ...
    # (one A and one AAAA query from each worker started)
    workers = 2 + 2 * n_hups + 1
    asked = sorted((name.lower(), qtype)
                   for _, _, name, qtype in slow_dns.queries)
    assert asked == sorted([(DNS_NAME, 1), (DNS_NAME, 28)] * workers), \
        slow_dns.queries
    for what, sent, ready in windows:
        assert ready - sent >= DNS_DELAY, \
            "%s: new worker ready %.3f s after the signal" % (
                what, ready - sent)
        # ... and clients were served meanwhile, by the old workers
        assert any(sent < t < ready - 0.1 for t, _ in answers), what
    with open("/etc/resolv.conf") as f:
        assert f.read() == host_resolv
