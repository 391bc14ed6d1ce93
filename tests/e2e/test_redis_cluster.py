"""Redis Cluster (issue 13, item 5): hitcountd finds the node serving the
slot of its key with CLUSTER SLOTS, and follows MOVED and ASK, on a real
cluster of six redis-server nodes (three primaries, three replicas;
ClusterTopology in e2e_servers.py).

- test_cluster_count_exact: through a seed that does not serve the slot,
  under load: every answer 200, the count in the cluster is the number
  of 200s, each value once.
- test_cluster_failover: kill -9 of the primary serving the slot under
  light load: 503 while it is down, 200 again within a few seconds of
  the replica saying role:master; what kill -9 loses (asynchronous
  replication) is measured and printed, and nothing is counted above
  what was answered.
- test_cluster_reshard: the slot moves to another primary under load,
  with an ASK phase (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, a
  second of ASK, SETSLOT NODE), then back at once (MIGRATE and SETSLOT
  NODE in one pipeline: MOVED on Redis 7 and 8; Valkey 8.1 sometimes
  answers ASK in between), then its primary hands over to its replica
  (CLUSTER FAILOVER: MOVED on every server): no request fails, the count
  is exact, and /metrics shows both redirections.
- test_cluster_reshard_redis_cli: the same with redis-cli --cluster
  reshard, moving the slots of the key's primary up to the key's to
  another.
- test_cluster_bad_seeds: seeds where nothing listens, or a Redis that
  is no cluster: 503, one clear warning per worker, no reconnect storm.
- test_cluster_reload_seeds: a reload puts new seeds in force.
- test_cluster_config_errors: hitcountd -t refuses a malformed seed, and
  cluster with sentinels, a socket, or a database other than 0.
"""

import datetime
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from e2e_daemon import log_count, wait_all_workers_ready, wait_log
from e2e_helpers import free_port, patience, require_tool, wait_for
from e2e_http import LoadClients, get, poll_until_200, visits_from_body
from e2e_metrics import metric_value
from e2e_servers import ClusterTopology, Resp

KEY = "visits"
SLOT = 12263            # CLUSTER KEYSLOT visits


@pytest.fixture
def cluster(tmp_path):
    topo = ClusterTopology(str(tmp_path / "cluster"))
    try:
        topo.start()
        yield topo
    finally:
        topo.teardown()


def _start(bare_daemon_factory, run_hitcountd, seeds, workers=2, ready=True,
           **overrides):
    d = bare_daemon_factory(wait=False, workers=workers,
                            redis={"host": None, "port": None,
                                   "cluster": list(seeds),
                                   "timeout_ms": 1000}, **overrides)
    chk = run_hitcountd("-t", "-f", d.conf)
    assert chk.returncode == 0, (chk.stdout, chk.stderr, d.config_text())
    d.wait_healthy()
    if ready:
        wait_all_workers_ready(d, workers, timeout=10)
    return d


def _other_seed(cluster):
    """A primary that does not serve the slot: the daemon must be sent on."""
    owner, _ = cluster.slot_nodes(SLOT)
    for rng in cluster.nodes[0].command("CLUSTER", "SLOTS"):
        if rng[2][1] != owner.port:
            return cluster.node(rng[2][1])
    raise AssertionError("one primary serves every slot")


def _outcome(records):
    """(number of 200s, [values], [failures])."""
    ok = [r for r in records if r[3] == 200 and not r[5]]
    bad = [r for r in records if r[3] != 200 or r[5]]
    return len(ok), [r[4] for r in ok], bad


def _assert_exact(d, records, owner):
    """Every request answered 200, each value once, and owner holds the
    count of them.  Returns that count."""
    n200, values, bad = _outcome(records)
    assert not bad, ("failed requests", len(bad), bad[:5], d.log()[-3000:])
    count = owner.visits()
    assert count == n200, (count, n200)
    assert sorted(values) == list(range(1, n200 + 1))
    return n200


def _loaded(bare_daemon_factory, run_hitcountd, cluster):
    """A daemon with every node as a seed, and 0.5 s of load running on
    it: (daemon, LoadClients)."""
    d = _start(bare_daemon_factory, run_hitcountd,
               ["127.0.0.1:%d" % n.port for n in cluster.nodes])
    load = LoadClients(d.port, n=6, pause=0.002)
    load.start()
    _answered(load, time.monotonic(), "before the first step")
    return d, load


def _answered(load, since, what, n=20):
    """Wait until the load got n answers 200 for requests sent since
    `since`: each step of a scenario then really ran under load."""
    wait_for(lambda: load.count_200_since(since) >= n, patience(10),
             interval=0.02, what="%d answers 200 %s" % (n, what))


def _run_load(d, seconds, n=6):
    load = LoadClients(d.port, n=n, pause=0.002)
    load.start()
    try:
        time.sleep(seconds)
    finally:
        load.stop()
    return load.all()


def test_cluster_count_exact(bare_daemon_factory, run_hitcountd, cluster):
    seed = _other_seed(cluster)
    d = _start(bare_daemon_factory, run_hitcountd,
               ["127.0.0.1:%d" % seed.port])
    owner, _ = cluster.slot_nodes(SLOT)
    assert owner.command("CLUSTER", "KEYSLOT", KEY) == SLOT
    # sent on by the seed's CLUSTER SLOTS
    assert "says slot %d of key '%s' is served by 127.0.0.1:%d" % (
        SLOT, KEY, owner.port) in d.log(), d.log()

    n200 = _assert_exact(d, _run_load(d, 3.0), owner)
    assert n200 > 200, n200
    # the seed never got the key
    assert seed.command("DBSIZE") == 0
    m = get(d.port, "/metrics").text
    print("count exact: %d visits in 3 s through seed %d, owner %d; "
          "setup %.1f s" % (n200, seed.port, owner.port,
                            cluster.setup_seconds))
    assert metric_value(m, "hitcountd_redis_errors_total") == 0


class RoleWatch:
    """Notes when node first says role:master (ROLE, polled every 20 ms)."""

    def __init__(self, node):
        self.node = node
        self.t_master = None
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_ev.is_set() and self.t_master is None:
            try:
                if self.node.role() == "master":
                    self.t_master = time.monotonic()
            except (OSError, ConnectionError):
                pass
            time.sleep(0.02)

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)


def test_cluster_failover(bare_daemon_factory, run_hitcountd, cluster):
    owner, replicas = cluster.slot_nodes(SLOT)
    assert len(replicas) == 1, replicas
    replica = replicas[0]
    seeds = ["127.0.0.1:%d" % n.port for n in cluster.nodes]
    d = _start(bare_daemon_factory, run_hitcountd, seeds)
    load = LoadClients(d.port, n=2, pause=0.01)
    load.start()
    watch = None
    try:
        t_load = time.monotonic()
        wait_for(lambda: load.count_200_since(t_load) >= 50, patience(10),
                 what="200s before the kill")
        # the replica has what was answered so far (replication is async)
        wait_for(lambda: cluster.count(replica) >= owner.visits() - 10, 5,
                 what="the replica close behind")
        watch = RoleWatch(replica)
        t_kill = time.monotonic()
        owner.kill9()
        wait_for(lambda: watch.t_master is not None, patience(20),
                 interval=0.1, what="the replica promoted")
        t_promoted = watch.t_master
        wait_for(lambda: load.count_200_since(t_promoted) >= 20,
                 patience(10), interval=0.1,
                 what="200s after the promotion")
    finally:
        load.stop()
        if watch is not None:
            watch.stop()
    records = load.all()
    after_kill = [r for r in records if r[0] >= t_kill]
    fails = [r for r in after_kill if r[3] != 200 or r[5]]
    # while the primary is down the daemon answers 503, never hangs up
    assert fails, "nothing failed while the slot had no primary"
    assert all(r[3] == 503 for r in fails), fails[:5]
    first_ok = min(r[1] for r in after_kill
                   if r[3] == 200 and r[0] > max(f[1] for f in fails))
    recovery = first_ok - t_promoted
    assert recovery < 3.0, ("200 again %.2f s after the promotion"
                            % recovery)
    assert not [r for r in records if r[0] > t_promoted + 3.0
                and r[3] != 200], "503 long after the promotion"

    # nothing counted above what was answered: each client has one
    # request in flight, which kill -9 may have let through unanswered
    n200 = sum(1 for r in records if r[3] == 200)
    count = cluster.count(replica)
    assert count <= n200 + load.n, (count, n200)
    values = [r[4] for r in records if r[3] == 200]
    repeated = len(values) - len(set(values))
    print("cluster failover: promoted %.2f s after kill -9, 200 again "
          "%.3f s after the promotion; %d x 503; %d visits answered 200, "
          "%d counted by the new primary (%d lost by kill -9: asynchronous "
          "replication), %d values answered twice" % (
              t_promoted - t_kill, recovery, len(fails), n200, count,
              n200 - count, repeated))
    assert d.workers(), "no worker"
    m = get(d.port, "/metrics").text
    assert metric_value(m, "hitcountd_worker_restarts_total") == 0


def _migrate(cluster, src, dst, ask_window):
    """Move SLOT (and the key) from src to dst, primaries, under the
    load that runs meanwhile.  ask_window > 0: the slot stays migrating
    that long after the key has moved, so src answers ASK; 0: MIGRATE
    and src's SETSLOT NODE go out in one write, so src never answers ASK,
    only MOVED."""
    src_id, dst_id = cluster.node_id(src), cluster.node_id(dst)
    dst.command("CLUSTER", "SETSLOT", SLOT, "IMPORTING", src_id)
    src.command("CLUSTER", "SETSLOT", SLOT, "MIGRATING", dst_id)
    c = Resp(src.port, timeout=10)
    try:
        if ask_window > 0:
            time.sleep(0.3)         # INCRs still executed on src
            c.command("MIGRATE", "127.0.0.1", dst.port, KEY, 0, 5000)
            time.sleep(ask_window)
            dst.command("CLUSTER", "SETSLOT", SLOT, "NODE", dst_id)
            c.command("CLUSTER", "SETSLOT", SLOT, "NODE", dst_id)
        else:
            # one pipeline: MIGRATE blocks src, and the SETSLOT right
            # behind it runs before any other client's command
            c.pipeline(("MIGRATE", "127.0.0.1", dst.port, KEY, 0, 5000),
                       ("CLUSTER", "SETSLOT", SLOT, "NODE", dst_id))
            dst.command("CLUSTER", "SETSLOT", SLOT, "NODE", dst_id)
    finally:
        c.close()
    _wait_slot_on(cluster, dst)


def _wait_slot_on(cluster, node):
    """Wait until every node says node serves SLOT (the primaries that
    took no part learn it from the others' gossip)."""
    wait_for(lambda: all(cluster.slot_nodes(SLOT, n)[0] is node
                         for n in cluster.nodes), 10, interval=0.05,
             what="every node to see the slot on its new primary")


def test_cluster_reshard(bare_daemon_factory, run_hitcountd, cluster):
    src, (src_replica,) = cluster.slot_nodes(SLOT)
    dst = _other_seed(cluster)
    d, load = _loaded(bare_daemon_factory, run_hitcountd, cluster)
    try:
        _migrate(cluster, src, dst, ask_window=1.0)
        m1 = get(d.port, "/metrics").text
        _answered(load, time.monotonic(), "with the slot on its new primary")
        _migrate(cluster, dst, src, ask_window=0)
        _answered(load, time.monotonic(), "with the slot moved back")
        m2 = get(d.port, "/metrics").text
        # a planned failover of the slot's primary: the old one answers
        # MOVED once its replica has taken over, whatever the server
        src_replica.command("CLUSTER", "FAILOVER")
        _wait_slot_on(cluster, src_replica)
        _answered(load, time.monotonic(), "after the failover")
    finally:
        load.stop()
    m3 = get(d.port, "/metrics").text
    n200 = _assert_exact(d, load.all(), src_replica)
    assert dst.command("DBSIZE") == 0

    def redirects(m, kind):
        return metric_value(m, "hitcountd_redis_redirects_total", kind=kind)
    print("cluster reshard: %d requests, all 200, count exact; "
          "redirections ASK/MOVED: %d/%d moving the slot away, %d/%d "
          "moving it back at once, %d/%d in the planned failover" % (
              n200, redirects(m1, "ask"), redirects(m1, "moved"),
              redirects(m2, "ask") - redirects(m1, "ask"),
              redirects(m2, "moved") - redirects(m1, "moved"),
              redirects(m3, "ask") - redirects(m2, "ask"),
              redirects(m3, "moved") - redirects(m2, "moved")))
    assert redirects(m1, "ask") > 0, m1
    assert redirects(m3, "moved") > 0, m3
    assert metric_value(m3, "hitcountd_redis_errors_total") == 0


_KV_RE = re.compile(r'^ts=(\S+)Z level=(\w+) pid=(\d+) msg="(.*)"$')

# the pauses between attempts: from 50 ms, doubled, up to 500 ms
_PAUSES_MS = (50, 100, 200, 400, 500)


def _attempts(d, text):
    """{worker pid: [(seconds, level)]} of the kv log lines holding text."""
    out = {}
    for line in d.log().splitlines():
        m = _KV_RE.match(line)
        if m and text in m.group(4):
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
            out.setdefault(int(m.group(3)), []).append(
                (t.timestamp(), m.group(2)))
    return out


def _assert_paced(d, text, workers=2):
    """Each worker's first failed attempt (text) is a warning, the next
    five are debug lines, and they come after the pauses of the backoff
    (timestamps of the log itself): no storm of attempts or warnings.
    Returns the number of attempts logged."""
    n = len(_PAUSES_MS) + 1

    def enough():
        seen = _attempts(d, text)
        return (len(seen) == workers and
                all(len(v) >= n for v in seen.values()) and seen)
    try:
        seen = wait_for(enough, patience(10), interval=0.05,
                        what="%d attempts per worker" % n)
    except AssertionError as exc:
        raise AssertionError("%s; log:\n%s" % (exc, d.log()[-3000:]))
    for pid, tries in seen.items():
        levels = [lv for _, lv in tries[:n]]
        assert levels == ["warning"] + ["debug"] * (n - 1), (pid, levels)
        took = tries[n - 1][0] - tries[0][0]
        assert took >= sum(_PAUSES_MS) / 1000.0 - 0.005, \
            "worker %d: %d attempts in %.3f s" % (pid, n, took)
    assert log_count(d, "level=warning") == workers, d.log()
    return sum(len(v) for v in seen.values())


def test_cluster_bad_seeds(bare_daemon_factory, run_hitcountd, redis_server):
    dead = [free_port(), free_port()]
    d = _start(bare_daemon_factory, run_hitcountd,
               ["127.0.0.1:%d" % p for p in dead], ready=False,
               args=("-d",), log_format="kv")
    for _ in range(20):
        r = get(d.port, "/")
        assert r.status == 503, r
    # one warning per worker, then quiet attempts (debug), paced by the
    # pause of up to 500 ms: no storm of connections or log lines
    _assert_paced(d, "cannot connect to cluster node 127.0.0.1:")
    assert "Connection refused" in d.log()

    # a Redis without cluster support says so, and is logged so
    def connections():
        return int(redis_server.command("INFO", "stats").split(
            "total_connections_received:")[1].split()[0])
    before = connections()
    d2 = _start(bare_daemon_factory, run_hitcountd,
                ["127.0.0.1:%d" % redis_server.port], ready=False,
                args=("-d",), log_format="kv")
    assert get(d2.port, "/").status == 503
    tries = _assert_paced(d2, "bad reply to CLUSTER SLOTS: ERR This "
                          "instance has cluster support disabled")
    assert redis_server.visits() == 0
    # one connection per attempt (and its INFO, and one attempt per
    # worker that may be under way), no more
    connects = connections() - before
    print("bad seeds: 503 at once; a non-cluster Redis got %d connections "
          "for %d attempts logged by 2 workers" % (connects, tries))
    assert connects <= tries + 2 + 2, (connects, tries)


def test_non_cluster_seed_counts_nothing(bare_daemon_factory, run_hitcountd,
                                         redis_server):
    """I6: a Redis without cluster support listed as the seed is asked
    CLUSTER SLOTS on every attempt; visits that arrive meanwhile must wait
    for the answer, not go out behind the question and be counted there.
    Under load for 3 s every attempt has clients waiting."""
    d = _start(bare_daemon_factory, run_hitcountd,
               ["127.0.0.1:%d" % redis_server.port], ready=False)
    records = _run_load(d, 3.0, n=8)
    statuses = {r[3] for r in records}
    assert 200 not in statuses, statuses
    assert len(records) > 50, len(records)
    wait_log(d, "bad reply to CLUSTER SLOTS", count=2)
    # attempts went on under the load (later failures are logged at debug)
    connects = int(redis_server.command("INFO", "stats").split(
        "total_connections_received:")[1].split()[0])
    assert connects >= 6, connects
    assert redis_server.visits() == 0, (redis_server.visits(),
                                        len(records))


def test_cluster_reload_seeds(bare_daemon_factory, run_hitcountd, cluster):
    d = _start(bare_daemon_factory, run_hitcountd,
               ["127.0.0.1:%d" % free_port()], ready=False)
    assert get(d.port, "/").status == 503
    d.reconfigure(redis={"cluster": ["127.0.0.1:%d" %
                                     cluster.nodes[0].port]})
    os.kill(d.pid, signal.SIGHUP)
    r, _ = poll_until_200(d.port, patience(10))
    owner, _ = cluster.slot_nodes(SLOT)
    assert visits_from_body(r.body) == owner.visits()


@pytest.mark.parametrize("extra, env, message", [
    ('cluster = {"127.0.0.1"}', None,
     "option 'cluster': '127.0.0.1' is not HOST:PORT"),
    ('cluster = {"127.0.0.1:0"}', None,
     "option 'cluster': '127.0.0.1:0' is not HOST:PORT"),
    ('cluster = {"127.0.0.1:7000"}\n sentinels = {"127.0.0.1:26379"}', None,
     "option 'sentinels' and option 'cluster' exclude each other"),
    ('cluster = {"127.0.0.1:7000"}\n socket = "/run/redis.sock"', None,
     "option 'socket' (or a unix:// REDIS_URL) and option 'cluster' "
     "exclude each other"),
    ('cluster = {"127.0.0.1:7000"}\n db = 3', None,
     "option 'cluster' needs database 0 (a cluster has no other), not 3"),
    ('cluster = {"127.0.0.1:7000"}',
     {"REDIS_URL": "redis://127.0.0.1:7000/2"},
     "option 'cluster' needs database 0 (a cluster has no other), not 2"),
])
def test_cluster_config_errors(run_hitcountd, tmp_path, extra, env, message):
    conf = tmp_path / "hitcountd.conf"
    conf.write_text("redis {\n %s\n}\n" % extra)
    r = run_hitcountd("-t", "-f", conf, env=env)
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr


def test_cluster_reshard_redis_cli(bare_daemon_factory, run_hitcountd,
                                   cluster):
    """redis-cli --cluster reshard moves the slots of the key's primary,
    lowest first, up to the key's, to another primary, under load."""
    src, _ = cluster.slot_nodes(SLOT)
    dst = _other_seed(cluster)
    ranges = [rng for rng in src.command("CLUSTER", "SLOTS")
              if rng[2][1] == src.port]
    assert len(ranges) == 1, ranges      # as --cluster create makes it
    nslots = SLOT - ranges[0][0] + 1
    d, load = _loaded(bare_daemon_factory, run_hitcountd, cluster)
    try:
        t0 = time.monotonic()
        res = subprocess.run(
            [require_tool("redis-cli", "redis-tools", env="REDIS_CLI_BIN"),
             "--cluster", "reshard", "127.0.0.1:%d" % src.port,
             "--cluster-from", cluster.node_id(src),
             "--cluster-to", cluster.node_id(dst),
             "--cluster-slots", str(nslots), "--cluster-yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
        took = time.monotonic() - t0
        assert res.returncode == 0, res.stdout[-3000:]
        _wait_slot_on(cluster, dst)
        _answered(load, time.monotonic(), "after the reshard")
    finally:
        load.stop()
    m = get(d.port, "/metrics").text
    n200 = _assert_exact(d, load.all(), dst)
    redirects = sum(metric_value(m, "hitcountd_redis_redirects_total",
                                 kind=k) for k in ("ask", "moved"))
    print("redis-cli reshard of %d slots in %.1f s: %d requests, all 200, "
          "count exact, %d redirections (ASK %d)" % (
              nslots, took, n200, redirects,
              metric_value(m, "hitcountd_redis_redirects_total",
                           kind="ask")))
    assert redirects > 0, m
