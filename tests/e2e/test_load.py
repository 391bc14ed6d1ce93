"""Counting exactness under concurrent keep-alive load, and a Redis restart
in the middle of a load."""

import threading
import time

from e2e_helpers import patience, wait_for
from e2e_http import (ConnectionClosed, RawClient, keepalive_load,
                      visits_from_body)

REQUEST = b"GET / HTTP/1.1\r\nHost: load\r\n\r\n"


def test_load_exact_count(daemon_factory, redis_server):
    d = daemon_factory(workers=2)
    n_conn, per_conn = 50, 400
    total = n_conn * per_conn
    statuses, values, errors, elapsed, hung = keepalive_load(
        d.port, n_conn, per_conn, 120)
    assert not hung, "load clients hung"
    n200 = statuses.get(200, 0)
    print("load: %d requests in %.1f s, statuses %r, %d errors"
          % (total, elapsed, statuses, len(errors)))
    assert not errors, errors[:10]
    assert statuses == {200: total}, statuses
    assert redis_server.visits() == n200
    # every answer is a distinct INCR result: exactly 1..total
    assert len(values) == total
    assert sorted(values) == list(range(1, total + 1))


def test_redis_restart_during_load(daemon_factory, redis_server):
    d = daemon_factory(workers=2, redis={"timeout_ms": 1000})
    n_clients = 4
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"200": 0, "503": 0, "fail": 0, "other": []}
    values = []

    def client():
        c = None
        while not stop.is_set():
            try:
                if c is None:
                    c = RawClient(d.port, timeout=15)
                c.send(REQUEST)
                r = c.read_response()
            except (OSError, ConnectionClosed):
                with lock:
                    stats["fail"] += 1
                if c is not None:
                    c.close()
                c = None
                time.sleep(0.01)
                continue
            with lock:
                if r.status == 200:
                    stats["200"] += 1
                    values.append(visits_from_body(r.body))
                elif r.status == 503:
                    stats["503"] += 1
                else:
                    stats["other"].append(r.status)
            if r.status == 503:
                time.sleep(0.005)
            if (r.header("Connection") or "").lower() == "close":
                c.close()
                c = None
        if c is not None:
            c.close()

    def count(k):
        with lock:
            return stats[k]

    threads = [threading.Thread(target=client, daemon=True)
               for _ in range(n_clients)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: count("200") >= 300, patience(20),
                 what="300 answers 200")
        redis_server.stop()                      # SHUTDOWN SAVE
        before_503 = count("503")
        wait_for(lambda: count("503") >= before_503 + 20, patience(10),
                 what="503 answers while Redis is down")
        redis_server.start()
        mark = count("200")
        wait_for(lambda: count("200") >= mark + 300, patience(10),
                 what="200 answers again after Redis restarted")
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert not any(t.is_alive() for t in threads), "clients hung"

    n200, n503, nfail = stats["200"], stats["503"], stats["fail"]
    print("restart during load: 200=%d 503=%d failed=%d other=%r"
          % (n200, n503, nfail, stats["other"]))
    assert stats["other"] == [], stats["other"]
    assert n503 > 0
    counter = redis_server.visits()
    assert n200 <= counter <= n200 + n503 + nfail, (counter, n200, n503,
                                                    nfail)
    # no INCR result was handed out twice
    assert len(set(values)) == len(values)
