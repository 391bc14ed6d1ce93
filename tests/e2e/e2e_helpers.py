"""Helpers shared by the hitcountd end-to-end tests (stdlib and pytest
only): the daemon binary and how slow its build is, waits with deadlines,
external programs, free ports and sockets, processes seen through /proc,
log files, directories and fixtures that hand out things.

HTTP is in e2e_http.py, the Prometheus text format in e2e_metrics.py, the
daemon under test in e2e_daemon.py and the other servers (redis-server,
sentinels, nginx) in e2e_servers.py.
"""

import contextlib
import heapq
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------
# the daemon binary, and time: one factor for slow builds
# --------------------------------------------------------------------------

def daemon_binary():
    """Path of the daemon under test: $HITCOUNTD, else <srcdir>/src/hitcountd
    (tests/e2e.sh always sets HITCOUNTD to the build's binary)."""
    return os.path.abspath(os.environ.get("HITCOUNTD") or os.path.join(
        HERE, os.pardir, os.pardir, "src", "hitcountd"))


def built_with_sanitizer(path):
    """True if the binary at path was built with AddressSanitizer
    (./configure --enable-sanitizers) or ThreadSanitizer: it runs several
    times slower, keeps freed memory, and cannot run under valgrind."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__tsan_init" in data


# How much longer things take than with the normal build.  Under ASan and
# UBSan the daemon's start, a worker's start and every request cost several
# times the CPU; on a loaded 2-core machine (make distcheck in .ci/run)
# that is what the deadlines of the waits must allow for.  Only the waits
# are scaled by it: deadlines for events that do happen, never a bound
# that a test checks the daemon's own timers against.
TIME_FACTOR = float(os.environ.get("E2E_TIME_FACTOR") or
                    (3.0 if built_with_sanitizer(daemon_binary()) else 1.0))


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


# --------------------------------------------------------------------------
# external programs
# --------------------------------------------------------------------------

# root's PATH has these, not every user's (nginx is in /usr/sbin)
_SBIN = ("/usr/sbin", "/sbin")


def require_tool(name, package, env=None):
    """The path of an external program a test runs: $env when it is set,
    else name (a path, or a program looked up on PATH and in /usr/sbin,
    /sbin).  When it is missing the test fails -- it never skips: a skip
    hides what is missing, and CI counts it as a failure anyway -- with a
    message that names the Debian package to install."""
    wanted = (os.environ.get(env) if env else None) or name
    if os.sep in wanted:
        found = os.path.isfile(wanted) and os.access(wanted, os.X_OK)
        path = wanted if found else None
    else:
        search = os.pathsep.join([os.environ.get("PATH", os.defpath)] +
                                 list(_SBIN))
        path = shutil.which(wanted, path=search)
    if path is None:
        pytest.fail("%s not found: apt-get install %s%s"
                    % (wanted, package, " (or set %s)" % env if env else ""),
                    pytrace=False)
    return path


# --------------------------------------------------------------------------
# ports and sockets
# --------------------------------------------------------------------------

_ports_given = set()


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago, and that this
    process has not handed out before: ports are often taken before any
    is bound (a topology picks every node's port, then starts them), and
    the kernel may offer a closed probe's port again at once -- a
    sentinel once got its primary's port and could not start."""
    for _ in range(1000):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise AssertionError("no port left that was not handed out already")


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


def tcp_sockets(port):
    """(local port, state, inode) of the established and listening TCP
    sockets on local `port`; state is the kernel's hex code ("01"
    established, "0A" listening).  Asked of the kernel through `ss`
    (netlink, filtered by port there), not read from /proc/net/tcp: with
    the tens of thousands of TIME_WAIT sockets a wrk run leaves behind,
    one read of that table took seven seconds, longer than the waits that
    call this.  A socket listed twice while others come and go is harmless:
    the callers count inodes in a set."""
    out = subprocess.run(
        ["ss", "-Htane", "state", "established", "state", "listening",
         "( sport = :%d )" % port],
        capture_output=True, text=True, check=True).stdout
    codes = {"ESTAB": "01", "LISTEN": "0A"}
    found = []
    for line in out.splitlines():
        fields = line.split()
        ino = next((f[4:] for f in fields if f.startswith("ino:")), None)
        if not fields or fields[0] not in codes or ino is None:
            continue
        found.append((int(fields[3].rsplit(":", 1)[1]), codes[fields[0]], ino))
    return found


def socket_inodes(pid):
    """The inodes of the sockets among the descriptors of process pid."""
    inodes = set()
    fddir = "/proc/%s/fd" % pid
    for fd in os.listdir(fddir):
        try:
            link = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def client_sockets(pid, port):
    """Established TCP sockets on local `port` held by process pid (the
    connections a worker has accepted), from /proc; each counted once."""
    inodes = socket_inodes(pid)
    return len({ino for lport, state, ino in tcp_sockets(port)
                if lport == port and state == "01" and ino in inodes})


def listeners_of(port):
    """PIDs holding a listening TCP socket on 127.0.0.1:port (diagnostics)."""
    inodes = {ino for lport, state, ino in tcp_sockets(port)
              if lport == port and state == "0A"}
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if socket_inodes(pid) & inodes:
                pids.append(int(pid))
        except OSError:
            continue
    return sorted(pids)


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


# --------------------------------------------------------------------------
# files, directories and fixtures
# --------------------------------------------------------------------------

def read_log(path):
    """The text of a server's log file so far ("" before it exists)."""
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


@contextlib.contextmanager
def reachable_dir(prefix, mode):
    """A new directory with mode, removed afterwards.  Not below pytest's
    tmp_path: that is mode 0700 all the way, and a worker that dropped
    root could not reach a file in it."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, mode)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def made_by(make, clean):
    """The body of a fixture that hands out a factory (`yield from
    made_by(...)`): the factory returns make(*args, **kwargs) and keeps
    it; at teardown clean() is called on each thing it made."""
    made = []

    def factory(*args, **kwargs):
        thing = make(*args, **kwargs)
        made.append(thing)
        return thing
    yield factory
    for thing in made:
        clean(thing)


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
    require_tool("mount", "mount")
    return [require_tool("unshare", "util-linux"),
            "--mount", "--propagation", "private",
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
