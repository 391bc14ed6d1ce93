"""The servers besides hitcountd that the end-to-end tests run as real
processes, each on a free 127.0.0.1 port with its own log file, stopped
by its PID: redis-server (the redis_server fixture's, the primary and
replica of a Sentinel topology, and the six nodes of a Redis Cluster),
Redis Sentinel, and nginx as a load balancer; and a minimal RESP client
that asks them questions without a redis-cli process per query.
"""

import os
import signal
import socket
import subprocess
import time

from e2e_helpers import (children_of, free_port, kill_pid, pid_alive,
                         read_log, require_tool, wait_for)

MASTER_NAME = "mymaster"        # the name the sentinels know the primary by
# options of the topology's redis-servers
NODE_OPTIONS = ["--protected-mode", "no",
                # a replica (or a demoted primary) syncs at once
                # instead of after the default 5 s
                "--repl-diskless-sync-delay", "0"]


def redis_server_binary():
    """redis-server (also the sentinels: redis-sentinel is the same
    program)."""
    return require_tool("redis-server", "redis-server",
                        env="REDIS_SERVER_BIN")


def nginx_binary():
    return require_tool("nginx", "nginx-light", env="NGINX_BIN")


# --------------------------------------------------------------------------
# a minimal RESP client (no redis-cli process per query)
# --------------------------------------------------------------------------

class RespError(Exception):
    """An error reply (-ERR ..., -READONLY ...)."""


class Resp:
    """One RESP connection: command() sends a command, returns its reply
    (an error reply raises RespError)."""

    def __init__(self, port, timeout=2.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.rfile = self.sock.makefile("rb")

    @staticmethod
    def _encode(args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(parts)

    def command(self, *args):
        return self.pipeline(args)[0]

    def pipeline(self, *commands):
        """Send the commands (tuples of arguments) in one write; return
        their replies (the first error reply raises RespError, once all
        are read)."""
        self.sock.sendall(b"".join(self._encode(c) for c in commands))
        replies = [self._read() for _ in commands]
        for reply in replies:
            if isinstance(reply, RespError):
                raise reply
        return replies

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


def info_fields(text):
    """The "key:value" lines of INFO (or CLUSTER INFO) as a dict."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k] = v.strip()
    return out


def redis_info(port, section="replication"):
    return info_fields(resp(port, "INFO", section))


# --------------------------------------------------------------------------
# a child process with its log file
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

    def wait_up(self, probe, timeout, what):
        """Wait until probe() is true (while the process runs)."""
        def up():
            self.check_alive()
            return probe()
        wait_for(up, timeout, what=what)

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
        """SIGSTOP: connections stay open but nothing is answered."""
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


# --------------------------------------------------------------------------
# redis-server and Redis Sentinel
# --------------------------------------------------------------------------

class RespServer(Proc):
    """redis-server as a server or a sentinel: a Proc that answers RESP on
    a port of its own, kept across restarts."""

    def __init__(self, name, workdir):
        Proc.__init__(self, name, workdir)
        self.host = "127.0.0.1"
        self.port = free_port()

    def ping(self):
        """True if the server answers PING (or asks for a password)."""
        try:
            with socket.create_connection((self.host, self.port),
                                          timeout=1) as s:
                s.sendall(b"PING\r\n")
                data = s.recv(64)
        except OSError:
            return False
        return data.startswith(b"+PONG") or data.startswith(b"-NOAUTH")

    def launch(self, args, timeout):
        """Run redis-server with args; wait until it answers PING."""
        self.spawn([redis_server_binary()] + args)
        self.wait_up(self.ping, timeout, "%s PING" % self.name)

    def command(self, *args, timeout=2.0):
        return resp(self.port, *args, timeout=timeout)


class RedisServer(RespServer):
    """redis-server; nothing is kept on disk but what stop() saves.  extra:
    more options (the Sentinel topology's)."""

    def __init__(self, workdir, name="redis", extra=()):
        RespServer.__init__(self, name, workdir)
        self.extra = [str(a) for a in extra]
        self.password = None

    def start(self, timeout=10):
        """Start (or restart, on the same port) and wait for PING."""
        self.launch(["--port", str(self.port), "--bind", self.host,
                     "--save", "", "--appendonly", "no",
                     "--daemonize", "no", "--dir", self.dir] + self.extra,
                    timeout)
        self.password = None     # CONFIG SET requirepass is not persistent

    def stop(self, persist=True, timeout=10):
        """Stop redis-server.

        persist=True: SHUTDOWN SAVE (data is written to dump.rdb in dir and
        loaded again by start(), so the counter survives the restart);
        persist=False: SIGTERM (with --save '' the data is lost).
        """
        if not self.running():
            return
        self.thaw()
        if persist:
            self.cli("SHUTDOWN", "SAVE", check=False)
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("redis-server did not stop in %s s"
                                 % timeout)

    def cli(self, *args, db=None, check=True):
        cmd = [require_tool("redis-cli", "redis-tools", env="REDIS_CLI_BIN"),
               "-h", self.host, "-p", str(self.port), "--raw"]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        if db is not None:
            cmd += ["-n", str(db)]
        cmd += [str(a) for a in args]
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=15)
        if check:
            assert res.returncode == 0, "redis-cli %r failed: %s %s" % (
                args, res.stdout, res.stderr)
        return res.stdout.strip()

    def visits(self, key="visits", db=None):
        """Current integer value of key (0 if the key does not exist)."""
        out = self.cli("GET", key, db=db)
        return int(out) if out else 0

    def role(self):
        return self.command("ROLE")[0]


class SentinelNode(RespServer):
    """A sentinel (redis-server --sentinel) of the topology's primary."""

    def __init__(self, name, workdir, primary_port):
        RespServer.__init__(self, name, workdir)
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
        self.launch([self.conf, "--sentinel"], timeout)

    def master_addr(self):
        host, port = self.command("SENTINEL", "get-master-addr-by-name",
                                  MASTER_NAME)
        return host, int(port)


class Topology:
    """primary + replica + 3 sentinels, all on 127.0.0.1."""

    def __init__(self, workdir):
        self.dir = workdir
        self.primary = RedisServer(os.path.join(workdir, "primary"),
                                   "primary", extra=NODE_OPTIONS)
        self.replica = RedisServer(os.path.join(workdir, "replica"),
                                   "replica", extra=NODE_OPTIONS + [
                                       "--replicaof", "127.0.0.1",
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
            return (redis_info(self.replica.port).get("master_link_status")
                    == "up" and
                    redis_info(self.primary.port).get("connected_slaves")
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


def sentinel_redis_section(addrs, **extra):
    """The redis section of a daemon that asks the sentinels at addrs
    ("host:port") for the primary; extra: more keys of the section."""
    section = {"host": None, "port": None,
               "sentinels": list(addrs),
               "master_name": MASTER_NAME,
               "sentinel_password": "",
               "min_replicas_acked": 0,
               "timeout_ms": 1000}
    section.update(extra)
    return section


# --------------------------------------------------------------------------
# Redis Cluster
# --------------------------------------------------------------------------

class ClusterTopology:
    """Six redis-server nodes in cluster mode, all on 127.0.0.1: three
    primaries with a replica each, made by redis-cli --cluster create.
    Each node has its own directory (nodes.conf) and a cluster bus port
    of its own (--cluster-port: port + 10000 may not be free, or valid);
    a node missing for 1 s is failed over (--cluster-node-timeout).
    make_node(workdir, name, extra) makes a node of another kind (TLS);
    cli_args go to redis-cli --cluster create with it."""

    OPTIONS = NODE_OPTIONS + ["--cluster-enabled", "yes",
                              "--cluster-config-file", "nodes.conf",
                              "--cluster-node-timeout", "1000"]

    def __init__(self, workdir, n=6, make_node=None, cli_args=()):
        self.dir = workdir
        self.nodes = []
        self.cli_args = list(cli_args)
        for i in range(n):
            name = "node%d" % i
            path = os.path.join(workdir, name)
            self.nodes.append(make_node(path, name, self.OPTIONS) if make_node
                              else RedisServer(path, name, extra=self.OPTIONS))
        # twelve ports, each free a moment ago: none may come twice
        taken = set()
        for node in self.nodes:
            while node.port in taken:
                node.port = free_port()
            taken.add(node.port)
        for node in self.nodes:
            bus = free_port()
            while bus in taken:
                bus = free_port()
            taken.add(bus)
            node.extra = node.extra + ["--cluster-port", str(bus)]

    def addrs(self):
        return ["127.0.0.1:%d" % node.port for node in self.nodes]

    def start(self):
        t0 = time.monotonic()
        for node in self.nodes:
            node.start()
        cli = require_tool("redis-cli", "redis-tools", env="REDIS_CLI_BIN")
        res = subprocess.run(
            [cli] + self.cli_args + ["--cluster", "create"] + self.addrs() +
            ["--cluster-replicas", "1", "--cluster-yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
        assert res.returncode == 0, "cluster create: %s" % res.stdout
        self.wait_ok(30)
        self.setup_seconds = time.monotonic() - t0

    def wait_ok(self, timeout, nodes=None):
        """Wait until every node (of nodes) says cluster_state:ok, knows
        all the others and which are replicas, and every replica is in
        sync."""
        nodes = self.nodes if nodes is None else nodes

        def ok():
            for node in nodes:
                info = info_fields(node.command("CLUSTER", "INFO"))
                if info.get("cluster_state") != "ok" or \
                        int(info.get("cluster_known_nodes", 0)) != \
                        len(self.nodes):
                    return False
                rep = info_fields(node.command("INFO", "replication"))
                if rep.get("role") == "slave" and \
                        rep.get("master_link_status") != "up":
                    return False
                # it knows which nodes are replicas (gossip)
                flags = [line.split()[2] for line in
                         node.command("CLUSTER", "NODES").splitlines()]
                if sum("slave" in f for f in flags) != len(self.nodes) // 2:
                    return False
            return True
        wait_for(ok, timeout, interval=0.1,
                 what="cluster_state:ok on every node, replicas in sync")

    def node(self, port):
        return next(node for node in self.nodes if node.port == port)

    def slot_nodes(self, slot, asker=None):
        """(primary, [replicas]) serving slot, as a node says.  The
        replicas are those of CLUSTER REPLICAS: CLUSTER SLOTS leaves out a
        replica until its replication offset has moved, which takes a
        write or the primary's ping every 10 s."""
        asker = asker or next(node for node in self.nodes
                              if node.running())
        for rng in asker.command("CLUSTER", "SLOTS"):
            if rng[0] <= slot <= rng[1]:
                primary = self.node(rng[2][1])
                lines = asker.command("CLUSTER", "REPLICAS",
                                      self.node_id(primary))
                return primary, [
                    self.node(int(line.split()[1].split("@")[0]
                                  .rsplit(":", 1)[1]))
                    for line in lines]
        raise AssertionError("no node serves slot %d" % slot)

    def count(self, node, key="visits"):
        """The integer at key on node, a primary or (READONLY) a replica;
        0 if the key is missing."""
        c = Resp(node.port)
        try:
            c.command("READONLY")
            value = c.command("GET", key)
        finally:
            c.close()
        return int(value) if value is not None else 0

    def node_id(self, node):
        return node.command("CLUSTER", "MYID")

    def teardown(self):
        for node in self.nodes:
            node.teardown()

    def logs(self):
        return "\n".join("---- %s:\n%s" % (node.name, node.log()[-2000:])
                         for node in self.nodes)


# --------------------------------------------------------------------------
# nginx
# --------------------------------------------------------------------------

class Nginx(Proc):
    """nginx (a master and 2 workers) as a load balancer: one server on a
    port of its own, proxying to 127.0.0.1:upstream_ports with upstream
    keep-alive."""

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
