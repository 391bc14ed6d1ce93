"""Memory errors and leaks of the real daemon, under valgrind (issue 5).

The daemon runs under memcheck with one worker (a forked child: valgrind
follows fork by itself and writes one log per process, vg.<pid>), against a
real redis-server.  It serves a mix of requests (counted, HEAD, JSON, 404,
405 with a body, a pipelined batch, bad requests, chunked and
100-continue bodies, 413), goes through a Redis outage (503) and back
(200), and is stopped gracefully with SIGTERM.  Every process's log must
then report no errors and no definitely or indirectly lost bytes.

Fails when valgrind is missing; skipped when the binary is built with
AddressSanitizer (make distcheck --enable-sanitizers), which cannot run
under valgrind and checks leaks by itself.
"""

import os
import re
import signal
import subprocess
import time

import pytest

from e2e_helpers import (built_with_sanitizer, reachable_dir, require_tool,
                         wait_for)
from e2e_http import RawClient, get, visits_from_body

VALGRIND_TIMEOUT = 60       # valgrind is slow: start, stop, leak check


def parse_vg_log(text):
    """(errors, definitely lost, indirectly lost, leak summary seen)."""
    m = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
    errors = int(m.group(1).replace(",", "")) if m else None
    if "All heap blocks were freed" in text:
        return errors, 0, 0, True
    d = re.search(r"definitely lost: ([\d,]+) bytes", text)
    i = re.search(r"indirectly lost: ([\d,]+) bytes", text)
    if d is None or i is None:
        return errors, None, None, False
    return (errors, int(d.group(1).replace(",", "")),
            int(i.group(1).replace(",", "")), True)


@pytest.fixture
def vgdir():
    # valgrind opens the worker's log in the forked child; the worker then
    # runs as 'nobody', so the directory is world-writable (and not below
    # pytest's 0700 tmp_path)
    with reachable_dir("hitcountd-vg.", 0o777) as d:
        yield d


def test_no_leaks_or_errors_under_valgrind(daemon_factory, redis_server,
                                           hitcountd_bin, vgdir):
    vg = require_tool("valgrind", "valgrind")
    if built_with_sanitizer(hitcountd_bin):
        pytest.skip("binary built with AddressSanitizer: not for valgrind")
    prefix = [vg, "--leak-check=full",
              "--show-leak-kinds=definite,indirect",
              "--errors-for-leak-kinds=definite,indirect",
              "--error-exitcode=99", "--trace-children=no",
              "--log-file=%s/vg.%%p" % vgdir]
    d = daemon_factory(wait=False, prefix=prefix, workers=1,
                       shutdown_timeout=30,
                       redis={"timeout_ms": 3000})
    d.wait_healthy(timeout=VALGRIND_TIMEOUT)
    (worker,) = d.wait_workers(1, timeout=VALGRIND_TIMEOUT)
    master = d.pid
    seen = 0            # 200 answers to GET / (each one INCR)
    sent = 0

    # keep-alive: GET / (HTML and JSON), HEAD /, /healthz, 404, 405
    with RawClient(d.port, timeout=30) as c:
        for i in range(60):
            r = c.request("GET", "/")
            assert r.status == 200, r
            seen += 1
            assert visits_from_body(r.body) == seen
            r = c.request("GET", "/", headers={"Accept": "application/json"})
            assert r.status == 200, r
            seen += 1
            assert r.body == b'{"visits": %d}' % seen
            sent += 2
        for i in range(15):
            r = c.request("HEAD", "/")
            assert r.status == 200 and r.body == b""
            assert c.request("GET", "/healthz").body == b"ok\n"
            assert c.request("GET", "/nope%d" % i).status == 404
            c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                   b"\r\nhello")
            r = c.read_response()
            assert r.status == 405, r
            sent += 4
        # a pipelined batch
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 20 +
               b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(20):
            r = c.read_response()
            assert r.status == 200, r
            seen += 1
            assert visits_from_body(r.body) == seen
        assert c.read_response(head=True).status == 200
        sent += 21
        # chunked body with extensions and a trailer, then a GET
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
               b"\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.read_response().status == 405
        r = c.read_response()
        assert r.status == 200, r
        seen += 1
        sent += 2
        # 100-continue
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
               b"Content-Length: 3\r\n\r\n")
        assert c.read_response().status == 100
        c.send(b"abc")
        assert c.read_response().status == 405
        sent += 1
    # HTTP/1.0, Connection: close, and connections the server ends
    for data, status in [
            (b"GET / HTTP/1.0\r\n\r\n", 200),
            (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200),
            (b"this is not http\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
            (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip"
             b"\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000"
             b"\r\n\r\n", 413),
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414)]:
        with RawClient(d.port, timeout=30) as c:
            c.send(data)
            r = c.read_response()
            assert r.status == status, (data[:60], r)
            if status == 200:
                seen += 1
            closed, _, _ = c.wait_closed(10)
            assert closed
            sent += 1
    # a client that goes away in the middle of a request
    with RawClient(d.port, timeout=30) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Half: ")
    print("valgrind: %d requests answered, %d counted" % (sent, seen))
    assert sent >= 200
    wait_for(lambda: redis_server.visits() == seen, 10,
             what="redis value == %d" % seen)

    # a Redis outage: 503, then 200 again
    redis_server.stop()
    r = get(d.port, timeout=30)
    assert r.status == 503, r
    redis_server.start()
    deadline = time.monotonic() + 20
    while True:
        r = get(d.port, timeout=30)
        if r.status == 200:
            seen += 1
            break
        assert r.status == 503, r
        assert time.monotonic() < deadline, "no 200 after Redis came back"
        time.sleep(0.2)
    assert visits_from_body(r.body) == seen

    # graceful stop
    os.kill(master, signal.SIGTERM)
    try:
        rc = d.proc.wait(VALGRIND_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("master under valgrind did not exit within %d s of "
                    "SIGTERM; log:\n%s" % (VALGRIND_TIMEOUT, d.log()[-3000:]))
    wait_for(lambda: not os.path.exists("/proc/%d" % worker), 10,
             what="worker %d gone" % worker)
    assert redis_server.visits() == seen

    logs = {}
    for name in sorted(os.listdir(vgdir)):
        m = re.match(r"vg\.(\d+)$", name)
        assert m, name
        with open(os.path.join(vgdir, name), errors="replace") as f:
            logs[int(m.group(1))] = f.read()
    assert master in logs and worker in logs, \
        "expected vg.%d (master) and vg.%d (worker), found %s" % (
            master, worker, sorted(logs))
    problems = []
    for pid, text in sorted(logs.items()):
        who = "master" if pid == master else (
            "worker" if pid == worker else "process")
        errors, dlost, ilost, summary = parse_vg_log(text)
        usage = re.search(r"total heap usage: (.*)", text)
        print("valgrind %s %d: %s errors, definitely lost %s, indirectly "
              "lost %s; heap: %s" % (who, pid, errors, dlost, ilost,
                                     usage.group(1) if usage else "?"))
        if errors != 0 or not summary or dlost != 0 or ilost != 0:
            problems.append("%s %d:\n%s" % (who, pid, text[-6000:]))
    assert not problems, "\n\n".join(problems)
    assert rc == 0, "master exit status %d; log:\n%s" % (rc, d.log()[-3000:])
