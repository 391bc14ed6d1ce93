"""The history checker of tests/e2e/test_history.py (issue 19): client
threads that record every request and its answer, a seeded nemesis that
applies faults from a list drawn at the start, and a checker of the
invariants I1-I6 of tests/INVARIANTS.md over the whole history.

Clients (raw sockets, one thread each) are of three kinds:
- keepalive: one connection, one request at a time (mostly GET /, now and
  then HEAD / or GET /healthz), a new connection when it is lost;
- pipelined: 2 to 5 requests (GET /, HEAD /, GET /healthz) written at
  once, their answers read in order;
- fresh: a new connection per GET / (Connection: close), read to its end.
Each request is recorded with the client, its connection, the kind, the
time its last byte was written and the time its answer was complete,
the status, the number of a counter page, and what went wrong (the
connection closed before the answer, no answer in time, bytes that are
not the answer expected).  Answers are cut by Content-Length, so any
stray byte (a HEAD body, an answer to a request never sent, another
client's answer) shows up where a status line was due.

The nemesis runs a list of (planned time, fault, random parameter) drawn
from HISTORY_SEED before the run: same seed, same list and times (a fault
that takes longer than planned delays the ones after it).  The faults are
functions a scenario gives it; what they do is in test_history.py.
"""

import datetime
import os
import random
import re
import signal
import socket
import threading
import time

from e2e_helpers import pid_alive, proc_stat, wait_for

MARGIN_S = 0.25          # tests/INVARIANTS.md, I5 on the real daemon
# each client's pause between two exchanges: the history of a 30-minute
# run fits in memory, and the machine is shared
PACE_S = float(os.environ.get("HISTORY_PACE_MS", 3)) / 1000.0
BODY_RE = re.compile(rb"^Page visited (\d+) times")
# time.monotonic() + WALL is the time of day, to compare with the logs
WALL = time.time() - time.monotonic()
KV_TS_RE = re.compile(r"^ts=(\S+)Z ")


def wall(t):
    """A monotonic time as the UTC time of day the daemon's logs write."""
    return datetime.datetime.utcfromtimestamp(t + WALL).strftime(
        "%H:%M:%S.%f")[:-3]


def log_window(text, t0, t1):
    """The lines of a log_format kv log written between the monotonic
    times t0 and t1, without the access log's."""
    lo, hi = t0 + WALL, t1 + WALL
    out = []
    for line in text.splitlines():
        m = KV_TS_RE.match(line)
        if not m or "method=" in line:
            continue
        ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
        ts = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
        if lo <= ts <= hi:
            out.append(line)
    return out


def history_seed():
    """HISTORY_SEED, or a new one (printed by the caller)."""
    s = os.environ.get("HISTORY_SEED")
    return int(s) if s else random.SystemRandom().randrange(1, 2 ** 31)


def history_seconds(default=20.0):
    return float(os.environ.get("HISTORY_SECONDS", default))


# --------------------------------------------------------------------------
# the history
# --------------------------------------------------------------------------

class Request:
    """One request of the history."""

    __slots__ = ("id", "client", "conn", "kind", "method", "path", "t_send",
                 "t_done", "status", "number", "error", "close", "t_fail")

    def __init__(self, rid, client, conn, kind, method, path):
        self.id, self.client, self.conn, self.kind = rid, client, conn, kind
        self.method, self.path = method, path
        self.t_send = self.t_done = self.t_fail = None
        self.status = self.number = self.error = None
        self.close = False

    def visit(self):
        """A GET / counts a visit (HEAD / only reads the counter)."""
        return self.method == "GET" and self.path == "/"

    def __repr__(self):
        return ("#%d client %d conn %d %s %s %s sent %s done %s status %s "
                "number %s%s" % (
                    self.id, self.client, self.conn, self.kind, self.method,
                    self.path, wall(self.t_send),
                    wall(self.t_done) if self.t_done else "-",
                    self.status, self.number,
                    " error %s" % self.error if self.error else ""))


class History:
    """Every request of a run, and the ids that number them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.next_id = 0
        self.next_conn = 0
        self.connect_errors = 0

    def new(self, client, conn, kind, method, path):
        with self.lock:
            self.next_id += 1
            r = Request(self.next_id, client, conn, kind, method, path)
            self.requests.append(r)
            return r

    def conn_id(self):
        with self.lock:
            self.next_conn += 1
            return self.next_conn


# --------------------------------------------------------------------------
# the clients
# --------------------------------------------------------------------------

class Lost(Exception):
    """The connection cannot be used any more: error names why."""

    def __init__(self, error):
        Exception.__init__(self, error)
        self.error = error


class Conn:
    """A client connection that reads answers cut by Content-Length."""

    def __init__(self, port, history):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self.id = history.conn_id()
        self.buf = b""

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            raise Lost("send failed")

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Lost("no answer")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Lost("no answer")
        except OSError:
            raise Lost("closed")
        if not data:
            raise Lost("closed")
        self.buf += data

    def answer(self, head, deadline):
        """(status, body, close) of the next answer; Lost on failure,
        Lost("stray bytes ...") if the bytes there are not an answer."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) >= 5 and not self.buf.startswith(b"HTTP/"):
                raise Lost("stray bytes %r" % self.buf[:80])
            self._fill(deadline)
        if not self.buf.startswith(b"HTTP/1.1 "):
            raise Lost("stray bytes %r" % self.buf[:80])
        top, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = top.split(b"\r\n")
        status = int(lines[0].split()[1])
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            fields[k.strip().lower()] = v.strip()
        length = 0 if head else int(fields.get(b"content-length", b"0"))
        while len(self.buf) < length:
            self._fill(deadline)
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body, fields.get(b"connection", b"").lower() == b"close"

    def rest(self, deadline):
        """Whatever comes until the peer closes (after Connection: close)."""
        try:
            while True:
                self._fill(deadline)
        except Lost:
            pass
        return self.buf

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _wire(method, path, close=False):
    return ("%s %s HTTP/1.1\r\nHost: history\r\n%s\r\n" % (
        method, path, "Connection: close\r\n" if close else "")).encode()


class Clients:
    """The client threads of a run, recording into one History."""

    def __init__(self, port, seed, timeout_ms, keepalive=3, pipelined=2,
                 fresh=3):
        self.port = port
        self.history = History()
        self.wait_s = timeout_ms / 1000.0 + MARGIN_S + 2.0
        self.stopping = threading.Event()
        self.threads = []
        kinds = (["keepalive"] * keepalive + ["pipelined"] * pipelined +
                 ["fresh"] * fresh)
        for n, kind in enumerate(kinds):
            rng = random.Random("%d/client/%d" % (seed, n))
            self.threads.append(threading.Thread(
                target=getattr(self, "_" + kind), args=(n, rng),
                daemon=True))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(self.wait_s + 10)
        assert not any(t.is_alive() for t in self.threads), "clients hang"
        return self.history

    def _connect(self):
        try:
            return Conn(self.port, self.history)
        except OSError:
            with self.history.lock:
                self.history.connect_errors += 1
            time.sleep(0.05)
            return None

    def _exchange(self, c, client, kind, reqs):
        """Send reqs [(method, path)] at once on c and read their answers.
        Returns False once c is lost (the unanswered requests say why)."""
        recs = [self.history.new(client, c.id, kind, m, p) for m, p in reqs]
        close = kind == "fresh"
        try:
            c.send(b"".join(_wire(m, p, close) for m, p in reqs))
        except Lost as exc:
            for r in recs:
                r.t_send = r.t_fail = time.monotonic()
                r.error = exc.error
            return False
        t = time.monotonic()
        for r in recs:
            r.t_send = t
        for i, r in enumerate(recs):
            # I5: one pipelined behind another is taken up when the one
            # before it is answered
            deadline = (recs[i - 1].t_done if i else t) + self.wait_s
            try:
                status, body, closing = c.answer(r.method == "HEAD",
                                                 deadline)
            except Lost as exc:
                for rest in recs[i:]:
                    rest.error, rest.t_fail = exc.error, time.monotonic()
                if i > 0 and exc.error.startswith("stray") and \
                        recs[i - 1].method == "HEAD":
                    recs[i - 1].error = "HEAD answer with a body?"
                return False
            r.t_done, r.status, r.close = time.monotonic(), status, closing
            m = BODY_RE.match(body)
            if r.visit() and status == 200 and m:
                r.number = int(m.group(1))
            if closing:
                for rest in recs[i + 1:]:
                    rest.error = "closed after Connection: close"
                if kind == "fresh":
                    extra = c.rest(time.monotonic() + self.wait_s)
                    if extra:
                        r.error = "stray bytes after the answer %r" % (
                            extra[:80],)
                return False
        return True

    def _keepalive(self, client, rng):
        c = None
        while not self.stopping.is_set():
            c = c or self._connect()
            if c is None:
                continue
            x = rng.random()
            req = ("HEAD", "/") if x < 0.1 else \
                ("GET", "/healthz") if x < 0.15 else ("GET", "/")
            if not self._exchange(c, client, "keepalive", [req]):
                c.close()
                c = None
            time.sleep(PACE_S)
        self._last_check(c, client, "keepalive")

    def _pipelined(self, client, rng):
        c = None
        while not self.stopping.is_set():
            c = c or self._connect()
            if c is None:
                continue
            reqs = [rng.choice((("GET", "/"), ("GET", "/"), ("GET", "/"),
                                ("HEAD", "/"), ("GET", "/healthz")))
                    for _ in range(rng.randint(2, 5))]
            if not self._exchange(c, client, "pipelined", reqs):
                c.close()
                c = None
            time.sleep(PACE_S)
        self._last_check(c, client, "pipelined")

    def _last_check(self, c, client, kind):
        """A last GET /healthz on a connection still open: stray bytes
        left behind by the answers before it show up in front of its
        answer."""
        if c is not None:
            self._exchange(c, client, kind, [("GET", "/healthz")])
            c.close()

    def _fresh(self, client, rng):
        while not self.stopping.is_set():
            c = self._connect()
            if c is None:
                continue
            self._exchange(c, client, "fresh", [("GET", "/")])
            c.close()
            time.sleep(PACE_S)


# --------------------------------------------------------------------------
# the nemesis
# --------------------------------------------------------------------------

def fault_plan(seed, kinds, seconds, gap=(1.0, 3.0)):
    """[(planned start in s from the run's start, kind, parameter in
    [0, 1))], drawn from seed alone."""
    rng = random.Random("%d/nemesis" % seed)
    plan, t = [], rng.uniform(*gap)
    while t < seconds:
        plan.append((round(t, 3), rng.choice(sorted(kinds)), rng.random()))
        t += rng.uniform(*gap)
    return plan


class Nemesis:
    """Runs the faults of a plan, one after another, in a thread: each is
    faults[kind](parameter), which returns when the fault is over (healed
    or recovered from).  done: [(kind, start, end, error or None)]."""

    def __init__(self, faults, plan, seconds):
        self.faults, self.plan, self.seconds = faults, plan, seconds
        self.done = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t0 = time.monotonic()
        self.thread.start()
        return self

    def _run(self):
        for at, kind, x in self.plan:
            if self.stopping.wait(max(0.0, self.t0 + at - time.monotonic())):
                return
            if time.monotonic() - self.t0 >= self.seconds:
                return
            t = time.monotonic()
            try:
                self.faults[kind](x)
                err = None
            except Exception as exc:        # noqa: B902 - reported later
                err = "%s: %s" % (type(exc).__name__, str(exc)[:2000])
            self.done.append((kind, t, time.monotonic(), err))
            if err:
                return

    def join(self):
        """Wait for the run's time (and the fault under way) to end."""
        self.thread.join(self.seconds + 300)
        self.stopping.set()
        self.thread.join(120)
        assert not self.thread.is_alive(), "a fault hangs"

    def errors(self):
        return [d for d in self.done if d[3]]


# --------------------------------------------------------------------------
# the checker
# --------------------------------------------------------------------------

def check(history, final, timeout_ms, strict_count=True, kills=()):
    """Violations of I1-I5 in history, with Redis's final value `final`:
    [(label, text, [requests])].  kills: the (start, end) of each kill -9
    of a worker, the only time a connection may be lost with a request
    in it unanswered.  strict_count=False leaves out I2, I3
    and I4 (an unplanned failover without min_replicas_acked may break
    them: the count goes back; the caller measures them instead)."""
    out = []
    bound = timeout_ms / 1000.0 + MARGIN_S
    before = {}                 # connection: the answer before, its time
    for r in history.requests:
        # a request pipelined behind another waits for its answer (I5)
        start = max(r.t_send, before.get(r.conn, 0.0))
        if r.t_done is not None:
            before[r.conn] = r.t_done
        if r.error and (r.error.startswith("stray") or
                        r.error.startswith("HEAD")):
            out.append(("I1", "bytes that are no answer to a request sent",
                        [r]))
        elif r.status is not None and r.status not in (200, 503):
            out.append(("I1", "status %d" % r.status, [r]))
        elif r.error in ("closed", "send failed") and not any(
                t0 - 1.0 <= r.t_fail and r.t_send <= t1 + 1.0
                for t0, t1 in kills):
            out.append(("I1", "connection lost, no answer, no worker "
                        "killed", [r]))
        if r.t_done is not None and r.t_done - start > bound:
            out.append(("I5", "answered %.3f s after it was taken up" % (
                r.t_done - start), [r]))
        elif r.error == "no answer":
            out.append(("I5", "no answer on an open connection", [r]))
    if strict_count:
        out += check_count(history, final) + check_order(history)
    return out


def check_order(history):
    """I4."""
    out = []
    by_conn = {}
    for r in history.requests:
        if r.number is not None:
            by_conn.setdefault(r.conn, []).append(r)
    for rs in by_conn.values():
        rs.sort(key=lambda r: r.id)
        for a, b in zip(rs, rs[1:]):
            if b.number <= a.number:
                out.append(("I4", "numbers do not increase on connection "
                            "%d" % a.conn, [a, b]))
    return out


def count_figures(history, final):
    """(200s of GET /, the other visits, final - 200s, numbers repeated)."""
    visits = [r for r in history.requests if r.visit()]
    ok = [r for r in visits if r.status == 200]
    numbers = {}
    for r in ok:
        numbers.setdefault(r.number, []).append(r)
    repeated = {n: rs for n, rs in numbers.items() if len(rs) > 1}
    return len(ok), len(visits) - len(ok), final - len(ok), repeated


def check_count(history, final):
    """I2 and I3."""
    out = []
    n200, unsure, diff, repeated = count_figures(history, final)
    for n, rs in sorted(repeated.items()):
        out.append(("I2", "number %s answered %d times" % (n, len(rs)), rs))
    if not 0 <= diff <= unsure:
        out.append(("I3", "Redis holds %d, %d answered 200, %d other visits"
                    % (final, n200, unsure), []))
    return out


def summary(name, seed, history, nemesis, final, violations,
            log=lambda t0, t1: []):
    """The text printed after a run; log(t0, t1): the daemon's lines
    between two times, shown under each violation."""
    statuses = {}
    for r in history.requests:
        key = "%s %s: %s" % (r.method, r.path,
                             r.status if r.status is not None else r.error)
        statuses[key] = statuses.get(key, 0) + 1
    kinds = {}
    for kind, t0, t1, err in nemesis.done:
        kinds[kind] = kinds.get(kind, 0) + 1
    n200, unsure, diff, repeated = count_figures(history, final)
    lines = ["history %s: seed %d, %d requests on %d connections "
             "(%d connects refused), %d faults in %.0f s: %s" % (
                 name, seed, len(history.requests), history.next_conn,
                 history.connect_errors, len(nemesis.done),
                 nemesis.seconds, ", ".join(
                     "%s %d" % kv for kv in sorted(kinds.items()))),
             "  answers: " + ", ".join("%s x %d" % kv
                                       for kv in sorted(statuses.items())),
             "  Redis holds %d: %d visits answered 200, %d others; %d "
             "numbers handed out twice" % (final, n200, unsure,
                                           len(repeated)),
             "  faults: " + ", ".join(
                 "%s %s-%s%s" % (kind, wall(t0), wall(t1),
                                 " (%s)" % err if err else "")
                 for kind, t0, t1, err in nemesis.done),
             "  %d violations %s" % (len(violations), ", ".join(
                 sorted({"%s x %d" % (v[0], sum(1 for w in violations
                                                if w[0] == v[0]))
                         for v in violations})))]
    for label, text, rs in violations[:30]:
        lines.append("  %s %s" % (label, text))
        lines.extend("      %r" % r for r in rs[:6])
        if rs:
            t0 = min(r.t_send for r in rs) - 0.5
            t1 = max(r.t_done or r.t_send + 3 for r in rs) + 0.1
            lines.extend("        | " + l for l in log(t0, t1)[-12:])
    return "\n".join(lines)


# --------------------------------------------------------------------------
# the daemon's processes across upgrades
# --------------------------------------------------------------------------

def gone(pid):
    """True once pid has exited (a zombie counts: it is not our child to
    reap once a binary upgrade made it a grandchild)."""
    st = proc_stat(pid)
    return st is None or st[0] in ("Z", "X")


def stop_master(pid, timeout=15):
    """SIGTERM to a master that is not the test's child; wait for it."""
    if pid is None or not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: gone(pid), timeout, what="master %d to exit" % pid)
