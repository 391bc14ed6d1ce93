"""A faulty network between hitcountd and Redis (issue 13, item 8).

redis-server runs in a network namespace that the test creates, on an
address of a private /30 (10.213.x.y, picked free for the run), reached
from the host over a link that netwire.py carries: delay and loss as `tc
netem` would give them, and a partition by setting the namespace's end
of the link down.  (netem itself is not used: the kernels these tests run
on are built without it, and without modules to load.)  The namespace has
no other interface, and the host has an `unreachable` route of its own for
the /30, so no packet for it ever leaves the machine, even with the link
gone.

test_faulty_network: hitcountd (2 workers, timeout_ms 500) under load from
clients on fresh connections and on keep-alive connections, through
phases: a clean link; 50 ms of delay towards Redis; the delay and 5 % loss
in each direction; a partition (the link down); the link back and clean.
Each phase lasts until enough requests ran in it (the partition: until
every worker has dropped its connection with commands in flight, and 30
requests got 503), not for a fixed time.  Every request gets 200 or 503 within timeout_ms plus a margin;
during the partition only 503; after it every worker reconnects within a
few seconds and every request is 200 again.  Redis's count minus the 200s
is the number of INCRs that Redis applied but that were answered 503 (the
worker timed out waiting for the reply): it is never negative (a 200 that
was not counted), and never more than the commands failed by a timeout.
The figures of the run are printed and recorded in the JUnit report.

Everything is removed by name or PID on every path: the daemon first (so
that nothing sends to the /30 any more), then redis-server, the link, the
route and the namespace.  Needs root, iproute2 and /dev/net/tun.
"""

import os
import random
import re
import select
import shutil
import subprocess
import sys
import threading
import time

import pytest

from e2e_daemon import wait_all_workers_down, wait_all_workers_ready
from e2e_helpers import kill_pid, patience, wait_for
from e2e_http import ConnectionClosed, get, RawClient, visits_from_body

HERE = os.path.dirname(os.path.abspath(__file__))
REDIS_SERVER = os.environ.get("REDIS_SERVER_BIN", "redis-server")
REDIS_CLI = os.environ.get("REDIS_CLI_BIN", "redis-cli")
REDIS_PORT = 6379               # the namespace is ours: no conflict
TIMEOUT_MS = 500
# what a request may take beyond timeout_ms: scheduling of the daemon and
# of the client threads on two shared cores
MARGIN_S = 1.0
BOUND_S = TIMEOUT_MS / 1000.0 + MARGIN_S
WORKERS = 2
INFLIGHT_RE = re.compile(r"redis: no reply within \d+ ms, dropping the "
                         r"connection \((\d+) commands in flight fail\)")


def _run(*argv, check=True):
    res = subprocess.run(list(argv), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=15)
    if check and res.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (
            " ".join(argv), res.returncode, res.stdout, res.stderr))
    return res


def _free_subnet():
    """10.213.a.b, the network of a /30 that no address or route here
    uses (another run of this test may hold one at the same time)."""
    used = _run("ip", "-4", "-o", "addr").stdout + \
        _run("ip", "-4", "route", "show", "table", "all").stdout
    for _ in range(100):
        net = "10.213.%d.%d" % (random.randrange(256),
                                random.randrange(0, 256, 4))
        prefix = net.rsplit(".", 1)[0] + "."
        last = int(net.rsplit(".", 1)[1])
        if not any(prefix + str(last + i) in used for i in range(4)):
            return net
    raise AssertionError("no free /30 in 10.213.0.0/16")


def _tcp_hex(ip, port):
    """ip:port as /proc/net/tcp writes it."""
    return "%s:%04X" % ("".join("%02X" % int(x)
                                for x in reversed(ip.split("."))), port)


def _closing_sockets(ip, port):
    """Sockets of this namespace to ip:port that were closed with data or a
    FIN not yet acknowledged (FIN_WAIT1, CLOSING, LAST_ACK): the kernel
    still retransmits them, so an INCR in them may still reach Redis."""
    peer = _tcp_hex(ip, port)
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return [r for r in rows if r[2] == peer and r[3] in ("04", "0B", "09")]


class FaultyRedis:
    """redis-server in a network namespace behind a link that can be
    delayed, made lossy and cut.  Every step of start() registers its
    undoing; close() undoes them in reverse order, each one whatever
    happened to the others."""

    def __init__(self, workdir):
        tag = "%x%03x" % (os.getpid() & 0xfff, random.randrange(0x1000))
        self.ns = "hc-netwire-" + tag
        self.hostdev = "hcw%sh" % tag
        self.nsdev = "hcw%sn" % tag
        self.dir = workdir
        self.net = None
        self.host_ip = self.addr = None
        self.port = REDIS_PORT
        self.wire = self.redis = None
        self.undo = []

    # -- setting up ----------------------------------------------------------
    def start(self):
        self.net = _free_subnet()
        base, last = self.net.rsplit(".", 1)
        self.host_ip = "%s.%d" % (base, int(last) + 1)
        self.addr = "%s.%d" % (base, int(last) + 2)
        cidr = "%s/30" % self.net
        _run("ip", "netns", "add", self.ns)
        self.undo.append(lambda: _run("ip", "netns", "del", self.ns,
                                      check=False))
        self.ns_run("ip", "link", "set", "lo", "up")
        # with the link gone, the host must not route the /30 elsewhere
        _run("ip", "route", "add", "unreachable", cidr, "metric", "4242")
        self.undo.append(lambda: _run("ip", "route", "del", "unreachable",
                                      cidr, "metric", "4242", check=False))
        self._start_wire()
        _run("ip", "addr", "add", self.host_ip + "/30", "dev", self.hostdev)
        _run("ip", "link", "set", self.hostdev, "up")
        self.ns_run("ip", "addr", "add", self.addr + "/30", "dev", self.nsdev)
        self.ns_run("ip", "link", "set", self.nsdev, "up")
        self._start_redis()

    def _start_wire(self):
        err = open(os.path.join(self.dir, "netwire.err"), "wb")
        try:
            self.wire = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "netwire.py"),
                 self.hostdev, self.ns, self.nsdev],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        finally:
            err.close()
        self.undo.append(self._stop_wire)
        assert self._wire_line() == "ready", self._wire_err()

    def _stop_wire(self):
        try:
            self.wire.stdin.close()     # end of file: it exits
        except OSError:
            pass
        try:
            self.wire.wait(5)
        except subprocess.TimeoutExpired:
            kill_pid(self.wire.pid)
            self.wire.wait()

    def _wire_line(self, timeout=10):
        fd = self.wire.stdout
        ready, _, _ = select.select([fd], [], [], timeout)
        line = fd.readline().decode().strip() if ready else "(nothing)"
        return line

    def _wire_err(self):
        with open(os.path.join(self.dir, "netwire.err"), errors="replace") \
                as f:
            return "netwire.py: " + f.read()[-2000:]

    def _start_redis(self):
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        try:
            # ip netns exec execs redis-server: the PID is redis-server's
            self.redis = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, REDIS_SERVER,
                 "--bind", self.addr, "--port", str(self.port),
                 "--protected-mode", "no", "--save", "", "--appendonly",
                 "no", "--daemonize", "no", "--dir", self.dir],
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)
        finally:
            log.close()
        self.undo.append(self._stop_redis)

        def up():
            assert self.redis.poll() is None, "redis-server exited"
            return self.cli("PING", check=False) == "PONG"
        wait_for(up, patience(10), what="redis-server PING in the namespace")

    def _stop_redis(self):
        if self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(5)
            except subprocess.TimeoutExpired:
                kill_pid(self.redis.pid)
                self.redis.wait()

    def close(self):
        problems = []
        while self.undo:
            step = self.undo.pop()
            try:
                step()
            except Exception as exc:        # noqa: B902 - go on undoing
                problems.append(repr(exc))
        assert not problems, problems

    # -- using it ------------------------------------------------------------
    def ns_run(self, *argv, check=True):
        return _run("ip", "netns", "exec", self.ns, *argv, check=check)

    def cli(self, *args, check=True):
        """redis-cli inside the namespace: it works during a partition."""
        return self.ns_run(REDIS_CLI, "-h", self.addr, "-p", str(self.port),
                           "--raw", *args, check=check).stdout.strip()

    def visits(self):
        out = self.cli("GET", "visits")
        return int(out) if out else 0

    def shape(self, to_redis_ms=0, to_host_ms=0, loss_pct=0):
        """Delay each packet towards Redis / towards the host, and drop
        loss_pct % of the packets in each direction."""
        self.wire.stdin.write(b"set %d %d %g\n" % (to_redis_ms, to_host_ms,
                                                    loss_pct))
        self.wire.stdin.flush()
        assert self._wire_line() == "ok", self._wire_err()

    def stats(self):
        self.wire.stdin.write(b"stats\n")
        self.wire.stdin.flush()
        return self._wire_line()

    def link(self, up):
        """The namespace's end of the link up or down (a partition)."""
        self.ns_run("ip", "link", "set", self.nsdev, "up" if up else "down")


@pytest.fixture
def faulty_redis(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("needs root: it creates a network namespace and a link")
    if shutil.which("ip") is None:
        pytest.fail("needs ip (Debian package iproute2)")
    if not os.path.exists("/dev/net/tun"):
        pytest.fail("needs /dev/net/tun (a kernel with CONFIG_TUN)")
    if shutil.which(REDIS_SERVER) is None:
        pytest.fail("needs redis-server (Debian package redis-server)")
    d = tmp_path / "netns-redis"
    d.mkdir()
    srv = FaultyRedis(str(d))
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


# --------------------------------------------------------------------------
# the load: clients that record every answer
# --------------------------------------------------------------------------

class Load:
    """Client threads sending GET / until stop(): `fresh` of them each on a
    new connection per request, `keepalive` of them on persistent
    connections.  Each request is recorded as (start, end, status, value,
    error), times from time.monotonic(); the client waits BOUND_S + 2 s
    for an answer before it records that there was none."""

    REQUEST = b"GET / HTTP/1.1\r\nHost: netwire\r\n\r\n"

    def __init__(self, port, fresh, keepalive):
        self.port = port
        self.records = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = (
            [threading.Thread(target=self._fresh, daemon=True)
             for _ in range(fresh)] +
            [threading.Thread(target=self._keepalive, daemon=True)
             for _ in range(keepalive)])

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(BOUND_S + 5)
        assert not any(t.is_alive() for t in self.threads), \
            "client threads hung"
        return self.records

    def _record(self, t0, status=None, value=None, error=None):
        with self.lock:
            self.records.append((t0, time.monotonic(), status, value, error))

    def _fresh(self):
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                r = get(self.port, timeout=BOUND_S + 2)
            except OSError as exc:
                self._record(t0, error=repr(exc))
                continue
            self._record(t0, r.status, self._value(r))
            # a new connection per request costs the clients more than the
            # daemon: a pause leaves the two cores to the daemon and wire
            time.sleep(0.005)

    def _keepalive(self):
        c = None
        while not self.stopping.is_set():
            if c is None:
                c = RawClient(self.port, timeout=BOUND_S + 2)
            t0 = time.monotonic()
            try:
                c.send(self.REQUEST)
                r = c.read_response()
            except (OSError, ConnectionClosed) as exc:
                self._record(t0, error=repr(exc))
                c.close()
                c = None
                continue
            self._record(t0, r.status, self._value(r))
            if r.status != 200:
                time.sleep(0.005)       # a 503 comes at once: no spinning
            if (r.header("Connection") or "").lower() == "close":
                c.close()
                c = None
        if c is not None:
            c.close()

    @staticmethod
    def _value(r):
        return visits_from_body(r.body) if r.status == 200 else None


def _between(records, start, end):
    """The requests sent in [start, end)."""
    return [r for r in records if start <= r[0] < end]


def _statuses(records):
    out = {}
    for r in records:
        out[r[2]] = out.get(r[2], 0) + 1
    return out


def _wait_closing_sockets_gone(faulty):
    """Wait until no socket that hitcountd closed still has an INCR to
    deliver (after a partition its retransmissions come seconds apart)."""
    wait_for(lambda: not _closing_sockets(faulty.addr, faulty.port),
             patience(20), interval=0.1,
             what="closed connections to Redis to finish")


def _answers(load, since, statuses=(200, 503)):
    """How many requests sent since `since` got an answer in statuses."""
    with load.lock:
        return sum(1 for r in load.records
                   if r[0] >= since and r[2] in statuses)


def _wait_answers(load, since, n, statuses, what):
    """Wait until n requests sent since `since` got an answer in statuses:
    each phase is judged on requests that really ran in it."""
    wait_for(lambda: _answers(load, since, statuses) >= n, patience(20),
             interval=0.05, what="%d answers %s %s" % (n, statuses, what))


def _inflight_dropped(d, since):
    """The workers that dropped a connection with commands in flight,
    from the log after offset since."""
    pids = set()
    for line in d.log()[since:].splitlines():
        m = re.match(r"^hitcountd\[(\d+)\]: ", line)
        if m and INFLIGHT_RE.search(line) and \
                int(INFLIGHT_RE.search(line).group(1)) > 0:
            pids.add(int(m.group(1)))
    return pids


def _drive(fr, d):
    """The phases under load: clean, delay, delay and loss, partition,
    clean again; each lasts until enough requests ran in it (events, not
    durations).  Returns the records, the time each phase began, and
    Redis's count at the end of the partition."""
    load = Load(d.port, fresh=3, keepalive=3).start()
    t = {"clean": time.monotonic()}
    _wait_answers(load, t["clean"], 20, (200,), "on the clean link")
    fr.shape(to_redis_ms=50)
    t["delay"] = time.monotonic()
    _wait_answers(load, t["delay"] + 0.1, 60, (200,), "with the delay")
    fr.shape(to_redis_ms=50, loss_pct=5)
    t["loss"] = time.monotonic()
    _wait_answers(load, t["loss"], 300, (200, 503), "with delay and loss")
    mark = len(d.log())
    fr.link(up=False)
    t["partition"] = time.monotonic()
    # every worker notices: its INCRs time out, and the connection is
    # dropped with commands in flight (which must never reach Redis)
    wait_all_workers_down(d, timeout=4, since=mark)
    t_down = time.monotonic()
    wait_for(lambda: len(_inflight_dropped(d, mark)) == WORKERS,
             patience(5), what="each worker to drop commands in flight")
    _wait_answers(load, t_down, 30, (503,), "during the partition")
    mark = len(d.log())
    fr.shape()                           # back clean
    at_heal = fr.visits()                # over the namespace's loopback
    t["back"] = time.monotonic()
    fr.link(up=True)
    wait_all_workers_ready(d, WORKERS, timeout=3, since=mark)
    t["ready"] = time.monotonic()
    _wait_answers(load, t["ready"], 100, (200, 503), "after the partition")
    t["end"] = time.monotonic()
    return load.stop(), t, at_heal


def test_faulty_network(faulty_redis, bare_daemon_factory, record_property):
    # faulty_redis first: set up before the daemon, torn down after it
    fr = faulty_redis
    d = bare_daemon_factory(workers=WORKERS, redis={
        "host": fr.addr, "port": fr.port, "timeout_ms": TIMEOUT_MS})
    wait_all_workers_ready(d, WORKERS, timeout=5)
    records, t, at_heal = _drive(fr, d)
    _wait_closing_sockets_gone(fr)
    final = fr.visits()
    log = d.log()

    # every request got an answer, 200 or 503, within timeout_ms + margin
    errors = [r for r in records if r[4] is not None]
    assert not errors, ("requests without an answer", len(errors),
                        errors[:5], log[-3000:])
    statuses = _statuses(records)
    assert set(statuses) <= {200, 503}, statuses
    slow = sorted((r[1] - r[0] for r in records), reverse=True)
    assert slow[0] <= BOUND_S, ("answers slower than timeout_ms + %.1f s"
                                % MARGIN_S, slow[:10])

    # the delay is there, and alone it costs no request
    delayed = _between(records, t["delay"] + 0.1, t["loss"])
    assert delayed and _statuses(delayed) == {200: len(delayed)}, \
        _statuses(delayed)
    assert min(r[1] - r[0] for r in delayed) >= 0.05
    lossy = _between(records, t["loss"], t["partition"])
    assert lossy and 200 in _statuses(lossy), _statuses(lossy)
    # nothing reaches Redis during the partition
    cut = [r for r in _between(records, t["partition"], t["back"])
           if r[1] < t["back"]]
    assert cut and _statuses(cut) == {503: len(cut)}, _statuses(cut)
    # the 200s come back within a few seconds, for every request
    first_200 = min(r[1] for r in records
                    if r[0] >= t["back"] and r[2] == 200)
    assert first_200 - t["back"] <= 2.5, first_200 - t["back"]
    after = _between(records, t["ready"], t["end"])
    assert after and _statuses(after) == {200: len(after)}, _statuses(after)

    # Redis counted every 200 once, and at most the INCRs that timed out
    values = [r[3] for r in records if r[2] == 200]
    assert len(set(values)) == len(values), "a value answered twice"
    assert max(values) <= final, (max(values), final)
    applied_503 = final - len(values)
    # ... and applied them before the worker gave up on them: none of the
    # INCRs queued in a connection dropped during the partition reaches
    # Redis when the link comes back (they were answered 503 seconds ago)
    late = sorted(set(range(at_heal + 1, final + 1)) - set(values))
    timed_out = sum(int(n) for n in INFLIGHT_RE.findall(log))
    figures = {
        "requests": len(records), "answered_200": len(values),
        "answered_503": statuses.get(503, 0), "redis_count": final,
        "incr_timed_out": timed_out, "applied_but_503": applied_503,
        "applied_after_the_partition": len(late),
        "recovery_s": round(t["ready"] - t["back"], 2),
        "first_200_s": round(first_200 - t["back"], 2),
        "slowest_answer_s": round(slow[0], 3), "wire": fr.stats(),
    }
    for k, v in figures.items():
        record_property(k, v)
    print("faulty network: %r" % figures)
    assert applied_503 >= 0, ("visits answered 200 that Redis did not "
                              "count", figures)
    assert applied_503 <= timed_out <= statuses.get(503, 0), figures
    assert not late, ("visits answered 503 during the partition were "
                      "counted once it healed", late, figures)
