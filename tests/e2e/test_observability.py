"""Observability (issue 7): /metrics, /readyz, the access log and the
log formats.

Everything is checked from outside: the metrics are compared with the
requests the test itself made (deltas against a baseline scrape, so the
fixture's /healthz probe does not matter), with the Redis counter and with
what `promtool check metrics` says; the access log and the daemon's own
log are parsed line by line.  Waits are polls with deadlines; every process
is stopped by its PID (the fixtures do it at teardown).
"""

import concurrent.futures
import datetime
import json
import os
import pwd
import re
import signal
import subprocess
import time

import pytest

from e2e_helpers import (free_port, patience, reachable_dir, require_tool,
                         wait_for)
from e2e_http import RawClient, get, http_request
from e2e_metrics import (assert_counters_not_lower, assert_histogram_sane,
                         scrape)
from e2e_daemon import wait_all_workers_down, wait_all_workers_ready, wait_log


# --------------------------------------------------------------------------
# helpers local to these tests
# --------------------------------------------------------------------------


def garbage(port):
    with RawClient(port, timeout=5) as c:
        c.send(b"this is not http at all\r\n\r\n")
        return c.read_response()


def one_request(port, kind):
    """One request of a kind on a fresh connection; returns the status."""
    if kind == "get":
        return get(port, "/", timeout=5).status
    if kind == "nope":
        return get(port, "/nope", timeout=5).status
    if kind == "post":
        return http_request(port, "POST", "/", body=b"",
                            timeout=5).status
    if kind == "head":
        r = http_request(port, "HEAD", "/", timeout=5)
        assert r.body == b""
        return r.status
    if kind == "garbage":
        return garbage(port).status
    raise ValueError(kind)


def readyz_all(port, want, n=6):
    """n fresh-connection GETs of /readyz all answer want (a check, not a
    wait: which worker answers is up to the kernel, so first wait until
    every worker is in the state, wait_all_workers_ready/_down)."""
    for _ in range(n):
        if get(port, "/readyz", timeout=2).status != want:
            return False
    return True


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except FileNotFoundError:
        return ""


# Combined log format, as written by nginx/Apache:
#   client - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 20 "ref" "ua"
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
ACCESS_RE = re.compile(
    r'^(?P<client>\S+) - - \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:'
    r'\d{2} [+-]\d{4})\] ' + _QUOTED.replace("(", "(?P<request>", 1) +
    r' (?P<status>\d{3}) (?P<bytes>\d+) ' +
    _QUOTED.replace("(", "(?P<referer>", 1) + " " +
    _QUOTED.replace("(", "(?P<ua>", 1) + r'$')


def parse_access(lines):
    out = []
    for line in lines:
        m = ACCESS_RE.match(line)
        assert m, "access log line does not parse: %r" % (line,)
        t = datetime.datetime.strptime(m.group("time"), "%d/%b/%Y:%H:%M:%S %z")
        now = datetime.datetime.now(datetime.timezone.utc)
        assert abs((now - t).total_seconds()) < 120, \
            "time %r is not now (%s)" % (m.group("time"), now)
        out.append(m)
    return out


def unescape(s):
    """Undo the access log's escaping (\\xHH, or a backslash before a
    character); latin-1 for the bytes."""
    return re.sub(r"\\(x[0-9a-fA-F]{2}|.)",
                  lambda m: chr(int(m.group(1)[1:], 16))
                  if len(m.group(1)) == 3 else m.group(1), s)


def access_lines(text):
    return [l for l in text.split("\n") if ACCESS_RE.match(l) or
            l.startswith("127.0.0.1 ")]


# --------------------------------------------------------------------------
# 1. the metrics agree with the requests made, across two workers
# --------------------------------------------------------------------------

def test_metrics_agree_with_requests(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    d.wait_workers(2)
    wait_all_workers_ready(d, 2)
    port = d.port
    scrapes = [0]

    def scrape_counted():
        m = scrape(port)
        scrapes[0] += 1
        return m

    wait_for(lambda: scrape_counted().get("hitcountd_workers") == 2,
             patience(3), what="hitcountd_workers == 2")
    scrapes[0] = 0          # count from the baseline on
    base = scrape_counted()
    base_redis = redis_server.visits()
    assert base.get("hitcountd_workers") == 2
    assert base.get("hitcountd_build_info", version="0.1.0") == 1
    assert base.types.get("hitcountd_http_requests_total") == "counter"
    assert base.types.get("hitcountd_connections_open") == "gauge"
    assert_histogram_sane(base)

    plan = (["get"] * 30 + ["nope"] * 10 + ["post"] * 6 + ["garbage"] * 5 +
            ["head"] * 8)
    want = {"get": 200, "nope": 404, "post": 405, "garbage": 400,
            "head": 200}
    # 8 concurrent clients, each request on a fresh connection, so that
    # both workers serve some of them
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda k: (k, one_request(port, k)), plan))
    wrong = [(k, s) for k, s in got if s != want[k]]
    assert not wrong, "unexpected statuses: %r" % wrong
    n = {k: plan.count(k) for k in want}

    def check():
        m = scrape_counted()
        # every earlier scrape is a 200 counted by the time this one renders
        prior_scrapes = scrapes[0] - 1
        deltas = {c: m.code(c) - base.code(c) for c in (200, 404, 405, 400)}
        expect = {200: n["get"] + n["head"] + prior_scrapes,
                  404: n["nope"], 405: n["post"], 400: n["garbage"]}
        if deltas != expect:
            check.last = "requests deltas %r, expected %r" % (deltas, expect)
            return None
        return m

    check.last = None
    try:
        after = wait_for(check, patience(3), what="request counts to settle")
    except AssertionError as exc:
        raise AssertionError("%s: %s" % (exc, check.last))

    # other codes untouched
    for (name, labels), v in base.samples.items():
        if name == "hitcountd_http_requests_total" and \
                dict(labels)["code"] not in ("200", "404", "405", "400"):
            assert after.samples[(name, labels)] == v, (labels, v)

    visits = (after.get("hitcountd_visits_total") -
              base.get("hitcountd_visits_total"))
    redis_delta = redis_server.visits() - base_redis
    assert visits == n["get"] == redis_delta, \
        "visits_total delta %r, GET / answered %d, Redis delta %d" % (
            visits, n["get"], redis_delta)

    rt = "hitcountd_redis_roundtrip_seconds"
    rt_delta = after.get(rt + "_count") - base.get(rt + "_count")
    assert rt_delta == n["get"] + n["head"], \
        "round trips %r, expected %d (GET / + HEAD /)" % (
            rt_delta, n["get"] + n["head"])
    assert after.get(rt + "_sum") > base.get(rt + "_sum")
    assert_histogram_sane(after)
    for (le, v), (le0, v0) in zip(after.buckets(rt), base.buckets(rt)):
        assert le == le0 and v >= v0, (le, v, v0)
    assert after.get("hitcountd_redis_errors_total") == \
        base.get("hitcountd_redis_errors_total")
    assert after.get("hitcountd_workers") == 2
    assert after.get("hitcountd_build_info", version="0.1.0") == 1

    # connections_open: a held keep-alive connection plus the scrape's own
    with RawClient(port, timeout=5) as held:
        r = held.request("GET", "/healthz")
        assert r.status == 200
        m = scrape(port)
        assert m.get("hitcountd_connections_open") >= 2, \
            m.get("hitcountd_connections_open")
    # once it is closed, only the scraping connection is left
    wait_for(lambda: scrape(port).get("hitcountd_connections_open") == 1,
             patience(3), what="connections_open back to 1")


# --------------------------------------------------------------------------
# 2. promtool accepts the output
# --------------------------------------------------------------------------

def test_promtool_check_metrics(daemon_factory, redis_server):
    promtool = require_tool("promtool", "prometheus", env="PROMTOOL_BIN")
    d = daemon_factory(workers=2)
    wait_all_workers_ready(d, 2)
    for k in ["get", "get", "nope", "post", "garbage", "head"]:
        one_request(d.port, k)
    r = get(d.port, "/metrics", timeout=5)
    assert r.status == 200
    res = subprocess.run([promtool, "check", "metrics"], input=r.body,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=30)
    out = (res.stdout + res.stderr).decode("utf-8", "replace")
    assert res.returncode == 0 and not out.strip(), \
        "promtool check metrics: exit %d, output:\n%s\ninput:\n%s" % (
            res.returncode, out, r.text)


# --------------------------------------------------------------------------
# 3. the metrics survive reloads and worker restarts
# --------------------------------------------------------------------------

def test_metrics_survive_reload_and_worker_restart(daemon_factory,
                                                   redis_server):
    d = daemon_factory(workers=2)
    gen1 = d.wait_workers(2)
    wait_all_workers_ready(d, 2)
    for k in ["get"] * 5 + ["nope"] * 2 + ["head"]:
        one_request(d.port, k)
    before = scrape(d.port)
    assert before.get("hitcountd_visits_total") >= 5
    ok0 = before.get("hitcountd_reloads_total", result="success")
    bad0 = before.get("hitcountd_reloads_total", result="failure")

    # a good reload: new generation, nothing lost
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    wait_for(lambda: len(d.workers()) == 2 and
             not set(d.workers()) & set(gen1), patience(10),
             what="generation 2 alone")
    m = wait_for(lambda: (lambda m: m.get("hitcountd_workers") == 2 and m)(
        scrape(d.port)), patience(3),
        what="hitcountd_workers == 2 after the reload")
    assert_counters_not_lower(before, m, "across a reload")
    assert m.get("hitcountd_visits_total") == \
        before.get("hitcountd_visits_total"), "visits changed without GET /"
    assert m.get("hitcountd_reloads_total", result="success") == ok0 + 1
    assert m.get("hitcountd_reloads_total", result="failure") == bad0
    assert_histogram_sane(m)
    # the new generation counts on top of the old one
    for _ in range(3):
        assert get(d.port, timeout=5).status == 200
    m2 = scrape(d.port)
    assert m2.get("hitcountd_visits_total") == \
        before.get("hitcountd_visits_total") + 3

    # a broken config: failure counted, workers kept, nothing lost
    good = d.config_text()
    gen2 = d.workers()
    d.write_config_text(good + "no_such_option = 1\n")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload failed")
    m3 = scrape(d.port)
    assert m3.get("hitcountd_reloads_total", result="failure") == bad0 + 1
    assert m3.get("hitcountd_reloads_total", result="success") == ok0 + 1
    assert_counters_not_lower(m2, m3, "across a failed reload")
    assert d.workers() == gen2
    d.write_config_text(good)

    # kill -9 of a worker: replaced, restart counted, nothing lost
    victim = gen2[0]
    os.kill(victim, signal.SIGKILL)
    wait_log(d, "worker %d killed by signal 9" % victim)
    wait_for(lambda: len(d.workers()) == 2 and victim not in d.workers(),
             patience(5), what="the killed worker to be replaced")
    r0 = m3.get("hitcountd_worker_restarts_total")
    m4 = wait_for(lambda: (lambda m: m.get("hitcountd_worker_restarts_total")
                           == r0 + 1 and m)(scrape(d.port)), patience(3),
                  what="worker_restarts_total + 1")
    assert_counters_not_lower(m3, m4, "across a worker kill")
    assert m4.get("hitcountd_visits_total") == \
        m2.get("hitcountd_visits_total")
    assert m4.get("hitcountd_workers") == 2
    assert m4.get("hitcountd_reloads_total", result="success") == ok0 + 1
    assert m4.get("hitcountd_reloads_total", result="failure") == bad0 + 1


def test_killed_worker_does_not_leak_open_connections(daemon_factory,
                                                      redis_server):
    """The connections a worker held when it was killed are gone: the
    gauge must not keep counting them."""
    d = daemon_factory(workers=1)
    [w] = d.wait_workers(1)
    held = [RawClient(d.port, timeout=5) for _ in range(3)]
    try:
        for c in held:
            assert c.request("GET", "/healthz").status == 200
        m = scrape(d.port)
        assert m.get("hitcountd_connections_open") == 4, m.text
        os.kill(w, signal.SIGKILL)
        wait_log(d, "worker %d killed by signal 9" % w)
        d.wait_workers(1)
    finally:
        for c in held:
            c.close()
    m = wait_for(lambda: (lambda m: m.get("hitcountd_worker_restarts_total")
                          == 1 and m)(scrape(d.port)), patience(3),
                 what="the restart to be counted")
    try:
        wait_for(lambda: scrape(d.port).get("hitcountd_connections_open")
                 == 1, patience(3),
                 what="connections_open == 1 (the scrape alone)")
    except AssertionError as exc:
        raise AssertionError("%s; it is %r" % (
            exc, scrape(d.port).get("hitcountd_connections_open")))


# --------------------------------------------------------------------------
# 4. Redis errors and reconnects
# --------------------------------------------------------------------------

def test_redis_error_and_reconnect_metrics(daemon_factory, redis_server):
    d = daemon_factory(workers=2, redis={"timeout_ms": 300})
    wait_all_workers_ready(d, 2)
    assert get(d.port, timeout=5).status == 200
    m0 = scrape(d.port)

    # a) error replies (WRONGTYPE): each failed INCR is a Redis error
    redis_server.cli("DEL", "visits")
    redis_server.cli("LPUSH", "visits", "x")
    for _ in range(6):
        assert get(d.port, timeout=5).status == 503
    assert http_request(d.port, "HEAD", "/", timeout=5).status == 503
    redis_server.cli("DEL", "visits")
    m1 = scrape(d.port)
    assert m1.code(503) - m0.code(503) == 7
    assert m1.get("hitcountd_redis_errors_total") - \
        m0.get("hitcountd_redis_errors_total") == 7, \
        "7 commands got an error reply; redis_errors_total %r -> %r" % (
            m0.get("hitcountd_redis_errors_total"),
            m1.get("hitcountd_redis_errors_total"))
    assert m1.get("hitcountd_visits_total") == \
        m0.get("hitcountd_visits_total")

    # b) timeouts (Redis frozen): the timed-out command is an error
    redis_server.freeze()
    try:
        r = get(d.port, timeout=5)
        assert r.status == 503, r
    finally:
        redis_server.thaw()
    m2 = scrape(d.port)
    assert m2.code(503) - m1.code(503) == 1
    assert m2.get("hitcountd_redis_errors_total") - \
        m1.get("hitcountd_redis_errors_total") >= 1, \
        "a timed-out INCR was not counted as a Redis error"
    # the worker whose INCR timed out dropped its connection (logged
    # before its 503) and connects again
    wait_all_workers_ready(d, 2)
    assert readyz_all(d.port, 200)
    assert get(d.port, timeout=5).status == 200

    # c) Redis stopped: 503s counted; restarted: reconnects counted
    base = scrape(d.port)
    redis_server.stop()
    statuses = []

    def got_503():
        s = get(d.port, timeout=5).status
        statuses.append(s)
        return s == 503
    wait_for(got_503, patience(3), what="GET / to give 503 with Redis down")
    for _ in range(4):
        statuses.append(get(d.port, timeout=5).status)
    assert set(statuses) <= {200, 503}, statuses
    n503 = statuses.count(503)
    n200 = statuses.count(200)
    down = scrape(d.port)
    assert down.code(503) - base.code(503) == n503, \
        "503 delta %r, 503s received %d" % (
            down.code(503) - base.code(503), n503)
    assert down.get("hitcountd_visits_total") - \
        base.get("hitcountd_visits_total") == n200
    # (no command is sent on a connection known to be down: the errors
    # counter may or may not move here)
    assert down.get("hitcountd_redis_errors_total") >= \
        base.get("hitcountd_redis_errors_total")

    mark = len(d.log())
    redis_server.start()
    # each worker logs its new connection
    wait_all_workers_ready(d, 2, since=mark)
    assert readyz_all(d.port, 200)
    assert get(d.port, timeout=5).status == 200
    # each worker lost its connection once and established it again
    up = wait_for(lambda: (lambda m: m.get("hitcountd_redis_reconnects_total")
                           - base.get("hitcountd_redis_reconnects_total")
                           >= 2 and m)(scrape(d.port)), patience(3),
                  what="redis_reconnects_total + 2")
    assert up.get("hitcountd_redis_reconnects_total") - \
        base.get("hitcountd_redis_reconnects_total") == 2, up.text
    assert_counters_not_lower(down, up, "after Redis returned")


# --------------------------------------------------------------------------
# 5. /readyz follows Redis, /healthz does not
# --------------------------------------------------------------------------

def test_readyz_follows_redis(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    wait_all_workers_ready(d, 2)
    for _ in range(6):
        r = get(d.port, "/readyz", timeout=5)
        assert r.status == 200, r
        assert r.text.strip() == "ready", r
    assert get(d.port, "/healthz", timeout=5).status == 200

    def all_are(want):
        for _ in range(6):
            assert get(d.port, "/healthz", timeout=2).status == 200
            r = get(d.port, "/readyz", timeout=2)
            if r.status != want:
                return False
            if want == 503:
                assert r.header("Retry-After") == "1", r
        return True

    # every worker notices (its own log line), then all /readyz say so
    mark = len(d.log())
    redis_server.stop()
    t0 = time.monotonic()
    wait_all_workers_down(d, timeout=2.5, since=mark)
    down_after = time.monotonic() - t0
    assert all_are(503)
    mark = len(d.log())
    redis_server.start()
    t1 = time.monotonic()
    wait_all_workers_ready(d, 2, timeout=2.5, since=mark)
    up_after = time.monotonic() - t1
    assert all_are(200)
    assert down_after <= 2.5 and up_after <= 2.5, (down_after, up_after)
    assert get(d.port, "/healthz", timeout=5).status == 200


# --------------------------------------------------------------------------
# 6. configuration of the paths and of metrics_listen
# --------------------------------------------------------------------------

def test_metrics_path_empty_turns_metrics_off(daemon_factory, redis_server):
    d = daemon_factory(metrics_path="")
    assert get(d.port, "/metrics", timeout=5).status == 404
    assert get(d.port, "/readyz", timeout=5).status == 200
    assert get(d.port, "/", timeout=5).status == 200


def test_metrics_path_moves(daemon_factory, redis_server):
    d = daemon_factory(metrics_path="/stats")
    m = wait_for(lambda: (lambda m: m.get("hitcountd_workers") == 2 and m)(
        scrape(d.port, "/stats")), patience(3),
        what="hitcountd_workers == 2 at /stats")
    assert get(d.port, "/metrics", timeout=5).status == 404
    m2 = scrape(d.port, "/stats")
    # the /metrics request above was a 404
    assert m2.code(404) - m.code(404) == 1


def test_readyz_path_empty_turns_readyz_off(daemon_factory, redis_server):
    d = daemon_factory(readyz_path="")
    assert get(d.port, "/readyz", timeout=5).status == 404
    assert get(d.port, "/healthz", timeout=5).status == 200
    assert get(d.port, "/metrics", timeout=5).status == 200


def test_metrics_listen(daemon_factory, redis_server):
    mport = free_port()
    d = daemon_factory(metrics_listen=["127.0.0.1:%d" % mport])
    wait_all_workers_ready(d, 2)
    m = wait_for(lambda: (lambda m: m.get("hitcountd_workers") == 2 and m)(
        scrape(mport)), patience(3),
        what="hitcountd_workers == 2 on metrics_listen")
    assert get(d.port, "/metrics", timeout=5).status == 404
    before_redis = redis_server.visits()
    r = get(mport, "/", timeout=5)
    assert r.status == 404, r
    for p in (d.port, mport):
        assert get(p, "/healthz", timeout=5).status == 200, p
        r = get(p, "/readyz", timeout=5)
        assert r.status == 200 and r.text.strip() == "ready", (p, r)
    m2 = scrape(mport)
    assert redis_server.visits() == before_redis
    assert m2.get("hitcountd_visits_total") == m.get("hitcountd_visits_total")
    # the public port still counts visits
    assert get(d.port, "/", timeout=5).status == 200
    assert redis_server.visits() == before_redis + 1


# --------------------------------------------------------------------------
# 7. the access log
# --------------------------------------------------------------------------

@pytest.fixture
def log_dir():
    """A directory the workers (user nobody) can reach: pytest's tmp_path
    is mode 0700, which a worker that dropped root cannot search."""
    with reachable_dir("hitcountd-access-", 0o755) as path:
        yield path


def assert_access_log_for_workers(path):
    """Started as root, the master keeps the file and gives it to the
    workers' group (nobody's), writable: it can open it again without
    CAP_DAC_OVERRIDE, and the workers can reopen it after dropping root."""
    st = os.stat(path)
    nobody = pwd.getpwnam("nobody")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == \
        (0, nobody.pw_gid, 0o660), \
        "access log owned by %d:%d mode %o" % (st.st_uid, st.st_gid,
                                              st.st_mode & 0o777)


def wait_access_lines(read, n, timeout=2.5):
    """Wait until read() holds at least n access-log lines; return them."""
    def enough():
        lines = access_lines(read())
        return len(lines) >= n and lines
    try:
        return wait_for(enough, patience(timeout),
                        what="%d access log lines" % n)
    except AssertionError as exc:
        raise AssertionError("%s; have:\n%s" % (exc, read()))


def test_access_log_file_and_reopen(daemon_factory, redis_server, log_dir):
    path = os.path.join(log_dir, "access.log")
    d = daemon_factory(workers=2, access_log=path)
    wait_all_workers_ready(d, 2)
    if os.geteuid() == 0:
        assert_access_log_for_workers(path)

    ua = "Mozilla/5.0 (e2e; observability)"
    ref = "http://example.test/from?a=1"
    sent = []

    def req(method, path_, headers):
        r = http_request(d.port, method, path_, headers=headers, timeout=5)
        sent.append((method, path_, r.status,
                     0 if method == "HEAD" else len(r.body),
                     headers.get("Referer", "-"),
                     headers.get("User-Agent", "-")))
        return r

    t_start = time.monotonic()
    assert req("GET", "/", {"User-Agent": ua, "Referer": ref}).status == 200
    assert req("GET", "/", {"User-Agent": ua}).status == 200
    assert req("HEAD", "/", {"User-Agent": ua, "Referer": ref}).status == 200
    assert req("GET", "/nope", {"User-Agent": ua}).status == 404
    assert req("POST", "/", {"User-Agent": ua}).status == 405
    assert req("GET", "/healthz", {"User-Agent": ua}).status == 200

    # hostile values through the raw client (bytes as sent, latin-1)
    hostile_ua = 'evil" "agent\\ \xff'
    hostile_ref = 'x" 200 0 "y'
    long_ua = "L" * 3000
    raw = {}
    with RawClient(d.port, timeout=5) as c:
        raw["evil"] = c.request("GET", "/", headers={
            "User-Agent": hostile_ua, "Referer": hostile_ref}).status
    with RawClient(d.port, timeout=5) as c:
        raw["quote-path"] = c.request("GET", '/a"b', headers={
            "User-Agent": "quote-path"}).status
    with RawClient(d.port, timeout=5) as c:
        raw["long"] = c.request("GET", "/", headers={
            "User-Agent": long_ua}).status
    raw["garbage"] = garbage(d.port).status
    assert raw == {"evil": 200, "quote-path": 404, "long": 200,
                   "garbage": 400}, raw

    # the fixture's /healthz probe (one 200) plus ours
    n_total = 1 + len(sent) + len(raw)
    lines = wait_access_lines(lambda: read_text(path), n_total)
    flushed_after = time.monotonic() - t_start
    assert len(lines) == n_total, \
        "%d lines for %d requests:\n%s" % (len(lines), n_total,
                                           "\n".join(lines))
    parsed = parse_access(lines)
    for m in parsed:
        assert m.group("client") == "127.0.0.1", m.group(0)

    def take(pred):
        hits = [m for m in parsed if pred(m)]
        assert len(hits) == 1, (hits, lines)
        parsed.remove(hits[0])
        return hits[0]

    # the fixture's probe: http.client sends no User-Agent
    probe = take(lambda m: m.group("request") == "GET /healthz HTTP/1.1"
                 and m.group("ua") == "-")
    assert probe.group("status") == "200"
    ev = take(lambda m: unescape(m.group("ua")).startswith("evil"))
    assert unescape(ev.group("ua")) == hostile_ua, ev.group(0)
    assert unescape(ev.group("referer")) == hostile_ref, ev.group(0)
    assert ev.group("request") == "GET / HTTP/1.1" and \
        ev.group("status") == "200", ev.group(0)
    qp = take(lambda m: m.group("ua") == "quote-path")
    assert unescape(qp.group("request")) == 'GET /a"b HTTP/1.1', qp.group(0)
    assert qp.group("status") == "404", qp.group(0)
    lg = take(lambda m: m.group("ua").startswith("LLL"))
    assert long_ua.startswith(lg.group("ua")), lg.group(0)[:200]
    assert lg.group("status") == "200"
    bad = take(lambda m: m.group("status") == "400")
    assert bad.group("ua") == "-", bad.group(0)

    got = sorted((m.group("request"), int(m.group("status")),
                  int(m.group("bytes")), m.group("referer"), m.group("ua"))
                 for m in parsed)
    want = sorted(("%s %s HTTP/1.1" % (meth, p), s, b, rf, u)
                  for meth, p, s, b, rf, u in sent)
    assert got == want, "access log:\n%s\nexpected:\n%r" % (
        "\n".join(lines), want)
    assert flushed_after <= 2.5

    # logrotate: rename, USR1, new requests go to a new file
    rotated = path + ".1"
    os.rename(path, rotated)
    old_content = read_text(rotated)
    workers = d.workers()
    os.kill(d.pid, signal.SIGUSR1)

    def reopened():
        if not os.path.exists(path):
            return False
        for w in workers:
            targets = []
            for fd in os.listdir("/proc/%d/fd" % w):
                try:
                    targets.append(os.readlink("/proc/%d/fd/%s" % (w, fd)))
                except OSError:
                    pass
            if path not in targets or rotated in targets:
                return False
        return True
    try:
        wait_for(reopened, patience(3),
                 what="the workers to reopen %s" % path)
    except AssertionError as exc:
        raise AssertionError("%s; log:\n%s" % (exc, d.log()[-3000:]))
    assert d.workers() == workers, "USR1 replaced the workers"
    if os.geteuid() == 0:
        assert_access_log_for_workers(path)
    for i in range(4):
        assert get(d.port, "/", headers={"User-Agent": "after-%d" % i},
                   timeout=5).status == 200
    new_lines = wait_access_lines(lambda: read_text(path), 4)
    assert sorted(m.group("ua") for m in parse_access(new_lines)) == \
        ["after-%d" % i for i in range(4)], new_lines
    # give a late flush its chance (at least once a second) to go wrong
    time.sleep(1.2)
    assert read_text(rotated) == old_content, \
        "the rotated file got more lines:\n%s" % read_text(rotated)
    assert len(access_lines(read_text(path))) == 4


def test_access_log_stderr(daemon_factory, redis_server):
    d = daemon_factory(workers=2, access_log="stderr")
    wait_all_workers_ready(d, 2)
    sizes = []
    for i in range(3):
        r = get(d.port, "/", headers={"User-Agent": "stderr-%d" % i,
                                      "Referer": "http://r/"}, timeout=5)
        assert r.status == 200
        sizes.append(len(r.body))
    assert http_request(d.port, "HEAD", "/", headers={"User-Agent": "h"},
                        timeout=5).status == 200

    def ours():
        ms = [ACCESS_RE.match(l) for l in d.log().splitlines()]
        return [m for m in ms if m and (m.group("ua").startswith("stderr-")
                                        or m.group("ua") == "h")]
    got = wait_for(lambda: len(ours()) >= 4 and ours(), patience(2.5),
                   what="4 access log lines on stderr")
    assert len(got) == 4, [m.group(0) for m in got]
    parse_access([m.group(0) for m in got])
    for m in got:
        if m.group("ua") == "h":
            assert m.group("request") == "HEAD / HTTP/1.1"
            assert m.group("bytes") == "0" and m.group("referer") == "-"
        else:
            assert m.group("request") == "GET / HTTP/1.1"
            assert m.group("status") == "200"
            assert m.group("referer") == "http://r/"
            assert int(m.group("bytes")) == sizes[int(m.group("ua")[7:])]


# --------------------------------------------------------------------------
# 8. log formats
# --------------------------------------------------------------------------

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?"
                   r"(Z|[+-]\d{2}:?\d{2})$")
LEVELS = ("error", "warning", "info", "debug")


# an invalid value with a quote, a backslash and a tab: the error message
# of the failed reload quotes it
HOSTILE_VALUE = 've"ry\\ b\tad'
HOSTILE_CONF = 'log_level = "ve\\"ry\\\\ b\\tad"\n'


def exercise_log(d, redis_server):
    """Make the daemon log a variety of lines: a failed reload (the error
    quotes a hostile config line), a Redis outage, a good reload, a stop."""
    good = d.config_text()
    d.write_config_text(good + HOSTILE_CONF)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload failed")
    d.write_config_text(good)
    redis_server.stop()
    wait_for(lambda: get(d.port, timeout=5).status == 503, patience(3),
             what="503 with Redis down")
    redis_server.start()
    wait_for(lambda: get(d.port, timeout=5).status == 200, patience(3),
             what="200 after Redis returned")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    assert d.stop() == 0
    return d.log()


def test_log_format_json(daemon_factory, redis_server):
    d = daemon_factory(workers=2, log_format="json")
    log = exercise_log(d, redis_server)
    lines = log.splitlines()
    assert len(lines) >= 10, log
    msgs = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise AssertionError("log line is not JSON (%s): %r" % (exc, line))
        assert isinstance(obj, dict), line
        assert {"ts", "level", "pid", "msg"} <= set(obj), line
        assert isinstance(obj["ts"], str) and TS_RE.match(obj["ts"]), line
        assert obj["level"] in LEVELS, line
        assert isinstance(obj["pid"], int) and obj["pid"] > 0, line
        assert isinstance(obj["msg"], str) and obj["msg"], line
        msgs.append((obj["pid"], obj["level"], obj["msg"]))
    assert (d.pid, "info", "hitcountd 0.1.0 started, 2 workers") in msgs, msgs
    failed = [m for p, _, m in msgs if p == d.pid and "reload failed" in m]
    assert len(failed) == 1, msgs
    assert HOSTILE_VALUE in failed[0], \
        "the hostile value did not survive JSON encoding: %r" % failed[0]
    assert any(l == "warning" for _, l, _ in msgs), msgs


KV_RE = re.compile(r'^ts=(\S+) level=(\w+) pid=(\d+) msg="((?:[^"\\]|\\.)*)"$')


def test_log_format_kv(daemon_factory, redis_server):
    d = daemon_factory(workers=2, log_format="kv")
    log = exercise_log(d, redis_server)
    lines = log.splitlines()
    assert len(lines) >= 10, log
    msgs = []
    for line in lines:
        m = KV_RE.match(line)
        assert m, "log line is not ts=... level=... pid=N msg=\"...\": %r" % (
            line,)
        assert TS_RE.match(m.group(1)), line
        assert m.group(2) in LEVELS, line
        msgs.append((int(m.group(3)), m.group(2), m.group(4)))
    assert (d.pid, "info", "hitcountd 0.1.0 started, 2 workers") in msgs, msgs
    failed = [line for line in lines if "reload failed" in line]
    assert len(failed) == 1, lines
    # the quote of the hostile value is escaped (else KV_RE fails above)
    assert 've\\"ry' in failed[0], failed[0]


# --------------------------------------------------------------------------
# more gauges and reload results
# --------------------------------------------------------------------------

def test_workers_gauge_follows_ttin_ttou(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    d.wait_workers(2)

    def gauge_is(n):
        return scrape(d.port).get("hitcountd_workers") == n
    wait_for(lambda: gauge_is(2), patience(3), what="hitcountd_workers == 2")
    os.kill(d.pid, signal.SIGTTIN)
    d.wait_workers(3)
    wait_for(lambda: gauge_is(3), patience(3),
             what="hitcountd_workers == 3 after TTIN")
    os.kill(d.pid, signal.SIGTTOU)
    d.wait_workers(2)
    wait_for(lambda: gauge_is(2), patience(3),
             what="hitcountd_workers == 2 after TTOU")
    os.kill(d.pid, signal.SIGTTOU)      # (two at once could merge)
    d.wait_workers(1)
    wait_for(lambda: gauge_is(1), patience(3),
             what="hitcountd_workers == 1 after 2 x TTOU")
    m = scrape(d.port)
    assert m.get("hitcountd_worker_restarts_total") == 0, \
        "a worker stopped by TTOU counted as a restart"


def test_reload_that_cannot_open_its_access_log_counts_failure(
        daemon_factory, redis_server, tmp_path):
    """A reload whose access log cannot be opened (its directory does not
    exist) fails; the old generation keeps serving, it counts as a failed
    reload and not as a worker restart, and the gauge stays right.  (New
    workers open the log while still root, so a directory closed to their
    user no longer makes them fail.)"""
    d = daemon_factory(workers=2)
    gen1 = d.wait_workers(2)
    m0 = scrape(d.port)
    d.reconfigure(access_log=str(tmp_path / "no-such-dir" / "access.log"))
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload failed", timeout=12)
    m1 = wait_for(lambda: (lambda m: m.get("hitcountd_reloads_total",
                                           result="failure") == 1 and m)(
        scrape(d.port)), patience(3), what="reloads_total{failure} == 1")
    assert m1.get("hitcountd_reloads_total", result="success") == 0
    assert d.workers() == gen1
    assert m1.get("hitcountd_workers") == 2
    assert m1.get("hitcountd_worker_restarts_total") == 0, \
        "new workers that could not start were counted as restarts"
    assert_counters_not_lower(m0, m1, "across a failed reload")
    assert get(d.port, timeout=5).status == 200


# --------------------------------------------------------------------------
# configuration checks (-t) of the new keys
# --------------------------------------------------------------------------

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


def test_workers_gauge_counts_a_worker_that_already_answers(daemon_factory,
                                                            redis_server):
    """A worker that has answered a request is alive, so the workers gauge
    read right after must be at least 1.  Two CPU hogs make the master
    lose the CPU right after fork(), which is when it records the new
    worker's PID in its metrics slot (after the child may already serve)."""
    hogs = [subprocess.Popen(["/usr/bin/python3", "-c", "while True: pass"])
            for _ in range((os.cpu_count() or 2) + 1)]
    seen = []
    try:
        for _ in range(25):
            d = daemon_factory(wait=False, workers=2)
            deadline = time.monotonic() + 10
            while True:
                assert time.monotonic() < deadline, d.log()
                try:
                    if get(d.port, "/healthz", timeout=2).status == 200:
                        break
                except OSError:
                    time.sleep(0.002)
            seen.append(scrape(d.port).get("hitcountd_workers"))
            d.stop()
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert all(n >= 1 for n in seen), \
        "hitcountd_workers read right after a worker answered: %r" % seen
