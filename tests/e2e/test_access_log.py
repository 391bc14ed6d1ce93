"""The access log: the combined log format with hostile values escaped,
to a file or to stderr, flushed within about a second, reopened on USR1
(logrotate), owned by a root master and writable by the workers' group.
"""

import datetime
import fcntl
import os
import pwd
import re
import signal
import subprocess
import threading
import time

import pytest

from e2e_helpers import patience, reachable_dir, require_tool, wait_for
from e2e_http import (WRK, RawClient, garbage, get, http_request,
                      parse_wrk)
from e2e_daemon import wait_all_workers_ready


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except FileNotFoundError:
        return ""


# Combined log format, as written by nginx/Apache:
#   client - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 20 "ref" "ua"
_QUOTED = r'"((?:[^"\\]|\\.)*)"'


ACCESS_RE = re.compile(
    r'^(?P<client>\S+) - - \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:'
    r'\d{2} [+-]\d{4})\] ' + _QUOTED.replace("(", "(?P<request>", 1) +
    r' (?P<status>\d{3}) (?P<bytes>\d+) ' +
    _QUOTED.replace("(", "(?P<referer>", 1) + " " +
    _QUOTED.replace("(", "(?P<ua>", 1) + r'$')


def parse_access(lines):
    out = []
    for line in lines:
        m = ACCESS_RE.match(line)
        assert m, "access log line does not parse: %r" % (line,)
        t = datetime.datetime.strptime(m.group("time"), "%d/%b/%Y:%H:%M:%S %z")
        now = datetime.datetime.now(datetime.timezone.utc)
        assert abs((now - t).total_seconds()) < 120, \
            "time %r is not now (%s)" % (m.group("time"), now)
        out.append(m)
    return out


def unescape(s):
    """Undo the access log's escaping (\\xHH, or a backslash before a
    character); latin-1 for the bytes."""
    return re.sub(r"\\(x[0-9a-fA-F]{2}|.)",
                  lambda m: chr(int(m.group(1)[1:], 16))
                  if len(m.group(1)) == 3 else m.group(1), s)


def access_lines(text):
    return [l for l in text.split("\n") if ACCESS_RE.match(l) or
            l.startswith("127.0.0.1 ")]


@pytest.fixture
def log_dir():
    """A directory the workers (user nobody) can reach: pytest's tmp_path
    is mode 0700, which a worker that dropped root cannot search."""
    with reachable_dir("hitcountd-access-", 0o755) as path:
        yield path


def assert_access_log_for_workers(path):
    """Started as root, the master keeps the file and gives it to the
    workers' group (nobody's), writable: it can open it again without
    CAP_DAC_OVERRIDE, and the workers can reopen it after dropping root."""
    st = os.stat(path)
    nobody = pwd.getpwnam("nobody")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == \
        (0, nobody.pw_gid, 0o660), \
        "access log owned by %d:%d mode %o" % (st.st_uid, st.st_gid,
                                              st.st_mode & 0o777)


def wait_access_lines(read, n, timeout=2.5):
    """Wait until read() holds at least n access-log lines; return them."""
    def enough():
        lines = access_lines(read())
        return len(lines) >= n and lines
    try:
        return wait_for(enough, patience(timeout),
                        what="%d access log lines" % n)
    except AssertionError as exc:
        raise AssertionError("%s; have:\n%s" % (exc, read()))


def test_access_log_file_and_reopen(daemon_factory, redis_server, log_dir):
    path = os.path.join(log_dir, "access.log")
    d = daemon_factory(workers=2, access_log=path)
    wait_all_workers_ready(d, 2)
    if os.geteuid() == 0:
        assert_access_log_for_workers(path)

    ua = "Mozilla/5.0 (e2e; observability)"
    ref = "http://example.test/from?a=1"
    sent = []

    def req(method, path_, headers):
        r = http_request(d.port, method, path_, headers=headers, timeout=5)
        sent.append((method, path_, r.status,
                     0 if method == "HEAD" else len(r.body),
                     headers.get("Referer", "-"),
                     headers.get("User-Agent", "-")))
        return r

    t_start = time.monotonic()
    assert req("GET", "/", {"User-Agent": ua, "Referer": ref}).status == 200
    assert req("GET", "/", {"User-Agent": ua}).status == 200
    assert req("HEAD", "/", {"User-Agent": ua, "Referer": ref}).status == 200
    assert req("GET", "/nope", {"User-Agent": ua}).status == 404
    assert req("POST", "/", {"User-Agent": ua}).status == 405
    assert req("GET", "/healthz", {"User-Agent": ua}).status == 200

    # hostile values through the raw client (bytes as sent, latin-1)
    hostile_ua = 'evil" "agent\\ \xff'
    hostile_ref = 'x" 200 0 "y'
    long_ua = "L" * 3000
    raw = {}
    with RawClient(d.port, timeout=5) as c:
        raw["evil"] = c.request("GET", "/", headers={
            "User-Agent": hostile_ua, "Referer": hostile_ref}).status
    with RawClient(d.port, timeout=5) as c:
        raw["quote-path"] = c.request("GET", '/a"b', headers={
            "User-Agent": "quote-path"}).status
    with RawClient(d.port, timeout=5) as c:
        raw["long"] = c.request("GET", "/", headers={
            "User-Agent": long_ua}).status
    raw["garbage"] = garbage(d.port).status
    assert raw == {"evil": 200, "quote-path": 404, "long": 200,
                   "garbage": 400}, raw

    # the fixture's /healthz probe (one 200) plus ours
    n_total = 1 + len(sent) + len(raw)
    lines = wait_access_lines(lambda: read_text(path), n_total)
    flushed_after = time.monotonic() - t_start
    assert len(lines) == n_total, \
        "%d lines for %d requests:\n%s" % (len(lines), n_total,
                                           "\n".join(lines))
    parsed = parse_access(lines)
    for m in parsed:
        assert m.group("client") == "127.0.0.1", m.group(0)

    def take(pred):
        hits = [m for m in parsed if pred(m)]
        assert len(hits) == 1, (hits, lines)
        parsed.remove(hits[0])
        return hits[0]

    # the fixture's probe: http.client sends no User-Agent
    probe = take(lambda m: m.group("request") == "GET /healthz HTTP/1.1"
                 and m.group("ua") == "-")
    assert probe.group("status") == "200"
    ev = take(lambda m: unescape(m.group("ua")).startswith("evil"))
    assert unescape(ev.group("ua")) == hostile_ua, ev.group(0)
    assert unescape(ev.group("referer")) == hostile_ref, ev.group(0)
    assert ev.group("request") == "GET / HTTP/1.1" and \
        ev.group("status") == "200", ev.group(0)
    qp = take(lambda m: m.group("ua") == "quote-path")
    assert unescape(qp.group("request")) == 'GET /a"b HTTP/1.1', qp.group(0)
    assert qp.group("status") == "404", qp.group(0)
    lg = take(lambda m: m.group("ua").startswith("LLL"))
    # cut to its limit, with a marker that says so
    assert lg.group("ua").endswith("...") and \
        long_ua.startswith(lg.group("ua")[:-3]), lg.group(0)[-200:]
    assert lg.group("status") == "200"
    bad = take(lambda m: m.group("status") == "400")
    assert bad.group("ua") == "-", bad.group(0)

    got = sorted((m.group("request"), int(m.group("status")),
                  int(m.group("bytes")), m.group("referer"), m.group("ua"))
                 for m in parsed)
    want = sorted(("%s %s HTTP/1.1" % (meth, p), s, b, rf, u)
                  for meth, p, s, b, rf, u in sent)
    assert got == want, "access log:\n%s\nexpected:\n%r" % (
        "\n".join(lines), want)
    assert flushed_after <= 2.5

    # logrotate: rename, USR1, new requests go to a new file
    rotated = path + ".1"
    os.rename(path, rotated)
    old_content = read_text(rotated)
    workers = d.workers()
    os.kill(d.pid, signal.SIGUSR1)

    def open_files(w):
        targets = []
        for fd in os.listdir("/proc/%d/fd" % w):
            try:
                targets.append(os.readlink("/proc/%d/fd/%s" % (w, fd)))
            except OSError:
                pass
        return targets

    def reopened():
        if not os.path.exists(path):
            return False
        for w in workers:
            targets = open_files(w)
            if path not in targets or rotated in targets:
                return False
        return True
    try:
        wait_for(reopened, patience(3),
                 what="the workers to reopen %s" % path)
    except AssertionError as exc:
        raise AssertionError("%s; log:\n%s" % (exc, d.log()[-3000:]))
    assert d.workers() == workers, "USR1 replaced the workers"
    if os.geteuid() == 0:
        assert_access_log_for_workers(path)
    for i in range(4):
        assert get(d.port, "/", headers={"User-Agent": "after-%d" % i},
                   timeout=5).status == 200
    new_lines = wait_access_lines(lambda: read_text(path), 4)
    assert sorted(m.group("ua") for m in parse_access(new_lines)) == \
        ["after-%d" % i for i in range(4)], new_lines
    # the workers flushed into the new file, and none holds the rotated
    # one open: no late flush can reach it any more
    holders = [w for w in d.workers() if rotated in open_files(w)]
    assert not holders, "workers %r still hold %s" % (holders, rotated)
    assert read_text(rotated) == old_content, \
        "the rotated file got more lines:\n%s" % read_text(rotated)
    assert len(access_lines(read_text(path))) == 4


def test_access_log_stderr(daemon_factory, redis_server):
    d = daemon_factory(workers=2, access_log="stderr")
    wait_all_workers_ready(d, 2)
    sizes = []
    for i in range(3):
        r = get(d.port, "/", headers={"User-Agent": "stderr-%d" % i,
                                      "Referer": "http://r/"}, timeout=5)
        assert r.status == 200
        sizes.append(len(r.body))
    assert http_request(d.port, "HEAD", "/", headers={"User-Agent": "h"},
                        timeout=5).status == 200

    def ours():
        ms = [ACCESS_RE.match(l) for l in d.log().splitlines()]
        return [m for m in ms if m and (m.group("ua").startswith("stderr-")
                                        or m.group("ua") == "h")]
    got = wait_for(lambda: len(ours()) >= 4 and ours(), patience(2.5),
                   what="4 access log lines on stderr")
    assert len(got) == 4, [m.group(0) for m in got]
    parse_access([m.group(0) for m in got])
    for m in got:
        if m.group("ua") == "h":
            assert m.group("request") == "HEAD / HTTP/1.1"
            assert m.group("bytes") == "0" and m.group("referer") == "-"
        else:
            assert m.group("request") == "GET / HTTP/1.1"
            assert m.group("status") == "200"
            assert m.group("referer") == "http://r/"
            assert int(m.group("bytes")) == sizes[int(m.group("ua")[7:])]


class PipeReader:
    """The read end of a pipe the daemon's stderr is redirected to (as
    Docker does), copied to the daemon's log file once attach() names it,
    so that d.log() and the fixture's sanitizer check still see it.  The
    pipe holds one page, so that a write longer than PIPE_BUF is split for
    sure when the pipe fills; whole lines then only arrive if every write
    is a whole line of at most PIPE_BUF bytes."""

    def __init__(self):
        self.rfd, self.wfd = os.pipe()
        fcntl.fcntl(self.wfd, fcntl.F_SETPIPE_SZ, 4096)
        self.lock = threading.Lock()
        self.out = None
        self.data = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                break
            with self.lock:
                self.data.append(chunk)
                if self.out is not None:
                    self.out.write(chunk)
                    self.out.flush()
        os.close(self.rfd)
        with self.lock:
            if self.out is not None:
                self.out.close()

    def prefix(self):
        """argv before the daemon: bash (dash takes no fd above 9) execs it
        (same pid) with stderr on the pipe."""
        return ["bash", "-c", 'exec "$0" "$@" 2>&%d' % self.wfd]

    def attach(self, logpath):
        """Close our write end (the daemon holds the only one now) and copy
        what was read, and all that follows, to logpath."""
        os.close(self.wfd)
        with self.lock:
            self.out = open(logpath, "ab")
            self.out.write(b"".join(self.data))
            self.out.flush()

    def text(self, timeout):
        """Everything read, once every writer is gone."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the pipe is still open"
        return b"".join(self.data).decode("latin-1")


def test_access_log_lines_whole_through_a_pipe(daemon_factory, redis_server):
    """Several workers, user agents longer than the field's limit, stderr a
    pipe: every line arrives whole, and a cut field says so."""
    require_tool(WRK, "wrk")
    pipe = PipeReader()
    d = daemon_factory(wait=False, workers=3, access_log="stderr",
                       prefix=pipe.prefix(), pass_fds=(pipe.wfd,))
    pipe.attach(d.logpath)
    d.wait_healthy()
    wait_all_workers_ready(d, 3)
    agent = "U" * 1500
    wrk = subprocess.run(
        [WRK, "-t2", "-c12", "-d3s", "-H", "User-Agent: " + agent,
         "http://127.0.0.1:%d/" % d.port],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    print(wrk.stdout)
    served = parse_wrk(wrk.stdout)["requests"]
    assert d.stop() == 0
    text = pipe.text(10)
    assert text.endswith("\n"), text[-300:]
    broken, unmarked, ours = [], [], 0
    for line in text[:-1].split("\n"):
        m = ACCESS_RE.match(line)
        if m is None:
            if not re.match(r"^hitcountd\[\d+\]: \w+: [^\n]*$", line):
                broken.append(line)
            continue
        ua = m.group("ua")
        if ua.startswith("U"):
            ours += 1
            if not (ua.endswith("...") and agent.startswith(ua[:-3]) and
                    len(ua) < len(agent)):
                unmarked.append(ua[-40:])
    assert not broken, "%d broken lines of %d, e.g. %r" % (
        len(broken), text.count("\n"), [l[:120] for l in broken[:3]])
    assert not unmarked, "%d cut user agents without their marker, e.g. " \
        "one ending %r" % (len(unmarked), unmarked[0])
    # wrk counts completed answers; one per connection may be cut at its end
    assert served <= ours <= served + 12, (served, ours)
