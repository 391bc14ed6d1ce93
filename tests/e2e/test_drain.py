"""shutdown_delay: on TERM, /readyz answers 503 at once while the listeners
stay open and new connections are still served for shutdown_delay seconds
(a Kubernetes Service goes on routing to a terminating pod for a while);
then the graceful stop begins as without it.  A second TERM ends the delay
early.
"""

import os
import signal
import subprocess
import time

import pytest

from e2e_helpers import wait_for
from e2e_http import LoadClients, get, wait_unready


# Each request on a new connection: what the delay must keep from refusal.
CLOSE_REQUEST = b"GET / HTTP/1.1\r\nHost: drain\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("group", [False, True],
                         ids=["master", "control-group"])
def test_shutdown_delay_serves_new_connections(daemon_factory, redis_server,
                                               group):
    """TERM to the master (docker stop, the kubelet), or to every process
    at once (the shipped systemd unit's KillMode=control-group)."""
    delay, timeout = 2, 3
    d = daemon_factory(workers=6, shutdown_delay=delay,
                       shutdown_timeout=timeout)
    kids = d.wait_workers(6)
    assert get(d.port, "/readyz", timeout=5).status == 200
    load = LoadClients(d.port, n=4, request=CLOSE_REQUEST)
    load.start()
    try:
        wait_for(lambda: load.count_200_since(0) >= 20, 5,
                 what="the load to be answered")
        t0 = time.monotonic()
        for pid in [d.pid] + (kids if group else []):
            os.kill(pid, signal.SIGTERM)
        wait_unready(d.port)
        assert time.monotonic() - t0 < 1.5
        assert get(d.port, "/healthz", timeout=2).status == 200
        # the load goes on across the delay; the stop comes after it
        try:
            rc = d.proc.wait(delay + timeout + 2)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running %d s after TERM; log:\n%s"
                                 % (delay + timeout + 2, d.log()))
        elapsed = time.monotonic() - t0
    finally:
        load.stop()
    assert rc == 0, d.log()
    assert elapsed >= delay - 0.2, elapsed
    assert elapsed <= delay + timeout + 2, elapsed
    # every request sent during the delay was answered 200, none refused
    within = [r for r in load.all() if t0 <= r[0] < t0 + delay - 0.2]
    failed = [r for r in within if r[3] != 200]
    assert len(within) > 10, within
    assert not failed, failed[:5]


def test_second_term_ends_the_delay(daemon_factory, redis_server):
    d = daemon_factory(workers=1, shutdown_delay=30, shutdown_timeout=2)
    d.wait_workers(1)
    os.kill(d.pid, signal.SIGTERM)
    wait_unready(d.port)
    assert get(d.port, "/", timeout=2).status == 200
    t0 = time.monotonic()
    os.kill(d.pid, signal.SIGTERM)
    rc = d.proc.wait(2 + 3)
    assert rc == 0, d.log()
    assert time.monotonic() - t0 < 5


def test_shutdown_delay_zero_closes_at_once(daemon_factory, redis_server):
    d = daemon_factory(workers=1, shutdown_timeout=2)
    d.wait_workers(1)
    os.kill(d.pid, signal.SIGTERM)
    assert d.proc.wait(4) == 0
