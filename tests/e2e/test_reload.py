"""The listening sockets of the two configurations alive during a reload.

While a reload's workers start, the old configuration still serves: a
worker forked for it in that window (a crash replacement, or TTIN) must
get exactly its sockets, not the new configuration's, and not none.  A
reload that is given up closes the addresses only it bound and leaves the
log settings as they were.  HITCOUNTD_TEST_READY_DELAY_MS makes the
reload's workers slow to start, which holds that window open.
"""

import json
import os
import signal

from e2e_helpers import (free_port, get, listeners_of, port_refuses, serves,
                         wait_for, wait_log)


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
