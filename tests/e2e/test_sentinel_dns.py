"""Sentinels given by host name: looked up with evdns, never blocking.

A sentinel address may be a name ("sentinel.hitcountd.test:PORT").  The
worker asks a sentinel before each connection and once a second while
connected; hiredis, given the name, would resolve it with the blocking
getaddrinfo() each time, and every client of the worker would wait.

Here the sentinel is a real one (redis-server --sentinel) watching the
test's redis-server; its name is served only by a DNS server of the test
(SlowDNS), which answers after a delay the test sets, and the daemon runs
in a mount namespace of its own where /etc/resolv.conf names that server
(needs root and unshare; the host's file is left alone, and no query
leaves 127.0.0.1).

- test_sentinel_name_looked_up_without_blocking: the worker finds the
  primary through the named sentinel; then, while its once-a-second
  question waits 1.5 s for the name, it keeps answering GET / (200, from
  the primary it has) and /healthz at once.  (With hiredis resolving the
  name, the libc resolver cannot even reach this DNS server: the worker
  never finds the primary.)
"""

import time

import pytest

from e2e_daemon import wait_log
from e2e_helpers import SlowDNS, patience, private_resolv_conf, wait_for
from e2e_http import get, visits_from_body
from e2e_servers import MASTER_NAME, SentinelNode

DNS_NAME = "sentinel.hitcountd.test"   # a reserved TLD: never a real name
SLOW = 1.5                             # seconds, the lookup being watched


@pytest.fixture
def named_sentinel(redis_server, tmp_path):
    """(SlowDNS, SentinelNode): a sentinel watching redis_server, at
    DNS_NAME for the SlowDNS, which answers after 0.2 s at first."""
    dns = SlowDNS(DNS_NAME, 0.2)
    sentinel = SentinelNode("sentinel", str(tmp_path / "sentinel"),
                            redis_server.port)
    try:
        sentinel.start()
        yield dns, sentinel
    finally:
        sentinel.teardown()
        dns.close()


def test_sentinel_name_looked_up_without_blocking(daemon_factory,
                                                  redis_server,
                                                  named_sentinel, tmp_path):
    dns, sentinel = named_sentinel
    prefix, _ = private_resolv_conf(dns, tmp_path)
    t_start = time.monotonic()
    d = daemon_factory(workers=1, prefix=prefix,
                       redis={"host": None, "port": None,
                              "sentinels": ["%s:%d" % (DNS_NAME,
                                                       sentinel.port)],
                              "master_name": MASTER_NAME,
                              "timeout_ms": 3000})
    wait_log(d, "redis: connected to 127.0.0.1:%d" % redis_server.port)
    r = get(d.port, "/", timeout=5)
    assert r.status == 200, (r, d.log()[-3000:])
    v0 = visits_from_body(r.body)
    assert dns.queries, "the sentinel's name was not looked up with DNS"

    # from now on every lookup takes SLOW seconds: wait for the next one,
    # the once-a-second question's
    dns.delay = SLOW
    n0 = len(dns.queries)
    wait_for(lambda: len(dns.queries) > n0, patience(3), interval=0.02,
             what="the periodic question's lookup of the sentinel")
    t_query = dns.queries[n0][0]
    answers = []                        # (sent, latency, path, status)
    while time.monotonic() < t_query + SLOW - 0.1:
        for path in ("/", "/healthz"):
            t0 = time.monotonic()
            r = get(d.port, path, timeout=10)
            answers.append((t0, time.monotonic() - t0, path, r.status))
            if path == "/" and r.status == 200:
                v = visits_from_body(r.body)
                assert v > v0, (v, v0)
                v0 = v
    t_answered = t_query + SLOW
    # the answer comes within timeout_ms: the question goes on, nothing moves
    wait_for(lambda: len(dns.queries) >= n0 + 4, patience(SLOW + 3),
             interval=0.05, what="the next question's lookup")
    during = [a for a in answers if a[0] + a[1] < t_answered]
    slowest = max(a[1] for a in during)
    print("sentinel named %s: the slow lookup began %.2f s after the "
          "start; %d answers while it was out (%.1f s), the slowest in "
          "%.3f s; %d DNS queries" % (DNS_NAME, t_query - t_start,
                                      len(during), SLOW, slowest,
                                      len(dns.queries)))
    assert {a[3] for a in answers} == {200}, answers
    assert len(during) >= 10 and {a[2] for a in during} == {"/", "/healthz"}
    assert slowest < patience(0.3), \
        "a request waited %.3f s for the sentinel's lookup" % slowest
    assert {q[2].lower() for q in dns.queries} == {DNS_NAME}, dns.queries
    log = d.log()
    for bad in ("cannot look up", "moved the primary", "no answer from",
                "cannot reach sentinel"):
        assert bad not in log, log[-3000:]
    r = get(d.port, "/", timeout=5)
    assert r.status == 200 and visits_from_body(r.body) > v0

    # Stop while no lookup is out, the sentinel still up: libevent 2.1
    # frees a lookup cancelled by an exiting worker only on a later turn of
    # its loop, which never comes, and LeakSanitizer would report it.
    dns.delay = 0
    n = len(dns.queries)
    wait_for(lambda: len(dns.queries) >= n + 2, patience(3), interval=0.01,
             what="a quick lookup (A and AAAA) answered")
    assert d.stop() == 0
