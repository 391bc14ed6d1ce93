"""The two configurations alive during a reload: their listening sockets,
and which workers take clients.

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
import threading
import time

import pytest

from e2e_helpers import (SlowDNS, free_port, get, listeners_of, log_count,
                         port_refuses, private_resolv_conf, serves, wait_for,
                         wait_log)


def test_worker_respawned_during_reload_gets_the_current_sockets(
        daemon_factory, redis_server):
    p1, p2 = free_port(), free_port()
    d = daemon_factory(workers=2, listen=["127.0.0.1:%d" % p1],
                       env={"HITCOUNTD_TEST_READY_DELAY_MS": "3000"})
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
    wait_for(lambda: respawned in listeners_of(p1), 5,
             what="the replacement to hold the current address")
    assert "reload succeeded" not in d.log(), "the window closed too early"
    assert respawned not in listeners_of(p2), \
        "a current-generation worker holds the reload's new address"
    # it serves p1 together with the surviving old worker
    for _ in range(6):
        assert get(p1, timeout=5).status == 200
    wait_log(d, "reload succeeded", timeout=10)
    serves(p1)
    serves(p2)
    assert "killed by signal 9" in d.log()
    assert "exited with status" not in d.log()


def test_aborted_reload_closes_its_addresses_and_keeps_log_settings(
        daemon_factory, redis_server):
    p1, p2 = free_port(), free_port()
    # slower than the master's 10 s wait for a new generation
    d = daemon_factory(workers=1, listen=["127.0.0.1:%d" % p1],
                       log_format="text",
                       env={"HITCOUNTD_TEST_READY_DELAY_MS": "15000"})
    d.wait_workers(1)
    d.reconfigure(listen=["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2],
                  log_format="json")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload: configuration")
    assert not port_refuses(p2), "the reload did not bind its new address"
    serves(p1)
    wait_log(d, "reload failed", timeout=15)
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
