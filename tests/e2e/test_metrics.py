"""/metrics: the counters agree with the requests the test made (deltas
against a baseline scrape, so the fixture's /healthz probe does not
matter), with the Redis counter and with `promtool check metrics`; they
survive reloads and worker restarts; Redis errors and reconnects, the
workers gauge and the results of reloads are counted; metrics_path and
metrics_listen move them.
"""

import concurrent.futures
import os
import signal
import subprocess
import time

from e2e_helpers import free_port, patience, require_tool, wait_for
from e2e_http import RawClient, garbage, get, http_request
from e2e_metrics import (assert_counters_not_lower, assert_histogram_sane,
                         scrape)
from e2e_daemon import wait_all_workers_ready, wait_log


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


# --------------------------------------------------------------------------
# the metrics agree with the requests made, across two workers
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
    # one INCRBY per loop turn for the visits of the turn, one GET per HEAD
    assert n["head"] + 1 <= rt_delta <= n["get"] + n["head"], \
        "round trips %r, expected %d to %d (a batch of GET /, HEAD /)" % (
            rt_delta, n["head"] + 1, n["get"] + n["head"])
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
# reloads, worker restarts, Redis errors
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
# the workers gauge
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


# --------------------------------------------------------------------------
# metrics_path and metrics_listen
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
