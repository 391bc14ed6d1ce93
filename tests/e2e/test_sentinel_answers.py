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
"""

import socket
import threading
import time

import pytest

from e2e_helpers import made_by, wait_for
from e2e_http import get, visits_from_body
from e2e_daemon import wait_log
from e2e_servers import sentinel_redis_section


class FakeSentinel:
    """A RESP server on 127.0.0.1 answering SENTINEL get-master-addr-by-name
    with self.answer: [host, port] (port a string, sent as is), or
    "hangup" to close the connection instead."""

    def __init__(self, answer):
        self.answer = answer
        self.questions = 0
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
        try:
            while True:
                args = self._read_command(f)
                if args is None:
                    return
                if [a.lower() for a in args[:2]] != \
                        ["sentinel", "get-master-addr-by-name"]:
                    conn.sendall(b"-ERR unknown command\r\n")
                    continue
                with self.lock:
                    self.questions += 1
                    answer = self.answer
                if answer == "hangup":
                    return
                out = b"*%d\r\n" % len(answer)
                for a in answer:
                    a = a.encode()
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
                conn.sendall(out)
        except OSError:
            pass
        finally:
            f.close()
            conn.close()

    def set_answer(self, answer):
        with self.lock:
            self.answer = answer

    def asked(self):
        with self.lock:
            return self.questions

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
