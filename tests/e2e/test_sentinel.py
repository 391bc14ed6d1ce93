"""Redis Sentinel (issue 8): hitcountd follows its Redis primary through
a real topology (primary + replica + three sentinels; e2e_servers.py).

- test_sentinel_failover: kill -9 of the primary under load: 503 only
  during the failover, 200 again from the promoted replica within 5 s, no
  worker died, the counter goes on from the replica's value, no duplicate
  values; the old primary comes back as a replica and nothing breaks.
- test_min_replicas_acked: with min_replicas_acked = 1, a stopped replica
  turns GET / into 503 within timeout_ms (+ margin), and 200 again once it
  is resumed.
- test_sentinel_first_one_unavailable: the first sentinel listed is dead
  or hung: the workers ask the next one.
- test_sentinel_manual_failover: SENTINEL FAILOVER (the old primary stays
  up, a writable primary, until the sentinels demote it ~10 s later): with
  min_replicas_acked = 1 no visit answered 200 may be lost; with 0, the
  workers leave the old primary when the promotion starts, and at most
  0.1 s of load may be lost.
- test_min_replicas_acked_under_load: WAIT timing out under concurrent
  load must not drop the Redis connection.

Sentinels that give answers a real one would not are in
test_sentinel_answers.py.
"""

import socket
import threading
import time

import pytest

from e2e_helpers import patience, wait_for
from e2e_http import LoadClients, get, visits_from_body
from e2e_metrics import metric_value
from e2e_daemon import wait_all_workers_ready
from e2e_servers import (MASTER_NAME, Resp, RespError, Topology, redis_info,
                         sentinel_redis_section)


@pytest.fixture
def sentinel_topology(tmp_path):
    topo = Topology(str(tmp_path / "topology"))
    try:
        topo.start()
        yield topo
    finally:
        topo.teardown()


def _start_sentinel_daemon(bare_daemon_factory, run_hitcountd, topo,
                           **redis_extra):
    """Start hitcountd with 2 workers on the sentinels and wait until each
    worker has found the primary and connected to it: /healthz answers
    before that, and a worker still asking the sentinels answers GET /
    with 503."""
    d = bare_daemon_factory(wait=False, workers=2,
                            redis=sentinel_redis_section(
                                topo.sentinel_addrs(), **redis_extra))
    # say clearly when the daemon does not know the options yet
    chk = run_hitcountd("-t", "-f", d.conf)
    assert chk.returncode == 0, (
        "hitcountd -t rejects the sentinel configuration:\n%s%s\nconfig:\n%s"
        % (chk.stdout, chk.stderr, d.config_text()))
    d.wait_healthy()
    wait_all_workers_ready(d, 2, timeout=5)
    return d


class SentinelEvents:
    """Records the events one sentinel publishes (PSUBSCRIBE *) as
    {channel: [(time, payload), ...]}, to time a failover's steps."""

    def __init__(self, sentinel):
        self.conn = Resp(sentinel.port)
        self.conn.command("PSUBSCRIBE", "*")
        self.conn.sock.settimeout(None)     # stop() shuts the socket down
        self.events = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                msg = self.conn._read()
            except (OSError, ConnectionError, ValueError):
                return
            if isinstance(msg, list) and len(msg) == 4 and \
                    msg[0] == "pmessage":
                self.events.setdefault(msg[2], []).append(
                    (time.monotonic(), msg[3]))

    def first(self, channel):
        """When channel was first published, or None."""
        got = self.events.get(channel)
        return got[0][0] if got else None

    def stop(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.conn.close()


class SentinelWatch:
    """Polls every sentinel's get-master-addr-by-name; notes when each one
    first names another port than the original primary's."""

    def __init__(self, topo):
        self.topo = topo
        self.switched = {}            # sentinel port -> (time, new port)
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        old = self.topo.primary.port
        while not self.stop_ev.is_set():
            for s in self.topo.sentinels:
                if s.port in self.switched:
                    continue
                try:
                    _, port = s.master_addr()
                except (OSError, ConnectionError, RespError, ValueError,
                        TypeError):
                    continue
                if port != old:
                    self.switched[s.port] = (time.monotonic(), port)
            if len(self.switched) == len(self.topo.sentinels):
                return
            time.sleep(0.05)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)


# --------------------------------------------------------------------------
# failovers
# --------------------------------------------------------------------------

def test_sentinel_failover(bare_daemon_factory, run_hitcountd,
                           sentinel_topology):
    topo = sentinel_topology
    t_begin = time.monotonic()
    d = _start_sentinel_daemon(bare_daemon_factory, run_hitcountd, topo)
    workers = d.wait_workers(2)
    r = get(d.port, "/", timeout=5)
    assert r.status == 200, (r, d.log())
    visits_from_body(r.body)

    load = LoadClients(d.port, n=4)
    watch = SentinelWatch(topo)
    load.start()
    try:
        # ~2 s of 200s first
        t_load = time.monotonic()
        wait_for(lambda: time.monotonic() - t_load >= 2.0
                 and load.count_200_since(t_load) >= 50, patience(10),
                 what="2 s of 200s before the failover")
        pre = load.all()
        bad = [x for x in pre if x[3] != 200 or x[5]]
        assert not bad, ("failures before the kill", bad[:5], d.log())

        watch.start()
        t_kill = time.monotonic()
        topo.primary.kill9()

        # recovery: 200s again, answered to requests sent after a failure
        def recovered():
            recs = load.all()
            fails = [x for x in recs if x[0] >= t_kill
                     and (x[3] != 200 or x[5])]
            if not fails:
                # nothing failed (yet): _check_failover says so after 3 s
                return time.monotonic() - t_kill > 3.0
            last_fail = max(x[1] for x in fails)
            ok = [x for x in recs if x[0] > last_fail and x[3] == 200]
            # a stable stretch of 200s after the last failure
            return len(ok) >= 20 and time.monotonic() - last_fail > 0.5
        try:
            wait_for(recovered, patience(15), interval=0.1,
                     what="200s again after killing the primary")
        except AssertionError:
            raise AssertionError("no recovery after kill -9 of the primary;"
                                 " hitcountd log:\n%s\n%s"
                                 % (d.log()[-4000:], topo.logs()))
        watch.stop()
        new_port = topo.sentinels[0].master_addr()[1]
        assert new_port == topo.replica.port, (new_port, topo.replica.port)
        assert topo.replica.role() == "master"

        # the old primary comes back, empty, on its port: the sentinels
        # must turn it into a replica of the new primary
        t_restart = time.monotonic()
        topo.primary.start()
        # The sentinels' own timers (INFO every 10 s for a node they see
        # as a replica, then 8 s of it reporting itself a primary) took
        # over 30 s on a busy CI machine; hitcountd plays no part here.
        wait_for(lambda: topo.primary.role() == "slave", 60, interval=0.2,
                 what="the old primary reconfigured as a replica")
        t_demoted = time.monotonic()
        t_after = time.monotonic()
        wait_for(lambda: time.monotonic() - t_after >= 2.0, 5,
                 what="2 s of load after the old primary came back")
    finally:
        load.stop()
        watch.stop()

    records = load.all()
    _check_failover(records, t_kill, topo, d)
    new_primary_value = topo.replica.visits()

    # the old primary, now a replica, catches up with the new one
    wait_for(lambda: topo.primary.visits() == new_primary_value, 10,
             what="the old primary in sync with the new primary")

    assert d.workers() == workers, ("a worker died",
                                    workers, d.workers(), d.log()[-3000:])
    m = get(d.port, "/metrics", timeout=5).text
    assert metric_value(m, "hitcountd_worker_restarts_total") == 0
    reconnects = metric_value(m, "hitcountd_redis_reconnects_total")

    fails = [x for x in records if x[0] >= t_kill and (x[3] != 200 or x[5])]
    first_fail = min(x[1] for x in fails)
    last_fail = max(x[1] for x in fails)
    first_ok = min(x[1] for x in records if x[0] > last_fail and x[3] == 200)
    sw = sorted((t - t_kill, p) for t, p in watch.switched.values())
    n503 = sum(1 for x in fails if x[3] == 503)
    nerr = sum(1 for x in fails if x[3] is None)
    print("failover: setup %.1f s; first failure +%.3f s, last failure "
          "+%.3f s, first 200 after +%.3f s (from the kill); sentinels "
          "switched at %s; %d x 503, %d connection errors; old primary a "
          "replica %.1f s after its restart; %d requests in all, "
          "redis reconnects %d; whole test %.1f s"
          % (topo.setup_seconds, first_fail - t_kill, last_fail - t_kill,
             first_ok - t_kill, ", ".join("+%.3f s" % s for s, _ in sw),
             n503, nerr, t_demoted - t_restart, len(records), reconnects,
             time.monotonic() - t_begin))
    assert topo.setup_seconds + time.monotonic() - t_begin < 60, \
        "the test took over 60 s"


def _check_failover(records, t_kill, topo, d):
    def desc(x):
        return ("sent +%.3f s, answered +%.3f s, conn %r, status %r, "
                "value %r, error %r" % (x[0] - t_kill, x[1] - t_kill,
                                        x[2], x[3], x[4], x[5]))

    before = [x for x in records if x[1] < t_kill]
    assert before and all(x[3] == 200 and x[4] is not None for x in before)
    last_before = max(x[4] for x in before)

    fails = [x for x in records if x[0] >= t_kill - 0.5
             and (x[3] != 200 or x[5])]
    assert fails, "no request failed although the primary was killed"
    # only 503 (or a connection error, counted as a failure)
    odd = [x for x in fails if x[3] not in (503, None)
           or (x[3] == 503 and x[5])]
    assert not odd, [desc(x) for x in odd[:5]]
    # failures only during the failover: none within 5 s after it
    first_fail = min(x[1] for x in fails)
    last_fail = max(x[1] for x in fails)
    late = [x for x in fails if x[1] > t_kill + 5.0]
    assert not late, ("failures more than 5 s after the kill",
                      [desc(x) for x in late[:5]], d.log()[-3000:])
    after_recovery = [x for x in records if x[0] > last_fail]
    assert after_recovery and all(x[3] == 200 for x in after_recovery)
    first_ok = min(x[1] for x in after_recovery)
    assert first_ok - t_kill < 5.0, (
        "first 200 after the failover %.3f s after the kill"
        % (first_ok - t_kill))

    # the counter goes on from the replica's value: 200s to requests sent
    # after the first failure come from the new primary
    post = [x for x in records if x[0] > first_fail and x[3] == 200]
    assert post
    post_values = [x[4] for x in post]
    assert min(post_values) >= last_before - 100, (
        "the counter restarted from %d, last value before the kill was %d"
        % (min(post_values), last_before))
    dup = len(post_values) - len(set(post_values))
    assert not dup, "%d duplicate values after the failover" % dup
    per_conn = {}
    for x in sorted(post, key=lambda x: x[0]):
        per_conn.setdefault(x[2], []).append(x[4])
    for conn, vals in per_conn.items():
        assert all(a < b for a, b in zip(vals, vals[1:])), (
            "values not increasing on connection %r: %r" % (conn, vals[:50]))
    # every answer was an INCR on the new primary, nothing else counted
    assert topo.replica.visits() == max(post_values)
    print("failover values: last before the kill %d, first after %d, "
          "lost %d, %d 200s after the failover"
          % (last_before, min(post_values),
             max(0, last_before - min(post_values) + 1), len(post)))


STALE_PRIMARY = (
    "hitcountd keeps sending INCR to the old primary after the sentinels "
    "switched (a SENTINEL FAILOVER leaves it a writable primary for ~10 s "
    "until the sentinels demote it and kill its clients); the visits "
    "answered 200 meanwhile are wiped by its resync: values repeat and the "
    "counter goes back")


@pytest.mark.parametrize("acked", [0, 1])
def test_sentinel_manual_failover(bare_daemon_factory, run_hitcountd,
                                  sentinel_topology, acked):
    """SENTINEL FAILOVER with a healthy primary: the old primary is not
    killed, the sentinels demote it ~10 s after the switch.  No visit
    answered 200 may be lost: the values stay unique and increasing, and
    the new primary has every one of them.  With min_replicas_acked = 1,
    visits on the old primary get 503 (no replica acknowledges them) until
    the old primary, demoted, is in sync with the new one.

    With min_replicas_acked = 0, what the old primary takes after the
    replica's promotion is lost (lost = 200s minus the new primary's
    count; the key is new).  Measured on the 2-core test machine, 4
    clients at 610 to 750 requests/s: 1,115 to 1,395 lost per failover
    when the workers asked the sentinels once a second (6982cf2, 8 runs;
    they left the old primary ~2.0 s after SENTINEL FAILOVER, the replica
    being promoted at ~0.2 s); 590 to 657 when following +switch-master
    and +promoted-slave only (3 runs); 0 now that they leave it at
    +failover-state-send-slaveof-noone (6 runs), with 668 to 734 requests
    answered 503 until +promoted-slave (~0.9 s)."""
    topo = sentinel_topology
    t_begin = time.monotonic()
    d = _start_sentinel_daemon(bare_daemon_factory, run_hitcountd, topo,
                               min_replicas_acked=acked)
    workers = d.wait_workers(2)
    load = LoadClients(d.port, n=4)
    events = SentinelEvents(topo.sentinels[0])
    load.start()
    try:
        t_load = time.monotonic()
        wait_for(lambda: time.monotonic() - t_load >= 2.0
                 and load.count_200_since(t_load) >= 20, patience(10),
                 what="2 s of 200s before the failover")
        t_fo = time.monotonic()
        assert topo.sentinels[0].command("SENTINEL", "FAILOVER",
                                         MASTER_NAME) == "OK"
        wait_for(lambda: all(s.master_addr()[1] == topo.replica.port
                             for s in topo.sentinels), 10, interval=0.05,
                 what="the sentinels name the replica as the primary")
        t_switch = time.monotonic()
        wait_for(lambda: topo.primary.role() == "slave", 30, interval=0.1,
                 what="the old primary demoted to a replica")
        t_demoted = time.monotonic()
        # a full resync (diskless, after repl-diskless-sync-delay)
        wait_for(lambda: redis_info(topo.primary.port).get("master_link_status")
                 == "up", 15, interval=0.1,
                 what="the old primary in sync with the new one")
        t_synced = time.monotonic()
        wait_for(lambda: time.monotonic() - t_synced >= 2.0, 5,
                 what="2 s of load after the resync")
    finally:
        load.stop()
        events.stop()

    records = load.all()
    oks = [x for x in records if x[3] == 200]
    fails = [x for x in records if x[3] != 200 or x[5]]
    values = [x[4] for x in oks]
    dups = len(values) - len(set(values))
    per_conn = {}
    for x in sorted(oks, key=lambda x: x[0]):
        per_conn.setdefault(x[2], []).append(x[4])
    backwards = [(c, v) for c, v in per_conn.items()
                 if any(a >= b for a, b in zip(v, v[1:]))]
    final = topo.replica.visits()
    lost = sum(1 for v in values if v > final)
    # the key was new: every 200 should be in the new primary's count
    missing = len(oks) - final
    rate = len(oks) / max(1e-9, records[-1][1] - records[0][0])

    def when(channel):
        t = events.first(channel)
        return "+%.3f s" % (t - t_fo) if t is not None else "never"
    print("manual failover (min_replicas_acked=%d): REPLICAOF NO ONE sent "
          "%s, +promoted-slave %s, +switch-master %s, all "
          "sentinels switched +%.3f s, old primary demoted +%.3f s, in sync "
          "+%.3f s after SENTINEL FAILOVER; %d failures (%r), last +%.3f s; "
          "%d 200s (%.0f/s), %d duplicate values, %d connections not "
          "increasing; new primary %d, max value answered %d, %d answered "
          "values above it; LOST %d (200s minus the new primary's count); "
          "whole test %.1f s"
          % (acked, when("+failover-state-wait-promotion"),
             when("+promoted-slave"), when("+switch-master"),
             t_switch - t_fo, t_demoted - t_fo, t_synced - t_fo,
             len(fails), sorted(set(x[3] for x in fails), key=str),
             max([x[1] - t_fo for x in fails] or [0]), len(oks), rate, dups,
             len(backwards), final, max(values), lost, missing,
             topo.setup_seconds + time.monotonic() - t_begin))
    assert d.workers() == workers
    assert not [x for x in fails if x[3] not in (503, None)], fails[:5]
    if acked == 0:
        # Asynchronous replication: what the old primary, still writable,
        # takes once the replica is promoted is lost with its resync
        # (STALE_PRIMARY).  The workers leave it when the sentinel starts
        # the promotion, a sentinel tick (50-100 ms) before the replica is
        # told, and use no primary until a sentinel names the new one.
        # At most 0.1 s of load may be lost or answered twice (asking the
        # sentinels once a second lost 1.5 to 1.8 s of it), and requests
        # fail only until the new primary is named.
        bound = max(5, int(0.1 * rate))
        assert missing <= bound and lost <= bound and dups <= bound, (
            "visits answered 200 lost with the old primary: %d (bound %d), "
            "%d values above the new primary's count, %d answered twice"
            % (missing, bound, lost, dups))
        log = d.log()
        assert "the sentinels are promoting a replica" in log, log[-3000:]
        assert "the sentinels moved the primary" in log, log[-3000:]
        t_named = min(t for t in (events.first("+promoted-slave"),
                                  events.first("+switch-master"))
                      if t is not None)
        assert not [x for x in fails if x[1] < t_fo
                    or x[1] > t_named + patience(0.5)], fails[-5:]
        assert [x for x in oks if t_named < x[0] < t_named + 1.0], \
            "no 200 within a second of the new primary being named"
    else:
        assert not dups, ("the same value was answered twice",
                          d.log()[-3000:])
        assert not backwards, backwards[:2]
        # every visit answered 200 is in the new primary's counter
        assert lost == 0 and final >= max(values), (final, max(values))
        assert not [x for x in fails if x[1] > t_synced + 1.5], fails[-5:]
    assert [x for x in oks if x[0] > t_synced + 1.5]


WAIT_QUEUE = (
    "with min_replicas_acked and WAIT timing out, the INCRs and WAITs "
    "queued behind a blocked WAIT exceed timeout_ms: the worker drops its "
    "Redis connection ('no reply within 1000 ms, dropping the connection') "
    "and reconnects about once a second")


# --------------------------------------------------------------------------
# min_replicas_acked
# --------------------------------------------------------------------------

def test_min_replicas_acked(bare_daemon_factory, run_hitcountd,
                            sentinel_topology):
    topo = sentinel_topology
    timeout_ms = 1000
    d = _start_sentinel_daemon(bare_daemon_factory, run_hitcountd, topo,
                               min_replicas_acked=1, timeout_ms=timeout_ms)
    d.wait_workers(2)

    # healthy primary + replica: 200 (fresh connections, both workers)
    values = []
    for _ in range(6):
        r = get(d.port, "/", timeout=5)
        assert r.status == 200, (r, d.log()[-3000:])
        values.append(visits_from_body(r.body))
    assert values == sorted(values) and len(set(values)) == len(values)
    before = topo.primary.visits()
    assert before == values[-1]

    # the replica stops acknowledging: WAIT cannot be satisfied
    topo.replica.freeze()
    try:
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            r = get(d.port, "/", timeout=10)
            times.append(time.monotonic() - t0)
            assert r.status == 503, (r, d.log()[-3000:])
            assert r.header("Retry-After") == "1", r
            assert times[-1] < timeout_ms / 1000.0 + 1.0, times
        incr_done = topo.primary.visits() - before
    finally:
        topo.replica.thaw()
    t_thaw = time.monotonic()

    def ok_again():
        r = get(d.port, "/", timeout=5)
        return r if r.status == 200 else None
    r = wait_for(ok_again, patience(5), interval=0.1,
                 what="200 again once the replica is resumed")
    t_ok = time.monotonic() - t_thaw
    v = visits_from_body(r.body)
    assert v > values[-1]
    later = []
    for _ in range(6):
        r = get(d.port, "/", timeout=5)
        assert r.status == 200, (r, d.log()[-3000:])
        later.append(visits_from_body(r.body))
    assert later == sorted(later) and len(set(later)) == len(later)
    assert later[0] > v
    print("min_replicas_acked=1: 503 after %s s with the replica stopped "
          "(%d INCRs done on the primary anyway); 200 again %.3f s after "
          "SIGCONT" % (", ".join("%.3f" % t for t in times), incr_done,
                       t_ok))


WAIT_QUEUE = (
    "with min_replicas_acked and WAIT timing out, the INCRs and WAITs "
    "queued behind a blocked WAIT exceed timeout_ms: the worker drops its "
    "Redis connection ('no reply within 1000 ms, dropping the connection') "
    "and reconnects about once a second")


def test_min_replicas_acked_under_load(bare_daemon_factory, run_hitcountd,
                                       sentinel_topology):
    """min_replicas_acked = 1 with concurrent clients and the replica
    stopped for 3 s: every GET / is answered 503 within timeout_ms (WAIT
    waits timeout_ms/2), and the worker's Redis connection is not dropped
    for it (WAIT returning 0 is an answer, not a timeout)."""
    topo = sentinel_topology
    timeout_ms = 1000
    d = _start_sentinel_daemon(bare_daemon_factory, run_hitcountd, topo,
                               min_replicas_acked=1, timeout_ms=timeout_ms)
    workers = d.wait_workers(2)
    load = LoadClients(d.port, n=8, timeout=5.0)
    load.start()
    try:
        t_load = time.monotonic()
        wait_for(lambda: time.monotonic() - t_load >= 1.0, 5,
                 what="1 s of load")
        m0 = get(d.port, "/metrics", timeout=5).text
        t_freeze = time.monotonic()
        topo.replica.freeze()
        try:
            wait_for(lambda: time.monotonic() - t_freeze >= 3.0, 5,
                     what="3 s with the replica stopped")
            t_thaw = time.monotonic()
        finally:
            topo.replica.thaw()
        wait_for(lambda: load.count_200_since(t_thaw + 1.0) >= 20,
                 patience(10),
                 what="200s again after SIGCONT")
        m1 = get(d.port, "/metrics", timeout=5).text
    finally:
        load.stop()
    records = load.all()
    frozen = [x for x in records if t_freeze + 0.6 < x[0] < t_thaw - 1.2]
    lat = sorted(x[1] - x[0] for x in frozen)
    reconnects = (metric_value(m1, "hitcountd_redis_reconnects_total")
                  - metric_value(m0, "hitcountd_redis_reconnects_total"))
    print("min_replicas_acked=1 under load, replica stopped 3 s: %d "
          "requests, statuses %r, latency <0.1 s: %d, 0.1-0.7 s: %d, "
          ">=0.7 s: %d, median %.3f s, max %.3f s; redis reconnects %d; "
          "log:\n%s"
          % (len(frozen), sorted(set(x[3] for x in frozen), key=str),
             sum(1 for t in lat if t < 0.1),
             sum(1 for t in lat if 0.1 <= t < 0.7),
             sum(1 for t in lat if t >= 0.7),
             lat[len(lat) // 2] if lat else 0, lat[-1] if lat else 0,
             reconnects, "\n".join(d.log().splitlines()[-12:])))
    assert frozen
    assert all(x[3] == 503 for x in frozen), \
        sorted(set(x[3] for x in frozen), key=str)
    assert lat[-1] < timeout_ms / 1000.0 + 0.5, lat[-5:]
    assert reconnects == 0, ("the Redis connection was dropped %d times "
                             "while WAIT could not be satisfied"
                             % reconnects, d.log()[-3000:])
    after = [x for x in records if x[0] > t_thaw + 1.0]
    assert after and all(x[3] == 200 for x in after)
    assert d.workers() == workers


# --------------------------------------------------------------------------
# an unavailable sentinel
# --------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["dead", "frozen"])
def test_sentinel_first_one_unavailable(bare_daemon_factory, run_hitcountd,
                                        sentinel_topology, how):
    """The first sentinel of the list is gone (connection refused) or hangs
    (SIGSTOP): the workers ask the next one and serve 200 all the same,
    within timeout_ms of the hang."""
    topo = sentinel_topology
    first = topo.sentinels[0]
    if how == "dead":
        first.teardown()
    else:
        first.freeze()
    t0 = time.monotonic()
    # returns once each worker has logged its connection to the primary
    # (not at the first 200: the other worker may still be waiting for
    # the hung sentinel then, and answer 503)
    d = _start_sentinel_daemon(bare_daemon_factory, run_hitcountd, topo)
    t_ready = time.monotonic() - t0
    # both workers found the primary: 20 fresh connections, all 200
    values = []
    for _ in range(20):
        r = get(d.port, "/", timeout=5)
        assert r.status == 200, (r, d.log()[-3000:])
        values.append(visits_from_body(r.body))
    assert values == sorted(values) and len(set(values)) == len(values)
    assert topo.primary.visits() == values[-1]
    print("first sentinel %s: every worker connected to the primary %.3f s "
          "after the start" % (how, t_ready))
    # timeout_ms (1000) for the hung sentinel, plus the start itself (3 s,
    # scaled for a sanitizer build: two daemon starts, hitcountd -t and
    # the daemon, are in it)
    assert t_ready < 1.0 + patience(3.0), d.log()[-3000:]
    first.thaw()
