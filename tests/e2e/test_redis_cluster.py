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
  second of ASK, SETSLOT NODE), then back at once (MOVED): no request
  fails, the count is exact, and /metrics shows both redirections.
- test_cluster_bad_seeds: seeds where nothing listens, or a Redis that
  is no cluster: 503, one clear warning per worker, no reconnect storm.
"""

import threading
import time

import pytest

from e2e_daemon import log_count, wait_all_workers_ready, wait_log
from e2e_helpers import free_port, patience, wait_for
from e2e_http import LoadClients, get
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


def _start(bare_daemon_factory, run_hitcountd, seeds, workers=2, ready=True):
    d = bare_daemon_factory(wait=False, workers=workers,
                            redis={"host": None, "port": None,
                                   "cluster": list(seeds),
                                   "timeout_ms": 1000})
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

    records = _run_load(d, 3.0)
    n200, values, bad = _outcome(records)
    assert not bad, bad[:5]
    assert n200 > 200, n200
    count = owner.visits()
    assert count == n200, (count, n200)
    assert sorted(values) == list(range(1, n200 + 1))
    # the seed never got the key
    assert seed.command("DBSIZE") == 0
    m = get(d.port, "/metrics").text
    print("count exact: %d visits in 3 s through seed %d, owner %d; "
          "setup %.1f s" % (n200, seed.port, owner.port,
                            cluster.setup_seconds))
    assert metric_value(m, "hitcountd_redis_errors_total") == 0
