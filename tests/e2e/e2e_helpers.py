"""Helpers shared by the hitcountd end-to-end tests (stdlib only).

Everything here talks to real processes over 127.0.0.1: a raw HTTP/1.x
client (so that pipelining, HTTP/1.0 and malformed requests can be sent
byte for byte), a thin http.client wrapper, process helpers based on
/proc, and a polling helper (no fixed sleeps).
"""

import heapq
import http.client
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "0.1.0"
SERVER_HEADER = "hitcountd/" + VERSION
BODY_RE = re.compile(r"^Page visited (\d+) times$")
WRK = os.environ.get("WRK_BIN", "/usr/bin/wrk")


# --------------------------------------------------------------------------
# generic helpers
# --------------------------------------------------------------------------

def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# --------------------------------------------------------------------------
# time: one factor for slow builds of the daemon
# --------------------------------------------------------------------------

def daemon_binary():
    """Path of the daemon under test: $HITCOUNTD, else <srcdir>/src/hitcountd
    (tests/e2e.sh always sets HITCOUNTD to the build's binary)."""
    return os.path.abspath(os.environ.get("HITCOUNTD") or os.path.join(
        HERE, os.pardir, os.pardir, "src", "hitcountd"))


def built_with_asan(path):
    """True if the binary at path was built with AddressSanitizer
    (./configure --enable-sanitizers)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# How much longer things take than with the normal build.  Under ASan and
# UBSan the daemon's start, a worker's start and every request cost several
# times the CPU; on a loaded 2-core machine (make distcheck in .ci/run)
# that is what the deadlines of the waits must allow for.  Only the waits
# are scaled by it: deadlines for events that do happen, never a bound
# that a test checks the daemon's own timers against.
TIME_FACTOR = float(os.environ.get("E2E_TIME_FACTOR") or
                    (3.0 if built_with_asan(daemon_binary()) else 1.0))


def patience(seconds):
    """The deadline of a wait that takes `seconds` with the normal build,
    scaled for the build under test (TIME_FACTOR)."""
    return seconds * TIME_FACTOR


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Poll predicate() until it returns a truthy value; return that value.

    Raises AssertionError (test failure) when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling, report the last error
            last_exc = exc
        if time.monotonic() >= deadline:
            msg = "timed out after %.1f s waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise AssertionError(msg)
        time.sleep(interval)


def visits_from_body(body):
    """N from b'Page visited N times'; AssertionError otherwise."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    m = BODY_RE.match(text)
    assert m, "unexpected body %r" % (text,)
    return int(m.group(1))


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid) of a process from /proc/PID/stat, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def children_of(pid):
    """PIDs of the live (non-zombie) children of pid."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st is not None and st[1] == pid and st[0] not in ("Z", "X"):
            kids.append(int(name))
    return sorted(kids)


def direct_children(pid):
    """The children of pid as the kernel lists them for its main thread:
    much quicker than children_of()'s walk over /proc, quick enough to see
    a process within a fraction of a millisecond of its fork."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def descendants_of(pid):
    """PIDs of the descendants of pid, at any depth."""
    found, todo = [], [pid]
    while todo:
        kids = direct_children(todo.pop())
        found.extend(kids)
        todo.extend(kids)
    return sorted(found)


def signal_tree(pid, sig, seconds=0.0):
    """sig to pid and every descendant, once each, as `systemctl kill`
    does to a unit's cgroup: it goes over the processes again until a pass
    finds none it has not signalled, so a process forked meanwhile (a new
    worker, or a binary upgrade's new master) gets the signal too.  With
    seconds, keep looking for new processes that long.  Returns the pids
    signalled."""
    sent = set()
    deadline = time.monotonic() + seconds
    while True:
        new = [p for p in [pid] + descendants_of(pid) if p not in sent]
        for p in new:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
            sent.add(p)
        if not new and time.monotonic() >= deadline:
            return sorted(sent)


def kill_pid(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def proc_ids(pid):
    """{"Uid": [real, eff, saved, fs], "Gid": [...], "Groups": [...]} from
    /proc/PID/status, or None if the process is gone."""
    ids = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Uid", "Gid", "Groups"):
                    ids[key] = [int(x) for x in value.split()]
    except (FileNotFoundError, ProcessLookupError):
        return None
    return ids


def client_sockets(pid, port):
    """Established TCP sockets on local `port` held by process pid (the
    connections a worker has accepted), from /proc."""
    inodes = set()
    fddir = "/proc/%d/fd" % pid
    for fd in os.listdir(fddir):
        try:
            link = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            lport = int(parts[1].rsplit(":", 1)[1], 16)
            if lport == port and parts[3] == "01" and parts[9] in inodes:
                n += 1
    return n


def port_refuses(port, host="127.0.0.1", timeout=1.0):
    """True if a TCP connect to host:port is refused (nobody listens)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                      socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


# --------------------------------------------------------------------------
# HTTP through http.client
# --------------------------------------------------------------------------

class Reply:
    """A parsed HTTP response."""

    def __init__(self, status, reason, headers, body, version=None):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value)
        self.body = body                # bytes
        self.version = version          # e.g. "HTTP/1.1" (raw client only)

    def header(self, name):
        """Value of the first header called name (case-insensitive) or None."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def header_all(self, name):
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Reply %s %s headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:200])


def http_request(port, method="GET", path="/", headers=None, body=None,
                 timeout=10.0):
    """One request on a fresh connection; returns a Reply."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, r.reason, list(r.getheaders()), data)
    finally:
        conn.close()


def get(port, path="/", headers=None, timeout=10.0):
    return http_request(port, "GET", path, headers=headers, timeout=timeout)


# --------------------------------------------------------------------------
# raw HTTP/1.x client
# --------------------------------------------------------------------------

class ConnectionClosed(Exception):
    """The peer closed the connection before a complete response."""


class RawClient:
    """A byte-level HTTP/1.x client on one TCP connection."""

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.timeout = timeout

    # -- io ---------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionClosed("connection closed by server "
                                   "(buffered: %r)" % (self.buf[:200],))
        self.buf += chunk

    def read_response(self, head=False):
        """Parse one response from the stream.  head=True: no body expected."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        status_line = lines[0]
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), \
            "bad status line %r" % (status_line,)
        version = parts[0]
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep, "bad header line %r" % (line,)
            headers.append((name.strip(), value.strip()))
        reply = Reply(status, reason, headers, b"", version)
        if head or status in (204, 304) or 100 <= status < 200:
            return reply
        clen = reply.header("Content-Length")
        if clen is None:
            # no length: the body runs until close
            try:
                while True:
                    self._fill()
            except ConnectionClosed:
                pass
            reply.body, self.buf = self.buf, b""
            return reply
        n = int(clen)
        while len(self.buf) < n:
            self._fill()
        reply.body, self.buf = self.buf[:n], self.buf[n:]
        return reply

    def request(self, method="GET", path="/", headers=None,
                version="HTTP/1.1", host="test"):
        """Send one request (Host added for HTTP/1.1 unless host is None)."""
        lines = ["%s %s %s" % (method, path, version)]
        if host is not None:
            lines.append("Host: %s" % host)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.send("\r\n".join(lines) + "\r\n\r\n")
        return self.read_response(head=(method == "HEAD"))

    def wait_closed(self, timeout):
        """Wait until the server closes the connection.

        Returns (closed, extra_bytes, elapsed): closed is True if EOF (or a
        reset) was seen within timeout; extra_bytes is whatever data arrived
        before it.
        """
        start = time.monotonic()
        deadline = start + timeout
        extra = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, extra, time.monotonic() - start
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False, extra, time.monotonic() - start
            except ConnectionResetError:
                return True, extra, time.monotonic() - start
            finally:
                self.sock.settimeout(self.timeout)
            if not chunk:
                return True, extra, time.monotonic() - start
            extra += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# Prometheus text format (GET /metrics)
# --------------------------------------------------------------------------

_METRIC_LINE_RE = re.compile(
    r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): float} from a Prometheus text
    exposition (comments and blank lines are skipped)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE_RE.match(line)
        assert m, "bad metrics line %r" % (line,)
        labels = frozenset(_LABEL_RE.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def metric_value(text, name, **labels):
    """Value of one sample, e.g.
    metric_value(text, "hitcountd_http_requests_total", code="200");
    AssertionError if it is missing."""
    samples = parse_metrics(text)
    key = (name, frozenset(labels.items()))
    assert key in samples, "metric %s%r not found" % (name, labels)
    return samples[key]


def keepalive_load(port, n_conn, per_conn, timeout,
                   request=b"GET / HTTP/1.1\r\nHost: load\r\n\r\n"):
    """n_conn threads, each sending per_conn requests one after another on
    its own persistent connection (all start together), within timeout
    seconds.  Returns (statuses, values, errors, elapsed, hung): counts
    per status, the visit numbers of the 200 answers, what went wrong (a
    dropped connection, or the server closing a keep-alive connection),
    the time taken, and whether any client thread was still running."""
    import threading
    import time

    results = [None] * n_conn
    barrier = threading.Barrier(n_conn)
    deadline = time.monotonic() + timeout

    def client(i):
        statuses, values, errors = {}, [], []
        c = None
        try:
            c = RawClient(port, timeout=30)
            barrier.wait(30)
            done = 0
            while done < per_conn and time.monotonic() < deadline:
                try:
                    c.send(request)
                    r = c.read_response()
                except (OSError, ConnectionClosed) as exc:
                    errors.append(repr(exc))
                    c.close()
                    c = RawClient(port, timeout=30)
                    done += 1
                    continue
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 200:
                    values.append(visits_from_body(r.body))
                if (r.header("Connection") or "").lower() == "close":
                    errors.append("the server closed a keep-alive "
                                  "connection")
                    c.close()
                    c = RawClient(port, timeout=30)
                done += 1
        except Exception as exc:           # noqa: B902 - reported
            errors.append("client %d: %r" % (i, exc))
        finally:
            if c is not None:
                c.close()
            results[i] = (statuses, values, errors)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(n_conn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1, deadline - time.monotonic() + 5))
    elapsed = time.monotonic() - t0
    hung = any(t.is_alive() for t in threads)

    statuses, values, errors = {}, [], []
    for res in results:
        if res is None:
            continue
        st, vals, errs = res
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
        values.extend(vals)
        errors.extend(errs)
    return statuses, values, errors, elapsed, hung


def read_log(path):
    """The text of a server's log file so far ("" before it exists)."""
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------
# the daemon's log, processes and sockets, and wrk's report
# --------------------------------------------------------------------------

def log_count(d, text):
    return d.log().count(text)


def wait_log(d, text, count=1, timeout=5):
    """Wait until text occurs at least count times in the daemon's log
    (deadline: patience(timeout))."""
    try:
        return wait_for(lambda: log_count(d, text) >= count,
                        patience(timeout),
                        what="%d x %r in the log" % (count, text))
    except AssertionError as exc:
        raise AssertionError("%s; log:\n%s" % (exc, d.log()[-6000:]))


def wait_exit(d, timeout):
    """Wait for the master to exit; returns (status, seconds waited)."""
    t0 = time.monotonic()
    try:
        rc = d.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("master %d still running after %.1f s; log:\n%s"
                             % (d.pid, timeout, d.log()[-6000:]))
    return rc, time.monotonic() - t0


def assert_gone(pids, timeout, what="workers"):
    """All pids gone within timeout (else kill them and fail)."""
    try:
        wait_for(lambda: not any(pid_alive(p) for p in pids), timeout,
                 what="%s %r to be gone" % (what, pids))
    finally:
        left = [p for p in pids if pid_alive(p)]
        for p in left:
            kill_pid(p)
    assert not left


def serves(port, n=3):
    for _ in range(n):
        r = get(port, timeout=5)
        assert r.status == 200, r
        visits_from_body(r.body)


def listeners_of(port):
    """PIDs holding a listening TCP socket on 127.0.0.1:port (diagnostics)."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    lport = int(fields[1].rsplit(":", 1)[1], 16)
                    if lport == port and fields[3] == "0A":   # LISTEN
                        inodes.add(fields[9])
        except FileNotFoundError:
            pass
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
            for fd in fds:
                link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.append(int(pid))
                    break
        except OSError:
            continue
    return sorted(pids)


def assert_wrk_lost_nothing(out, visits, conns, log=""):
    """wrk's report shows no error and no non-2xx answer, and Redis counted
    every completed response: wrk counts only those, and at its end at most
    one request per connection may be in flight (counted by Redis, not by
    wrk), never fewer.  Returns the parsed report."""
    st = parse_wrk(out)
    assert st["non2xx"] == 0, "non-2xx answers:\n%s" % out
    if st["socket_errors"] is not None:
        assert not any(st["socket_errors"].values()), \
            "connection errors: %r\n%s\nlog tail:\n%s" % (
                st["socket_errors"], out, log[-3000:])
    assert st["requests"] > 0, out
    assert st["requests"] <= visits <= st["requests"] + conns, \
        (st["requests"], visits)
    return st


def parse_wrk(out):
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(m?s)", out, re.M)
    assert m, "cannot parse wrk output:\n%s" % out
    stats = {"requests": int(m.group(1)), "non2xx": 0,
             "socket_errors": None}
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        stats["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors:\s*connect (\d+), read (\d+), "
                  r"write (\d+), timeout (\d+)", out)
    if m:
        stats["socket_errors"] = dict(zip(
            ("connect", "read", "write", "timeout"),
            (int(x) for x in m.groups())))
    return stats


def fire_requests(port, n, timeout=15):
    """Start n GET / on fresh connections in threads.

    Returns (threads, results): results[i] is a Reply or an exception once
    thread i is done.
    """
    results = [None] * n

    def one(i):
        try:
            results[i] = get(port, "/", timeout=timeout)
        except Exception as exc:      # noqa: B902 - reported by the test
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def join_all(threads, timeout):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "client threads hung"


# --------------------------------------------------------------------------
# each worker's Redis connection, from the daemon's log
# --------------------------------------------------------------------------
#
# /readyz is answered by whichever worker accepts the connection, and
# /metrics has no per-worker series, so "every worker can serve GET /" is
# not observable over HTTP.  Each worker logs its own Redis connection
# (src/counter.c, with its PID on every line): "redis: connected to ..."
# when it becomes ready, and one of REDIS_DOWN when it stops being ready.
# The last of these lines a worker wrote is its state.

REDIS_UP = "redis: connected to "
REDIS_DOWN = ("redis: lost connection to ", "redis: cannot connect to ",
              "redis: no reply within ", "redis: connection setup failed",
              "is not the primary; asking the sentinels",
              "redis: the sentinels moved the primary",
              "redis: the sentinels are promoting a replica",
              "redis: cannot resolve ", "redis: no answer from sentinel ",
              "redis: cannot reach sentinel ",
              "redis: cannot look up sentinel ",
              "redis: sentinel has no primary for ", "redis: bad sentinel ")

_LOG_PID_RE = (re.compile(r"^hitcountd\[(\d+)\]: \w+: (.*)$"),        # text
               re.compile(r'^ts=\S+ level=\w+ pid=(\d+) msg="(.*)"$'),  # kv
               re.compile(r'^\{"ts":"[^"]*","level":"\w+","pid":(\d+),'
                          r'"msg":"(.*)"\}$'))                         # json


def log_pid_messages(text):
    """[(pid, message)] of the daemon's own lines in a log (any format)."""
    out = []
    for line in text.splitlines():
        for rx in _LOG_PID_RE:
            m = rx.match(line)
            if m:
                out.append((int(m.group(1)), m.group(2)))
                break
    return out


def redis_states(text):
    """{pid: True (connected) or False (not)} from the last Redis
    connection line each process wrote in text."""
    states = {}
    for pid, msg in log_pid_messages(text):
        if msg.startswith(REDIS_UP):
            states[pid] = True
        elif any(m in msg for m in REDIS_DOWN):
            states[pid] = False
    return states


def wait_all_workers_ready(daemon, n=None, timeout=5, since=0):
    """Wait until the daemon has n worker processes (default: whatever it
    has) and every one of them is connected to Redis according to its own
    log lines after offset `since` of the log (pass len(daemon.log()) taken
    before an event such as a Redis restart, so that only what came after
    it counts).  The deadline is patience(timeout).  Returns the worker
    PIDs.  Needs log_level info or debug (info is the default)."""
    state = {}

    def ready():
        workers = daemon.workers()
        if not workers or (n is not None and len(workers) != n):
            state["why"] = "workers %r" % (workers,)
            return False
        states = redis_states(daemon.log()[since:])
        waiting = [w for w in workers if not states.get(w)]
        state["why"] = "workers %r, not connected yet: %r" % (workers,
                                                               waiting)
        return not waiting and workers
    try:
        return wait_for(ready, patience(timeout), interval=0.02,
                        what="every worker connected to Redis")
    except AssertionError as exc:
        raise AssertionError("%s (%s); log:\n%s" % (
            exc, state.get("why"), daemon.log()[since:][-4000:]))


def wait_all_workers_down(daemon, timeout=5, since=0):
    """Wait until every worker of the daemon has logged, after offset
    `since`, that it is not connected to Redis.  Returns the worker PIDs."""
    state = {}

    def down():
        workers = daemon.workers()
        states = redis_states(daemon.log()[since:])
        still = [w for w in workers if states.get(w) is not False]
        state["why"] = "workers %r, not seen down: %r" % (workers, still)
        return workers and not still and workers
    try:
        return wait_for(down, patience(timeout), interval=0.02,
                        what="every worker to lose Redis")
    except AssertionError as exc:
        raise AssertionError("%s (%s); log:\n%s" % (
            exc, state.get("why"), daemon.log()[since:][-4000:]))


# --------------------------------------------------------------------------
# a slow DNS server, and a daemon that uses it (tests/e2e/test_reload.py,
# tests/e2e/test_sentinel_dns.py)
# --------------------------------------------------------------------------

class SlowDNS:
    """A DNS server on 127.0.0.1 (a free UDP port) that knows one name:
    an A query for it gets 127.0.0.1, an AAAA query no address (NOERROR,
    empty), any other name NXDOMAIN, each after delay seconds.  queries
    lists (time received, source port, name, type) of every query."""

    def __init__(self, name, delay):
        self.name = name.lower()
        self.delay = delay
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answer(self, query):
        qid, qflags = struct.unpack("!HH", query[:4])
        labels, i = [], 12
        while query[i]:
            labels.append(query[i + 1:i + 1 + query[i]].decode("ascii"))
            i += 1 + query[i]
        qtype, = struct.unpack("!H", query[i + 1:i + 3])
        name = ".".join(labels)
        question = query[12:i + 5]
        answers = b""
        rcode = 0 if name.lower() == self.name else 3      # NXDOMAIN
        if rcode == 0 and qtype == 1:                      # A
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + \
                socket.inet_aton("127.0.0.1")
        flags = 0x8400 | (qflags & 0x0100) | 0x0080 | rcode  # QR AA RD RA
        head = struct.pack("!HHHHHH", qid, flags, 1,
                           1 if answers else 0, 0, 0)
        return name, qtype, head + question + answers

    def _serve(self):
        due = []                        # (when, seq, reply, address)
        seq = 0
        while not self._stop.is_set():
            wait = 0.05 if not due else max(
                0.0, min(0.05, due[0][0] - time.monotonic()))
            if select.select([self.sock], [], [], wait)[0]:
                query, addr = self.sock.recvfrom(4096)
                now = time.monotonic()
                try:
                    name, qtype, reply = self._answer(query)
                except (IndexError, struct.error, UnicodeDecodeError):
                    continue
                self.queries.append((now, addr[1], name, qtype))
                seq += 1
                heapq.heappush(due, (now + self.delay, seq, reply, addr))
            while due and due[0][0] <= time.monotonic():
                _, _, reply, addr = heapq.heappop(due)
                try:
                    self.sock.sendto(reply, addr)
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()



def resolv_conf_prefix(path):
    """A wrapper that runs the daemon in a mount namespace of its own,
    where /etc/resolv.conf is path, and execs it (the pid stays)."""
    return ["unshare", "--mount", "--propagation", "private",
            "sh", "-c", 'f=$1; shift; '
            'mount --bind "$f" /etc/resolv.conf && exec "$@"', "sh", path]


def private_resolv_conf(dns, directory):
    """Write DIRECTORY/resolv.conf naming the SlowDNS dns, and return
    (prefix, path): prefix is an argv to put before the daemon so that it
    runs in a mount namespace of its own where /etc/resolv.conf is that
    file (the host's file is left alone, no query leaves 127.0.0.1).
    Fails the test without root or without unshare (util-linux)."""
    import pytest
    if os.geteuid() != 0:
        pytest.fail("needs root: a mount namespace for /etc/resolv.conf")
    if shutil.which("unshare") is None:
        pytest.fail("unshare is not installed (Debian package util-linux)")
    path = os.path.join(str(directory), "resolv.conf")
    with open(path, "w") as f:
        # evdns (not the libc resolver) reads it: it takes an address:port
        f.write("nameserver 127.0.0.1:%d\n" % dns.port)
    os.chmod(path, 0o644)               # read by the workers, as nobody
    return resolv_conf_prefix(path), path
