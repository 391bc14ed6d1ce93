"""What hitcountd does with a sentinel's answer it cannot trust.

The sentinels here are fakes (FakeSentinel: a small RESP server in a
thread of the test) so that they can say what a real sentinel would not:
a port that is not a port, or nothing at all.  The primary is a real
redis-server.

- test_bad_port_from_sentinel_rejected: the answer to
  get-master-addr-by-name names the primary with a malformed port; the
  worker must reject it with a log line saying so, not connect to
  whatever number strtol() made of it.
- test_bad_port_in_periodic_check_keeps_primary: the once-a-second check
  gets such an answer; the worker keeps its primary (atoi() made it port 0,
  "moved", and the worker left a good primary for nothing).
- test_sentinel_that_hangs_up_is_skipped: the first sentinel closes the
  connection without answering; the worker asks the next one (it used to
  wait for an answer that could no longer come, for ever).
- test_switch_announced_followed_at_once: with the sentinel's answers
  hanging, only its +switch-master message can move the worker: one for
  another master, or with a bad port, is ignored; a lost subscription is
  made again; the switch is followed within a fraction of a second.
- test_refused_subscription_retried_calmly: a sentinel that refuses
  SUBSCRIBE (an error reply) costs one warning and a new attempt at most
  once a second; the worker serves all the same.
- test_sentinel_auth_first_on_every_connection: with a sentinel password
  (and user), every connection to a sentinel, for a question or a
  subscription, starts with AUTH as configured.
- test_promotion_announced_leaves_primary: +failover-state-send-slaveof-
  noone makes the worker leave its primary at once (503); without a new
  primary named it asks the sentinels again 3 s later; +promoted-slave
  names the new primary, which the worker uses at once.
"""

import socket
import threading
import time

import pytest

from e2e_daemon import wait_log
from e2e_helpers import made_by, patience, wait_for
from e2e_http import get, visits_from_body
from e2e_servers import (MASTER_NAME, NODE_OPTIONS, RedisServer,
                         sentinel_redis_section)


class FakeSentinel:
    """A RESP server on 127.0.0.1 answering SENTINEL get-master-addr-by-name
    with self.answer: [host, port] (port a string, sent as is), "hangup"
    to close the connection instead, or "hang" to say nothing.  SUBSCRIBE
    is confirmed, and publish() sends a message to the subscribers; or,
    with refuse_subscribe, refused with an error (counted all the same).
    AUTH is accepted; the first command of each connection is kept."""

    def __init__(self, answer, refuse_subscribe=False):
        self.answer = answer
        self.refuse_subscribe = refuse_subscribe
        self.questions = 0
        self.subscriptions = 0          # SUBSCRIBE commands received
        self.subscribers = {}           # connection -> its channels
        self.firsts = []                # each connection's first command
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.closing = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    @staticmethod
    def _read_command(f):
        line = f.readline()
        if not line.startswith(b"*"):
            return None
        args = []
        for _ in range(int(line[1:])):
            n = int(f.readline()[1:])
            args.append(f.read(n + 2)[:n].decode())
        return args

    def _serve(self, conn):
        f = conn.makefile("rb")
        first = True
        try:
            while True:
                args = self._read_command(f)
                if args is None:
                    return
                if first:
                    with self.lock:
                        self.firsts.append(args)
                    first = False
                if args and args[0].lower() == "auth":
                    conn.sendall(b"+OK\r\n")
                    continue
                if args and args[0].lower() == "subscribe":
                    self._subscribe(conn, args[1:])
                    continue
                if [a.lower() for a in args[:2]] != \
                        ["sentinel", "get-master-addr-by-name"]:
                    conn.sendall(b"-ERR unknown command\r\n")
                    continue
                with self.lock:
                    self.questions += 1
                    answer = self.answer
                if answer == "hangup":
                    return
                if answer == "hang":
                    continue
                out = b"*%d\r\n" % len(answer)
                for a in answer:
                    a = a.encode()
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
                conn.sendall(out)
        except OSError:
            pass
        finally:
            with self.lock:
                self.subscribers.pop(conn, None)
            f.close()
            conn.close()

    @staticmethod
    def _bulk(*words):
        out = b"*%d\r\n" % len(words)
        for w in words:
            if isinstance(w, int):
                out += b":%d\r\n" % w
            else:
                out += b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode())
        return out

    def _subscribe(self, conn, channels):
        with self.lock:
            self.subscriptions += 1
            if self.refuse_subscribe:
                conn.sendall(b"-NOAUTH Authentication required.\r\n")
                return
            mine = self.subscribers.setdefault(conn, set())
            for ch in channels:
                mine.add(ch)
                conn.sendall(self._bulk("subscribe", ch, len(mine)))

    def publish(self, channel, message):
        """Send message on channel to every subscriber; returns how many
        got it."""
        n = 0
        with self.lock:
            for conn, channels in self.subscribers.items():
                if channel in channels:
                    conn.sendall(self._bulk("message", channel, message))
                    n += 1
        return n

    def subscribed(self):
        """How many connections are subscribed now."""
        with self.lock:
            return len(self.subscribers)

    def drop_subscribers(self):
        """Close every subscriber's connection."""
        with self.lock:
            conns = list(self.subscribers)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def set_answer(self, answer):
        with self.lock:
            self.answer = answer

    def asked(self):
        with self.lock:
            return self.questions

    def first_commands(self):
        """The first command of each connection so far, in order."""
        with self.lock:
            return list(self.firsts)

    def close(self):
        self.closing = True
        self.sock.close()


@pytest.fixture
def fake_sentinels():
    yield from made_by(FakeSentinel, FakeSentinel.close)


def _redis_section(sentinels):
    return sentinel_redis_section([s.addr for s in sentinels])


def _poll_200(d, timeout):
    def ok():
        r = get(d.port, "/", timeout=5)
        return r if r.status == 200 else None
    return wait_for(ok, timeout, interval=0.05, what="GET / == 200")


@pytest.mark.parametrize("bad", ["%dabc", "+%d", " %d", "%d.0", "0", "70000",
                                 ""])
def test_bad_port_from_sentinel_rejected(daemon_factory, redis_server,
                                         fake_sentinels, bad):
    port = bad % redis_server.port if "%" in bad else bad
    s = fake_sentinels(["127.0.0.1", port])
    d = daemon_factory(workers=1, redis=_redis_section([s]))
    wait_log(d, "bad port '%s'" % port)
    # asked again and again, never connected to the primary
    wait_for(lambda: s.asked() >= 3, 5, what="three questions")
    for _ in range(3):
        r = get(d.port, "/", timeout=5)
        assert r.status == 503, (r, d.log()[-3000:])
    assert "redis: connected" not in d.log(), d.log()[-3000:]
    assert redis_server.visits() == 0


def test_bad_port_in_periodic_check_keeps_primary(daemon_factory,
                                                  redis_server,
                                                  fake_sentinels):
    s = fake_sentinels(["127.0.0.1", str(redis_server.port)])
    d = daemon_factory(workers=1, redis=_redis_section([s]))
    _poll_200(d, 3)
    s.set_answer(["127.0.0.1", "abc"])
    asked = s.asked()
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        r = get(d.port, "/", timeout=5)
        assert r.status == 200, (r, d.log()[-3000:])
        time.sleep(0.05)
    assert s.asked() >= asked + 2, "the worker stopped checking"
    log = d.log()
    assert "bad port 'abc'" in log, log[-3000:]
    assert "moved the primary" not in log, log[-3000:]


def test_sentinel_that_hangs_up_is_skipped(daemon_factory, redis_server,
                                           fake_sentinels):
    first = fake_sentinels("hangup")
    second = fake_sentinels(["127.0.0.1", str(redis_server.port)])
    t0 = time.monotonic()
    d = daemon_factory(workers=1, redis=_redis_section([first, second]))
    r = _poll_200(d, 3)
    assert first.asked() >= 1
    assert visits_from_body(r.body) == 1
    assert time.monotonic() - t0 < 4.0


# --------------------------------------------------------------------------
# what the sentinels publish
# --------------------------------------------------------------------------

@pytest.fixture
def second_redis(tmp_path):
    """Another redis-server (a primary of its own): where a failover
    announced by a fake sentinel leads."""
    node = RedisServer(str(tmp_path / "second"), "second", extra=NODE_OPTIONS)
    try:
        node.start()
        yield node
    finally:
        node.teardown()


def _on_primary(daemon_factory, primary, fake_sentinels):
    """A daemon (one worker) on a fake sentinel that names primary: once
    it serves 200 and is subscribed.  Returns (sentinel, daemon)."""
    s = fake_sentinels(["127.0.0.1", str(primary.port)])
    d = daemon_factory(workers=1, redis=_redis_section([s]))
    _poll_200(d, 3)
    wait_for(lambda: s.subscribed() >= 1, patience(3),
             what="the worker subscribed to the sentinel")
    return s, d


def _visit(d, status=200):
    r = get(d.port, "/", timeout=5)
    assert r.status == status, (r, d.log()[-3000:])
    return visits_from_body(r.body) if status == 200 else None


def test_switch_announced_followed_at_once(daemon_factory, redis_server,
                                           second_redis, fake_sentinels):
    old, new = redis_server, second_redis
    s, d = _on_primary(daemon_factory, old, fake_sentinels)
    # from now on the worker's questions go unanswered: it keeps its
    # primary, and only an announcement can move it
    s.set_answer("hang")
    s.publish("+switch-master", "othermaster 127.0.0.1 %d 127.0.0.1 %d"
              % (old.port, new.port))
    s.publish("+switch-master", "%s 127.0.0.1 %d 127.0.0.1 0x%d"
              % (MASTER_NAME, old.port, new.port))
    wait_log(d, "with a bad address")
    v = _visit(d)
    assert old.visits() == v

    # the sentinel drops the subscription: the worker makes it again
    made = s.subscriptions
    s.drop_subscribers()
    wait_for(lambda: s.subscriptions > made and s.subscribed() == 1,
             patience(3), what="the subscription made again")
    t0 = time.monotonic()
    assert s.publish("+switch-master", "%s 127.0.0.1 %d 127.0.0.1 %d"
                     % (MASTER_NAME, old.port, new.port)) == 1
    wait_log(d, "redis: connected to 127.0.0.1:%d" % new.port,
             timeout=1)
    took = time.monotonic() - t0
    assert _visit(d) == 1 and new.visits() == 1
    assert old.visits() == v
    log = d.log()
    print("+switch-master followed in %.3f s" % took)
    assert "the sentinels moved the primary of '%s' to 127.0.0.1:%d" % (
        MASTER_NAME, new.port) in log, log[-3000:]
    assert "lost the subscription to sentinel %s" % s.addr in log
    assert "othermaster" not in log
    assert took < patience(0.5), took


def test_promotion_announced_leaves_primary(daemon_factory, redis_server,
                                            second_redis, fake_sentinels):
    old, new = redis_server, second_redis
    s, d = _on_primary(daemon_factory, old, fake_sentinels)
    promoting = "slave 127.0.0.1:%d 127.0.0.1 %d @ %s 127.0.0.1 %d" % (
        new.port, new.port, MASTER_NAME, old.port)

    # the promotion starts, and no new primary is named: 503 at once, then
    # after 3 s the worker asks again, and goes back to the primary named
    t0 = time.monotonic()
    s.publish("+failover-state-send-slaveof-noone", promoting)
    wait_log(d, "the sentinels are promoting a replica", timeout=1)
    t1 = time.monotonic()
    _visit(d, 503)
    answered_503 = time.monotonic() - t1
    _poll_200(d, patience(5))
    back = time.monotonic() - t0

    # again, and the promoted replica is named: used at once
    s.publish("+failover-state-send-slaveof-noone", promoting)
    wait_log(d, "the sentinels are promoting a replica", 2, timeout=1)
    _visit(d, 503)
    t2 = time.monotonic()
    s.publish("+promoted-slave", promoting)
    wait_log(d, "redis: connected to 127.0.0.1:%d" % new.port,
             timeout=1)
    took = time.monotonic() - t2
    assert _visit(d) == 1
    print("promotion announced: 503 in %.3f s; back on the old primary "
          "%.2f s later; on the promoted replica %.3f s after "
          "+promoted-slave" % (answered_503, back, took))
    assert answered_503 < 0.5
    assert 2.9 <= back < 3.0 + patience(1.5), back
    assert took < patience(0.5), took


@pytest.mark.parametrize("user", ["", "hc"])
def test_sentinel_auth_first_on_every_connection(daemon_factory,
                                                 redis_server,
                                                 fake_sentinels, user):
    s = fake_sentinels(["127.0.0.1", str(redis_server.port)])
    extra = {"sentinel_password": "s3cret"}
    if user:
        extra["sentinel_username"] = user
    d = daemon_factory(workers=1,
                       redis=sentinel_redis_section([s.addr], **extra))
    _poll_200(d, 3)
    # the question, the subscription, and a periodic question
    wait_for(lambda: s.subscribed() >= 1 and s.asked() >= 2, patience(5),
             what="a subscription and two questions")
    want = ["AUTH", user, "s3cret"] if user else ["AUTH", "s3cret"]
    firsts = s.first_commands()
    assert len(firsts) >= 3, firsts
    assert all(f == want for f in firsts), firsts


def test_refused_subscription_retried_calmly(daemon_factory, redis_server,
                                             fake_sentinels):
    s = fake_sentinels(["127.0.0.1", str(redis_server.port)],
                       refuse_subscribe=True)
    d = daemon_factory(workers=1, redis=_redis_section([s]))
    _poll_200(d, 3)
    wait_for(lambda: s.subscriptions >= 1, patience(3),
             what="an attempt to subscribe")
    t0, n0 = time.monotonic(), s.subscriptions
    while time.monotonic() < t0 + 3.0:
        _visit(d)
        time.sleep(0.05)
    tries = s.subscriptions - n0
    log = d.log()
    warned = log.count("cannot subscribe to sentinel %s: NOAUTH" % s.addr)
    print("SUBSCRIBE refused: %d attempts in 3 s, %d warnings"
          % (tries, warned))
    # 100, 200, 400, 800 ms, then a second between attempts
    assert 2 <= tries <= 6, tries
    assert warned == 1, log[-3000:]
    assert "redis: connected" in log and "moved the primary" not in log
