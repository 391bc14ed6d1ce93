"""Scale-out (issue 8): several hitcountd instances behind a real nginx,
and hitcountd following a Redis primary through Redis Sentinel.

- test_nginx_balances_three_instances: three instances on one Redis, nginx
  (Debian's nginx-light) as the load balancer with upstream keep-alive;
  30,000 GET / through nginx: every answer is 200, Redis counted exactly
  the 200s, and each instance's own /metrics shows it served its share.
- test_sentinel_failover: primary + replica + three sentinels (real
  processes); kill -9 of the primary under load: 503 only during the
  failover, 200 again from the promoted replica within 5 s, no worker
  died, the counter goes on from the replica's value, no duplicate values;
  the old primary comes back as a replica and nothing breaks.
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

Every process started here is stopped by its PID at teardown.  Ports are
free 127.0.0.1 ports.  Needs nginx (nginx-light) and redis-server; the
sentinels are `redis-server CONF --sentinel` (the redis-sentinel binary is
the same program).
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from e2e_helpers import (ConnectionClosed, RawClient, children_of, free_port,
                         keepalive_load, read_log, patience,
                         get, kill_pid, metric_value, pid_alive,
                         visits_from_body, wait_all_workers_ready, wait_for)

REDIS_SERVER = os.environ.get("REDIS_SERVER_BIN", "redis-server")
REQUEST = b"GET / HTTP/1.1\r\nHost: scaleout\r\n\r\n"
MASTER_NAME = "mymaster"


def _nginx_binary():
    path = os.environ.get("NGINX_BIN") or shutil.which("nginx")
    if not path and os.access("/usr/sbin/nginx", os.X_OK):
        path = "/usr/sbin/nginx"
    return path


# --------------------------------------------------------------------------
# a minimal RESP client (no redis-cli process per query)
# --------------------------------------------------------------------------

class RespError(Exception):
    """An error reply (-ERR ..., -READONLY ...)."""


class Resp:
    def __init__(self, port, timeout=2.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.rfile = self.sock.makefile("rb")

    def command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))
        reply = self._read()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def _read(self):
        line = self.rfile.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("RESP connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("RESP connection closed")
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise ConnectionError("unexpected RESP line %r" % (line,))

    def close(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


def resp(port, *args, timeout=2.0):
    """One command on a fresh connection."""
    c = Resp(port, timeout=timeout)
    try:
        return c.command(*args)
    finally:
        c.close()


def _pairs(flat):
    """[k1, v1, k2, v2, ...] -> dict."""
    return dict(zip(flat[0::2], flat[1::2]))


def _info(port, section="replication"):
    text = resp(port, "INFO", section)
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k] = v
    return out


# --------------------------------------------------------------------------
# real processes: redis-server, sentinels, nginx
# --------------------------------------------------------------------------

class Proc:
    """A child process with its log file, stopped by PID."""

    def __init__(self, name, workdir):
        self.name = name
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.logpath = os.path.join(workdir, name + ".log")
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, argv):
        assert not self.running(), "%s already running" % self.name
        with open(self.logpath, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.dir)

    def log(self):
        return read_log(self.logpath)

    def check_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s: %s" % (
                self.name, self.proc.returncode, self.log()[-3000:]))

    def kill9(self):
        kill_pid(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self):
        if self.running():
            kill_pid(self.proc.pid, signal.SIGCONT)

    def teardown(self, sig=signal.SIGTERM):
        if not self.running():
            return
        kill_pid(self.proc.pid, signal.SIGCONT)
        kill_pid(self.proc.pid, sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class RedisNode(Proc):
    """redis-server on a fixed port (kept across restarts)."""

    def __init__(self, name, workdir, extra=()):
        Proc.__init__(self, name, workdir)
        self.port = free_port()
        self.extra = [str(a) for a in extra]

    def start(self, timeout=10):
        self.spawn([REDIS_SERVER, "--port", str(self.port),
                    "--bind", "127.0.0.1", "--protected-mode", "no",
                    "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--dir", self.dir,
                    # a replica (or a demoted primary) syncs at once
                    # instead of after the default 5 s
                    "--repl-diskless-sync-delay", "0"] + self.extra)

        def up():
            self.check_alive()
            return resp(self.port, "PING", timeout=1) == "PONG"
        wait_for(up, timeout, what="%s PING" % self.name)

    def command(self, *args, timeout=2.0):
        return resp(self.port, *args, timeout=timeout)

    def role(self):
        return self.command("ROLE")[0]

    def visits(self, key="visits"):
        v = self.command("GET", key)
        return int(v) if v is not None else 0


class SentinelNode(Proc):
    def __init__(self, name, workdir, primary_port):
        Proc.__init__(self, name, workdir)
        self.port = free_port()
        self.conf = os.path.join(workdir, "sentinel.conf")
        # sentinel rewrites this file: each sentinel has its own
        with open(self.conf, "w") as f:
            f.write("port %d\n"
                    "bind 127.0.0.1\n"
                    "protected-mode no\n"
                    "daemonize no\n"
                    'logfile ""\n'
                    "dir %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 3000\n"
                    "sentinel parallel-syncs %s 1\n"
                    % (self.port, workdir, MASTER_NAME, primary_port,
                       MASTER_NAME, MASTER_NAME, MASTER_NAME))

    def start(self, timeout=10):
        self.spawn([REDIS_SERVER, self.conf, "--sentinel"])

        def up():
            self.check_alive()
            return resp(self.port, "PING", timeout=1) == "PONG"
        wait_for(up, timeout, what="%s PING" % self.name)

    def command(self, *args, timeout=2.0):
        return resp(self.port, *args, timeout=timeout)

    def master_addr(self):
        host, port = self.command("SENTINEL", "get-master-addr-by-name",
                                  MASTER_NAME)
        return host, int(port)


class Topology:
    """primary + replica + 3 sentinels, all on 127.0.0.1."""

    def __init__(self, workdir):
        self.dir = workdir
        self.primary = RedisNode("primary", os.path.join(workdir, "primary"))
        self.replica = RedisNode("replica", os.path.join(workdir, "replica"),
                                 extra=["--replicaof", "127.0.0.1",
                                        self.primary.port])
        self.sentinels = [
            SentinelNode("sentinel%d" % i,
                         os.path.join(workdir, "sentinel%d" % i),
                         self.primary.port) for i in (1, 2, 3)]

    def procs(self):
        return [self.primary, self.replica] + self.sentinels

    def sentinel_addrs(self):
        return ["127.0.0.1:%d" % s.port for s in self.sentinels]

    def start(self):
        t0 = time.monotonic()
        self.primary.start()
        self.replica.start()

        def replicating():
            return (_info(self.replica.port).get("master_link_status") == "up"
                    and _info(self.primary.port).get("connected_slaves")
                    == "1")
        wait_for(replicating, 15, what="replica in sync with the primary")
        for s in self.sentinels:
            s.start()

        def sentinels_ready():
            for s in self.sentinels:
                s.check_alive()
                reps = [_pairs(r) for r in
                        s.command("SENTINEL", "replicas", MASTER_NAME)]
                ok = [r for r in reps
                      if int(r["port"]) == self.replica.port
                      and "s_down" not in r["flags"]
                      and "disconnected" not in r["flags"]]
                if not ok:
                    return False
                if len(s.command("SENTINEL", "sentinels", MASTER_NAME)) != 2:
                    return False
                if s.master_addr()[1] != self.primary.port:
                    return False
            return all(s.command("SENTINEL", "ckquorum",
                                 MASTER_NAME).startswith("OK")
                       for s in self.sentinels)
        wait_for(sentinels_ready, 30, interval=0.2,
                 what="3 sentinels that see the replica and each other")
        self.setup_seconds = time.monotonic() - t0

    def teardown(self):
        for p in reversed(self.procs()):
            p.teardown()

    def logs(self):
        return "\n".join("---- %s:\n%s" % (p.name, p.log()[-3000:])
                         for p in self.procs())


@pytest.fixture
def sentinel_topology(tmp_path):
    if not shutil.which(REDIS_SERVER):
        pytest.skip("redis-server is not installed (.ci/deps installs it)")
    topo = Topology(str(tmp_path / "topology"))
    try:
        topo.start()
        yield topo
    finally:
        topo.teardown()


class Nginx(Proc):
    def __init__(self, binary, workdir, upstream_ports):
        Proc.__init__(self, "nginx", workdir)
        self.binary = binary
        self.port = free_port()
        self.conf = os.path.join(workdir, "nginx.conf")
        self.error_log = os.path.join(workdir, "error.log")
        servers = "".join("        server 127.0.0.1:%d;\n" % p
                          for p in upstream_ports)
        d = workdir
        with open(self.conf, "w") as f:
            f.write(
                "daemon off;\n"
                "master_process on;\n"
                "worker_processes 2;\n"
                "pid %(d)s/nginx.pid;\n"
                "error_log %(d)s/error.log warn;\n"
                "events { worker_connections 1024; }\n"
                "http {\n"
                "    access_log off;\n"
                "    client_body_temp_path %(d)s/client_body;\n"
                "    proxy_temp_path %(d)s/proxy;\n"
                "    fastcgi_temp_path %(d)s/fastcgi;\n"
                "    uwsgi_temp_path %(d)s/uwsgi;\n"
                "    scgi_temp_path %(d)s/scgi;\n"
                "    upstream hc {\n"
                "%(servers)s"
                "        keepalive 32;\n"
                "    }\n"
                "    server {\n"
                "        listen 127.0.0.1:%(port)d;\n"
                "        keepalive_requests 100000;\n"
                "        keepalive_timeout 60s;\n"
                "        location / {\n"
                "            proxy_pass http://hc;\n"
                "            proxy_http_version 1.1;\n"
                '            proxy_set_header Connection "";\n'
                "        }\n"
                "    }\n"
                "}\n" % {"d": d, "servers": servers, "port": self.port})
        self.children = []

    def start(self, timeout=10):
        self.spawn([self.binary, "-e", self.error_log, "-c", self.conf,
                    "-p", self.dir + "/"])

        def up():
            self.check_alive()
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=1):
                pass
            self.children = children_of(self.proc.pid)
            return len(self.children) == 2
        wait_for(up, timeout, what="nginx listening with 2 workers")

    def teardown(self, sig=signal.SIGTERM):
        kids = children_of(self.proc.pid) if self.running() else []
        Proc.teardown(self, sig)
        for k in set(kids) | set(self.children):
            if pid_alive(k):
                kill_pid(k)

    def errors(self):
        try:
            with open(self.error_log, errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        return [ln for ln in lines
                if any(t in ln for t in ("[error]", "[crit]", "[alert]",
                                         "[emerg]"))]


def _scrape(port):
    r = get(port, "/metrics", timeout=5)
    assert r.status == 200, r
    return (metric_value(r.text, "hitcountd_http_requests_total",
                         code="200"),
            metric_value(r.text, "hitcountd_visits_total"))


# --------------------------------------------------------------------------
# test 1: three instances behind nginx
# --------------------------------------------------------------------------

def test_nginx_balances_three_instances(daemon_factory, redis_server,
                                        tmp_path):
    nginx_bin = _nginx_binary()
    if not nginx_bin:
        pytest.skip("nginx is not installed (.ci/deps installs nginx-light)")
    instances = [daemon_factory(workers=1) for _ in range(3)]
    ports = [d.port for d in instances]
    assert len(set(ports)) == 3, ports
    ng = Nginx(nginx_bin, str(tmp_path / "nginx"), ports)
    try:
        ng.start()
        _nginx_load(ng, instances, redis_server)
    finally:
        ng.teardown()


def _nginx_load(ng, instances, redis_server):
    # one request through nginx first: the path works end to end
    r = get(ng.port, "/", timeout=5)
    assert r.status == 200, r
    visits_from_body(r.body)

    # a scrape may count itself: measure what one scrape adds
    s0 = [_scrape(d.port) for d in instances]
    s1 = [_scrape(d.port) for d in instances]
    self_count = [b[0] - a[0] for a, b in zip(s0, s1)]
    assert all(x in (0, 1) for x in self_count), self_count
    assert all(b[1] == a[1] for a, b in zip(s0, s1))
    redis_before = redis_server.visits()

    n_conn, per_conn = 50, 600
    total = n_conn * per_conn
    statuses, values, errors, elapsed, hung = keepalive_load(
        ng.port, n_conn, per_conn, 60)
    assert not hung, "load clients hung"
    n200 = statuses.get(200, 0)

    s2 = [_scrape(d.port) for d in instances]
    served = [c[0] - b[0] - sc for b, c, sc in zip(s1, s2, self_count)]
    visits = [c[1] - b[1] for b, c in zip(s1, s2)]
    redis_delta = redis_server.visits() - redis_before
    print("nginx -> 3 hitcountd: %d requests in %.1f s (%.0f req/s), "
          "statuses %r, %d client errors; 200s per instance %r "
          "(%s), visits_total deltas %r, redis +%d; a scrape counts %r"
          % (total, elapsed, total / elapsed, statuses, len(errors), served,
             ", ".join("%.1f%%" % (100.0 * s / max(1, n200))
                       for s in served),
             visits, redis_delta, self_count))

    assert not errors, errors[:10]
    assert statuses == {200: total}, statuses
    assert redis_delta == n200
    assert len(set(values)) == len(values), "duplicate visit values"
    assert sum(served) == n200, (served, n200)
    assert sum(visits) == n200, (visits, n200)
    for port, s in zip([d.port for d in instances], served):
        assert s > 0, "instance on port %d served nothing: %r" % (port,
                                                                    served)
        assert s >= 0.10 * n200, \
            "instance on port %d served only %d of %d" % (port, s, n200)
    assert not ng.errors(), ng.errors()[:10]


# --------------------------------------------------------------------------
# tests 2 and 3: Redis Sentinel
# --------------------------------------------------------------------------

def _sentinel_redis_section(topo, **extra):
    section = {"host": None, "port": None,
               "sentinels": topo.sentinel_addrs(),
               "master_name": MASTER_NAME,
               "sentinel_password": "",
               "min_replicas_acked": 0,
               "timeout_ms": 1000}
    section.update(extra)
    return section


def _start_sentinel_daemon(bare_daemon_factory, run_hitcountd, topo,
                           **redis_extra):
    """Start hitcountd with 2 workers on the sentinels and wait until each
    worker has found the primary and connected to it: /healthz answers
    before that, and a worker still asking the sentinels answers GET /
    with 503."""
    d = bare_daemon_factory(wait=False, workers=2,
                            redis=_sentinel_redis_section(topo,
                                                          **redis_extra))
    # say clearly when the daemon does not know the options yet
    chk = run_hitcountd("-t", "-f", d.conf)
    assert chk.returncode == 0, (
        "hitcountd -t rejects the sentinel configuration:\n%s%s\nconfig:\n%s"
        % (chk.stdout, chk.stderr, d.config_text()))
    d.wait_healthy()
    wait_all_workers_ready(d, 2, timeout=5)
    return d


class LoadClients:
    """n client threads, each on a persistent connection (a new one after
    an error), sending GET / with a short pause; every answer is recorded
    as (t_send, t_recv, conn, status, value, error)."""

    def __init__(self, port, n=4, pause=0.005, timeout=3.0, limit=90.0):
        self.port = port
        self.n = n
        self.pause = pause
        self.timeout = timeout
        self.stop_ev = threading.Event()
        self.records = [[] for _ in range(n)]
        self.threads = []
        self.hard_deadline = time.monotonic() + limit

    def _run(self, i):
        recs = self.records[i]
        seq = 0
        c = None
        while (not self.stop_ev.is_set()
               and time.monotonic() < self.hard_deadline):
            if c is None:
                try:
                    c = RawClient(self.port, timeout=self.timeout)
                    seq += 1
                except OSError as exc:
                    now = time.monotonic()
                    recs.append((now, now, (i, seq), None, None,
                                 "connect: %r" % (exc,)))
                    time.sleep(0.05)
                    continue
            t0 = time.monotonic()
            try:
                c.send(REQUEST)
                r = c.read_response()
            except (OSError, ConnectionClosed) as exc:
                recs.append((t0, time.monotonic(), (i, seq), None, None,
                             repr(exc)))
                c.close()
                c = None
                time.sleep(0.02)
                continue
            t1 = time.monotonic()
            value, err = None, None
            if r.status == 200:
                try:
                    value = visits_from_body(r.body)
                except AssertionError as exc:
                    err = str(exc)
            recs.append((t0, t1, (i, seq), r.status, value, err))
            if (r.header("Connection") or "").lower() == "close":
                c.close()
                c = None
            time.sleep(self.pause)
        if c is not None:
            c.close()

    def start(self):
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self.threads), "clients hung"

    def all(self):
        out = []
        for recs in self.records:
            out.extend(list(recs))
        return sorted(out, key=lambda r: r[1])

    def count_200_since(self, t):
        return sum(1 for recs in self.records for r in list(recs)
                   if r[0] >= t and r[3] == 200)


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
        wait_for(lambda: topo.primary.role() == "slave", 30, interval=0.2,
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
        wait_for(lambda: _info(topo.primary.port).get("master_link_status")
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
