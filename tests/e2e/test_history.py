"""The history checker on the real daemon (issue 19, section 2): clients
of three kinds record every request and its answer while a seeded nemesis
applies random faults; afterwards I1-I6 (tests/INVARIANTS.md) are checked
over the whole history and Redis's final value (e2e_history.py).

HISTORY_SEED replays a run (it is printed at the start and in the
summary); HISTORY_SECONDS is the time of faults per scenario (default 20).
The scenarios, each with a topology of its own:

- test_history_plain: redis-server in a network namespace behind a link
  (test_redis_network.FaultyRedis): Redis restart (SHUTDOWN SAVE, start),
  CLIENT PAUSE, a partition and its heal, and the daemon's faults: HUP,
  USR2 (binary upgrade), kill -9 of a worker, TTIN then TTOU.
- test_history_sentinel: primary, replica, 3 sentinels, with
  min_replicas_acked 1: kill -9 of the primary (restarted as a replica
  once the sentinels promoted the other), SENTINEL FAILOVER, CLIENT PAUSE,
  and the daemon's faults.
- test_history_cluster: three shards, with min_replicas_acked 1 and a
  standalone redis-server among the seeds: kill -9 of the key's primary,
  CLUSTER FAILOVER, redis-cli --cluster reshard of the key's slot,
  CLIENT PAUSE, and the daemon's faults.  The key's slot is the lowest of
  two primaries (the layout is made so), so a reshard moves one slot.
- test_history_unacked_failover: the Sentinel topology without
  min_replicas_acked, kill -9 of the primary only: I1, I5 and I6 are
  checked, I2, I3 and I4 only measured (printed): asynchronous
  replication may lose answered increments, as hitcountd.conf(5) says.

Violations are printed with the requests involved and the daemon's log
lines around them (log_format kv: times of day on both sides).
"""

import os
import signal
import subprocess
import time

import pytest

from e2e_daemon import wait_all_workers_ready, wait_log, log_count
from e2e_helpers import children_of, require_tool, wait_for
from e2e_history import (Clients, History, Nemesis, check, check_order,
                         count_figures, fault_plan, log_window, wall,
                         gone, history_seconds, history_seed,
                         stop_master, summary)
from e2e_servers import (MASTER_NAME, ClusterTopology, RedisServer,
                         info_fields, redis_info,
                         sentinel_redis_section)
# fixtures (noqa: F401): faulty_redis, sentinel_topology
from test_redis_network import (  # noqa: F401
    _wait_closing_sockets_gone, faulty_redis)
from test_sentinel import sentinel_topology  # noqa: F401
from test_upgrade import read_pid

TIMEOUT_MS = 1000
WORKERS = 2
KEY = "visits"
SLOT = 12263            # CLUSTER KEYSLOT visits


# --------------------------------------------------------------------------
# the checker and the plan themselves, on made-up histories
# --------------------------------------------------------------------------

def _made_up(*answers, conns=None):
    """A History of GET /, one a second, on connection 1 (or conns[i]):
    answers are (status, number, seconds taken or None for no answer,
    error)."""
    h = History()
    for i, (status, number, took, error) in enumerate(answers):
        r = h.new(0, conns[i] if conns else 1, "keepalive", "GET", "/")
        r.t_send = float(i)
        r.t_done = i + took if took is not None else None
        r.t_fail = i + 3.0 if error else None
        r.status, r.number, r.error = status, number, error
    return h


def test_checker_finds_a_number_twice():
    twice = ((200, 1, 0.1, None), (200, 1, 0.1, None))
    found = check(_made_up(*twice, conns=(1, 2)), 2, TIMEOUT_MS)
    assert [v[0] for v in found] == ["I2"], found
    # on one connection, the second is not greater either
    found = check(_made_up(*twice), 2, TIMEOUT_MS)
    assert [v[0] for v in found] == ["I2", "I4"], found


@pytest.mark.parametrize("answers, final, label", [
    (((200, 1, 0.1, None), (200, 2, 0.1, None)), 1, "I3"),
    (((200, 1, 0.1, None), (503, None, 0.1, None)), 3, "I3"),
    (((200, 2, 0.1, None), (200, 1, 0.1, None)), 2, "I4"),
    (((200, 1, 1.3, None),), 1, "I5"),
    (((None, None, None, "no answer"),), 0, "I5"),
    (((None, None, None, "stray bytes 'x'"),), 0, "I1"),
    (((None, None, None, "closed"),), 0, "I1"),
    (((500, None, 0.1, None),), 0, "I1"),
])
def test_checker_finds(answers, final, label):
    found = check(_made_up(*answers), final, TIMEOUT_MS)
    assert [v[0] for v in found] == [label], found


def test_checker_passes_a_clean_history():
    h = _made_up((200, 1, 0.1, None), (503, None, 1.2, None),
                 (200, 3, 0.1, None), (None, None, None, "closed"))
    # the 503 may have counted; the lost connection is a killed worker's
    assert check(h, 3, TIMEOUT_MS, kills=[(3.0, 3.1)]) == []
    assert check(h, 2, TIMEOUT_MS, kills=[(3.0, 3.1)]) == []



def test_checker_times_pipelined_requests_from_the_answer_before():
    """Two requests written at once: the second has its own timeout_ms
    from the answer to the first (tests/INVARIANTS.md, I5)."""
    h = _made_up((200, 1, 1.2, None), (200, 2, 1.2, None))
    h.requests[1].t_send, h.requests[1].t_done = 0.0, 2.4
    assert check(h, 2, TIMEOUT_MS) == []
    h.requests[0].t_done = 0.2
    h.requests[1].t_done = 1.6
    assert [v[0] for v in check(h, 2, TIMEOUT_MS)] == ["I5"]


def test_fault_plan_replays():
    kinds = ("a", "b", "c")
    assert fault_plan(7, kinds, 600) == fault_plan(7, kinds, 600)
    assert fault_plan(7, kinds, 600) != fault_plan(8, kinds, 600)
    assert {k for _, k, _ in fault_plan(7, kinds, 600)} == set(kinds)


# --------------------------------------------------------------------------
# the daemon's faults, across binary upgrades
# --------------------------------------------------------------------------

class DaemonFaults:
    """HUP, USR2, kill -9 of a worker, TTIN/TTOU on the daemon's current
    master (a USR2 replaces it: its pid is in the pidfile)."""

    def __init__(self, d):
        self.d = d
        self.kills = []

    def master(self):
        return read_pid(self.d.pidfile) or self.d.pid

    def workers(self):
        return children_of(self.master())

    def faults(self):
        return {"hup": self.hup, "usr2": self.usr2,
                "kill9_worker": self.kill9_worker,
                "ttin_ttou": self.ttin_ttou}

    def _wait_workers(self, n):
        wait_for(lambda: len(self.workers()) == n, 15,
                 what="%d workers of master %d" % (n, self.master()))

    def hup(self, x):
        n = log_count(self.d, "reload succeeded")
        os.kill(self.master(), signal.SIGHUP)
        wait_log(self.d, "reload succeeded", n + 1, timeout=15)

    def usr2(self, x):
        old = self.master()
        os.kill(old, signal.SIGUSR2)
        wait_for(lambda: read_pid(self.d.pidfile) not in (None, old), 15,
                 what="a new master in the pidfile")
        wait_for(lambda: gone(old), 15, what="the old master to exit")
        self._wait_workers(WORKERS)

    def kill9_worker(self, x):
        # five deaths in 10 s make the master give up (master.c): stay
        # below that, whatever the plan draws
        now = time.monotonic()
        self.kills = [t for t in self.kills if now - t < 11]
        if len(self.kills) >= 3:
            time.sleep(11 - (now - self.kills[0]))
        self._wait_workers(WORKERS)
        kids = self.workers()
        victim = kids[int(x * len(kids))]
        os.kill(victim, signal.SIGKILL)
        self.kills.append(time.monotonic())
        wait_for(lambda: victim not in self.workers() and
                 len(self.workers()) == WORKERS, 15,
                 what="the killed worker replaced")

    def ttin_ttou(self, x):
        self._wait_workers(WORKERS)
        os.kill(self.master(), signal.SIGTTIN)
        self._wait_workers(WORKERS + 1)
        time.sleep(0.2 + 1.5 * x)           # three workers serve a while
        os.kill(self.master(), signal.SIGTTOU)
        self._wait_workers(WORKERS)

    def stop(self):
        """Stop the current master (the factory stops the first one)."""
        pid = self.master()
        if pid != self.d.pid:
            stop_master(pid)
        self.d.stop()


# --------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------

def run_history(name, d, faults, final, i6=lambda: [], strict_count=True,
                settle=lambda: None, measure=None, daemon_faults=True):
    """Load, faults, then the checks.  faults: {kind: function(x)};
    final(): Redis's final value; i6(): [violation] of I6; settle(): run
    once the daemon is stopped, before final().  measure(history,
    nemesis, final value)
    prints figures, before the verdict.  daemon_faults: HUP, USR2, kill
    -9 of a worker and TTIN/TTOU besides faults."""
    seed, seconds = history_seed(), history_seconds()
    print("\nhistory %s: HISTORY_SEED=%d HISTORY_SECONDS=%g"
          % (name, seed, seconds))
    dm = DaemonFaults(d)
    kinds = dict(dm.faults() if daemon_faults else {}, **faults)
    plan = fault_plan(seed, kinds, seconds)
    clients = Clients(d.port, seed, TIMEOUT_MS).start()
    nemesis = Nemesis(kinds, plan, seconds).start()
    try:
        nemesis.join()
        # every fault is over: the daemon answers 200 again
        healed = time.monotonic()
        wait_for(lambda: sum(1 for r in clients.history.requests
                             if r.status == 200 and r.visit() and
                             r.t_send > healed) >= 20, 60, interval=0.1,
                 what="20 visits answered 200 after the last fault")
    finally:
        history = clients.stop()
        dm.stop()
    settle()
    value = final()
    kills = [(t0, t1) for kind, t0, t1, _ in nemesis.done
             if kind == "kill9_worker"]
    violations = check(history, value, TIMEOUT_MS, strict_count,
                       kills) + i6()
    text = summary(name, seed, history, nemesis, value, violations,
                   lambda t0, t1: log_window(d.log(), t0, t1))
    print(text)
    if measure:
        measure(history, nemesis, value)
    errors = nemesis.errors()
    assert not errors, "a fault failed (HISTORY_SEED=%d): %r\n%s" % (
        seed, errors, d.log()[-4000:])
    assert not violations, "HISTORY_SEED=%d\n%s" % (seed, text)


def _pause(node_cli, mode):
    """CLIENT PAUSE of 0.3 to 1.8 s: the INCRs wait behind it."""
    def pause(x):
        ms = int(300 + 1500 * x)
        node_cli("CLIENT", "PAUSE", ms, *mode)
        time.sleep(ms / 1000.0)
    return pause


# --------------------------------------------------------------------------
# plain Redis, in a network namespace
# --------------------------------------------------------------------------

def test_history_plain(faulty_redis, bare_daemon_factory):
    fr = faulty_redis
    d = bare_daemon_factory(workers=WORKERS, log_format="kv", redis={
        "host": fr.addr, "port": fr.port, "timeout_ms": TIMEOUT_MS})
    wait_all_workers_ready(d, WORKERS, timeout=5)

    def restart(x):
        fr.cli("SHUTDOWN", "SAVE", check=False)
        fr.redis.wait(10)
        time.sleep(1.5 * x)                 # Redis stays down a while
        fr._start_redis()

    def partition(x):
        fr.link(False)
        try:
            time.sleep(0.5 + 2.5 * x)
        finally:
            fr.link(True)

    def pause(x):
        return _pause(lambda *a: fr.cli(*[str(w) for w in a]),
                      () if x < 0.5 else ("WRITE",))(x)

    run_history("plain", d, {"redis_restart": restart, "client_pause": pause,
                             "partition": partition},
                final=fr.visits,
                settle=lambda: _wait_closing_sockets_gone(fr))


# --------------------------------------------------------------------------
# Sentinel
# --------------------------------------------------------------------------

def _sentinel_daemon(bare_daemon_factory, topo, acked):
    d = bare_daemon_factory(wait=False, workers=WORKERS, log_format="kv",
                            redis=sentinel_redis_section(
                                topo.sentinel_addrs(),
                                min_replicas_acked=acked,
                                timeout_ms=TIMEOUT_MS))
    d.wait_healthy()
    wait_all_workers_ready(d, WORKERS, timeout=10)
    return d


class SentinelFaults:
    """Failovers of the Sentinel topology; the two redis-servers swap
    roles, the node killed comes back as a replica of the other."""

    def __init__(self, topo):
        self.topo = topo

    def primary(self):
        port = self.topo.sentinels[0].master_addr()[1]
        return next(n for n in (self.topo.primary, self.topo.replica)
                    if n.port == port)

    def other(self, node):
        return self.topo.replica if node is self.topo.primary \
            else self.topo.primary

    def _wait_promoted(self, node):
        wait_for(lambda: all(s.master_addr()[1] == node.port
                             for s in self.topo.sentinels), 30,
                 interval=0.1, what="the sentinels to promote %s" % node.name)

    def _settled(self, why):
        """One primary named by every sentinel, the other node its replica,
        in sync, and a majority of the sentinels (the quorum, 2) sees it
        so: they can promote it.  Which node is the primary is the
        sentinels' word, not the fault's: with down-after-milliseconds at
        1000, a sentinel may fail the new primary over once more, at once,
        on a stale view of its first PING (seen with Redis 7.0)."""
        ports = {s.master_addr()[1] for s in self.topo.sentinels}
        if len(ports) != 1:
            why[0] = "the sentinels name %s" % sorted(ports)
            return False
        primary = next((n for n in (self.topo.primary, self.topo.replica)
                        if n.port in ports), None)
        if primary is None:
            why[0] = "the sentinels name port %s, neither node" % ports
            return False
        node = self.other(primary)
        rep = redis_info(node.port)
        if rep.get("master_link_status") != "up" or \
                int(rep.get("master_port", 0)) != primary.port:
            why[0] = "%s: role %s, master_port %s, link %s; %s primary" % (
                node.name, rep.get("role"), rep.get("master_port"),
                rep.get("master_link_status"), primary.name)
            return False
        # caught up: what a kill -9 loses then is the asynchronous tail
        # alone, not the rest of a full sync
        behind = int(redis_info(primary.port)["master_repl_offset"]) - \
            int(rep.get("slave_repl_offset", -1))
        if behind > 10000:
            why[0] = "%s: %d bytes behind" % (node.name, behind)
            return False
        seen, views = 0, []
        for s in self.topo.sentinels:
            mine = [dict(zip(r[0::2], r[1::2])) for r in
                    s.command("SENTINEL", "replicas", MASTER_NAME)]
            mine = [r for r in mine if int(r["port"]) == node.port]
            views.append("%s: %s" % (s.name, [
                (r["flags"], r.get("master-link-status")) for r in mine]
                or "not listed"))
            seen += any("s_down" not in r["flags"] and
                        "disconnected" not in r["flags"] and
                        r.get("master-link-status") == "ok" for r in mine)
        why[0] = "%s seen by %d sentinels; %s" % (node.name, seen,
                                                  "; ".join(views))
        return seen >= 2

    def _wait_settled(self):
        why = ["not looked yet"]
        try:
            wait_for(lambda: self._settled(why), 90, interval=0.2,
                     what="a primary and its replica seen by the sentinels")
        except AssertionError as e:
            logs = "".join("\n--- %s\n%s" % (n.name, n.log()[-2500:])
                           for n in [self.topo.primary, self.topo.replica] +
                           self.topo.sentinels)
            raise AssertionError("%s (last: %s)%s" % (e, why[0], logs))

    def kill9_primary(self, x):
        old = self.primary()
        new = self.other(old)
        old.kill9()
        self._wait_promoted(new)
        time.sleep(x)                       # the old one stays down a while
        # back as a replica at once: never an empty primary
        extra = old.extra
        i = extra.index("--replicaof") if "--replicaof" in extra else None
        if i is not None:
            extra = extra[:i] + extra[i + 3:]
        old.extra = extra + ["--replicaof", "127.0.0.1", str(new.port)]
        old.start()
        self._wait_settled()

    def failover(self, x):
        old = self.primary()
        new = self.other(old)
        s = self.topo.sentinels[int(x * len(self.topo.sentinels))]
        assert s.command("SENTINEL", "FAILOVER", MASTER_NAME) == "OK"
        self._wait_promoted(new)
        self._wait_settled()

    def faults(self, planned=True):
        f = {"kill9_primary": self.kill9_primary}
        if planned:
            f.update({"sentinel_failover": self.failover,
                      "client_pause": lambda x: _pause(
                          self.primary().command, ("WRITE",))(x)})
        return f

    def final(self):
        return self.primary().visits()

    def i6(self):
        """A sentinel holds no key; its INFO keyspace says so."""
        out = []
        for s in self.topo.sentinels:
            if "keys=" in s.command("INFO", "keyspace"):
                out.append(("I6", "sentinel %s holds a key" % s.name, []))
        return out


def test_history_sentinel(sentinel_topology, bare_daemon_factory):
    topology = sentinel_topology
    d = _sentinel_daemon(bare_daemon_factory, topology, acked=1)
    sf = SentinelFaults(topology)
    run_history("sentinel", d, sf.faults(), final=sf.final, i6=sf.i6)


def test_history_unacked_failover(sentinel_topology, bare_daemon_factory):
    """What kill -9 of the primary loses without min_replicas_acked:
    measured, not asserted (I2, I3, I4: the count may go back); I1, I5
    and I6 are checked.  The only fault is that one."""
    d = _sentinel_daemon(bare_daemon_factory, sentinel_topology, acked=0)
    sf = SentinelFaults(sentinel_topology)

    def measure(history, nemesis, value):
        n200, unsure, diff, repeated = count_figures(history, value)
        kills = sum(1 for f in nemesis.done if f[0] == "kill9_primary")
        print("without min_replicas_acked: %d kill -9 of the primary; %d "
              "visits answered 200, Redis holds %d: %d answered increments "
              "lost; %d numbers handed out twice; %d times a number lower "
              "than the one before on a connection" % (
                  kills, n200, value, max(0, -diff), len(repeated),
                  len(check_order(history))))
        for kind, t0, t1, _ in nemesis.done:
            before = [r.number for r in history.requests
                      if r.number is not None and r.t_done <= t0]
            after = [r.number for r in history.requests
                     if r.number is not None and r.t_send >= t0]
            if before and after:
                print("  kill -9 at %s: last number answered before %d, "
                      "first after %d: %d lost" % (
                          wall(t0), max(before), min(after),
                          max(0, max(before) + 1 - min(after))))
    run_history("unacked failover", d, sf.faults(planned=False),
                final=sf.final, i6=sf.i6, strict_count=False,
                measure=measure, daemon_faults=False)


# --------------------------------------------------------------------------
# Redis Cluster
# --------------------------------------------------------------------------

class HistoryCluster(ClusterTopology):
    """Three shards laid out so that the key's slot is the lowest of its
    primary's: A 0..SLOT-1, B SLOT..14000, C 14001..16383, each primary
    with one replica (nodes 3, 4, 5 of nodes 0, 1, 2).  Moving the slot
    between B's and C's primaries with redis-cli --cluster reshard, which
    takes the lowest slots first, then moves one slot each time."""

    RANGES = ((0, SLOT - 1), (SLOT, 14000), (14001, 16383))

    def start(self):
        for node in self.nodes:
            node.start()
        for i, node in enumerate(self.nodes):
            node.command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        for node, (lo, hi) in zip(self.nodes, self.RANGES):
            node.command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        first = self.nodes[0]
        bus = first.extra[first.extra.index("--cluster-port") + 1]
        for node in self.nodes[1:]:
            node.command("CLUSTER", "MEET", "127.0.0.1", first.port, bus)
        wait_for(lambda: all(int(info_fields(n.command("CLUSTER", "INFO"))
                                 ["cluster_known_nodes"]) == len(self.nodes)
                             for n in self.nodes), 30, interval=0.1,
                 what="every node to know the others")
        for primary, replica in zip(self.nodes[:3], self.nodes[3:]):
            replica.command("CLUSTER", "REPLICATE", self.node_id(primary))
        self.wait_ok(30)


@pytest.fixture
def history_cluster(tmp_path):
    topo = HistoryCluster(str(tmp_path / "cluster"))
    lone = RedisServer(str(tmp_path / "lone"), "lone")
    try:
        topo.start()
        lone.start()
        yield topo, lone
    finally:
        lone.teardown()
        topo.teardown()


class ClusterFaults:
    def __init__(self, topo):
        self.topo = topo

    def asker(self):
        return next(n for n in self.topo.nodes if n.running())

    def owner(self):
        return self.topo.slot_nodes(SLOT, self.asker())

    def _wait_owner(self, node, seconds=30):
        wait_for(lambda: all(self.topo.slot_nodes(SLOT, n)[0] is node
                             for n in self.topo.nodes if n.running()),
                 seconds, interval=0.1,
                 what="every node to see %s serve the slot" % node.name)

    def kill9_primary(self, x):
        old, (replica,) = self.owner()
        old.kill9()
        self._wait_owner(replica)
        time.sleep(x)
        old.start()                 # nodes.conf: it rejoins as a replica
        self.topo.wait_ok(60)

    def failover(self, x):
        """CLUSTER FAILOVER, asked again until it happens: right after a
        failover the new replica may still be catching up with its new
        primary, and Redis then gives the manual failover up (its timeout
        is 5 s) without a word; one ask timed out a 120 s run with 0
        violations (HISTORY_SEED=918204824, two failovers back to back)."""
        _, (replica,) = self.owner()
        deadline = time.monotonic() + 60
        while True:
            replica.command("CLUSTER", "FAILOVER")
            try:
                self._wait_owner(replica, 10)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        self.topo.wait_ok(60)

    def reshard(self, x):
        owner, _ = self.owner()
        lowest = {}
        for lo, hi, (host, port, *_), *_ in self.asker().command(
                "CLUSTER", "SLOTS"):
            lowest[port] = min(lo, lowest.get(port, lo))
        dst = next(self.topo.node(p) for p, lo in lowest.items()
                   if p != owner.port and lo > SLOT)
        cli = require_tool("redis-cli", "redis-tools", env="REDIS_CLI_BIN")
        res = subprocess.run(
            [cli, "--cluster", "reshard", "127.0.0.1:%d" % owner.port,
             "--cluster-from", self.topo.node_id(owner),
             "--cluster-to", self.topo.node_id(dst),
             "--cluster-slots", "1", "--cluster-yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
        assert res.returncode == 0, res.stdout[-3000:]
        self._wait_owner(dst)

    def faults(self):
        return {"kill9_primary": self.kill9_primary,
                "cluster_failover": self.failover,
                "reshard": self.reshard,
                "client_pause": lambda x: _pause(
                    self.owner()[0].command, ("WRITE",))(x)}

    def final(self):
        return self.owner()[0].visits()


def test_history_cluster(history_cluster, bare_daemon_factory):
    topo, lone = history_cluster
    seeds = ["127.0.0.1:%d" % lone.port] + topo.addrs()
    d = bare_daemon_factory(wait=False, workers=WORKERS, log_format="kv",
                            redis={"host": None, "port": None,
                                   "cluster": seeds,
                                   "min_replicas_acked": 1,
                                   "timeout_ms": TIMEOUT_MS})
    d.wait_healthy()
    wait_all_workers_ready(d, WORKERS, timeout=10)
    cf = ClusterFaults(topo)

    def i6():
        out = []
        if lone.command("EXISTS", KEY):
            out.append(("I6", "the standalone seed holds %s = %s"
                        % (KEY, lone.visits()), []))
        owner, _ = cf.owner()
        for n in topo.nodes:
            # MOVED for the key itself: count the keys
            if n is not owner and n.running() and n.role() == "master" \
                    and n.command("DBSIZE"):
                out.append(("I6", "primary %s, not serving the slot, "
                            "holds a key" % n.name, []))
        return out

    run_history("cluster", d, cf.faults(), final=cf.final, i6=i6)
