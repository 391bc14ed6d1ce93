"""Starting: detached (without -D: setsid, cwd /, the parent returns 0
at once, the lock taken before the fork still holds), telling systemd
how it goes (sd_notify: READY, RELOADING, STOPPING, STATUS), and taking
the listening socket from systemd (socket activation: LISTEN_PID,
LISTEN_FDS).  The foreground start (-D) is what every other test does.
"""

import os
import signal
import socket
import subprocess

from e2e_helpers import (assert_gone, children_of, free_port, kill_pid,
                         patience, pid_alive, port_refuses, wait_for)
from e2e_http import get, serves
from e2e_daemon import wait_exit, wait_exit_after, wait_log


# --------------------------------------------------------------------------
# detached
# --------------------------------------------------------------------------

def test_detaches_without_D(daemon_factory, redis_server):
    d = daemon_factory(wait=False, args=())
    try:
        rc = d.proc.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError("hitcountd without -D did not detach")
    assert rc == 0, d.log()
    mpid = wait_for(lambda: int(open(d.pidfile).read().strip()),
                    patience(5), what="pidfile of the detached daemon")
    kids = []
    try:
        assert mpid != d.proc.pid
        assert pid_alive(mpid)
        assert os.getsid(mpid) == mpid, "detached daemon did not setsid()"
        assert os.readlink("/proc/%d/cwd" % mpid) == "/"
        wait_for(lambda: get(d.port, "/healthz", timeout=1).status == 200,
                 patience(5), what="/healthz of the detached daemon")
        assert get(d.port).body == b"Page visited 1 times"
        kids = wait_for(lambda: len(children_of(mpid)) == 2 and
                        children_of(mpid), patience(5), what="2 workers")
        os.kill(mpid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(mpid), patience(10),
                 what="detached daemon to exit on SIGTERM")
        wait_for(lambda: not any(pid_alive(k) for k in kids), 3,
                 what="workers to exit")
    finally:
        for p in [mpid] + kids:
            if pid_alive(p):
                kill_pid(p)


def test_detached_with_relative_config_path_reloads(daemon_factory,
                                                    redis_server):
    """Detached, the daemon runs in /: a relative -f (from the directory it
    was started in) must still name the same file when a HUP reads it
    again, and when a USR2 starts the binary with the same arguments."""
    # bash execs the daemon (same pid) with -f relative to its workdir
    d = daemon_factory(wait=False, workers=1, prefix=[
        "bash", "-c", 'exec "$0" -f hitcountd.conf'])
    rc, _ = wait_exit(d, 5)
    assert rc == 0, d.log()
    mpid = wait_for(lambda: int(open(d.pidfile).read().strip()),
                    patience(5), what="pidfile of the detached daemon")
    kids = []
    try:
        assert os.readlink("/proc/%d/cwd" % mpid) == "/"
        kids = wait_for(lambda: len(children_of(mpid)) == 1 and
                        children_of(mpid), patience(5), what="1 worker")
        d.reconfigure(workers=2)
        os.kill(mpid, signal.SIGHUP)
        kids = wait_for(lambda: len(children_of(mpid)) == 2 and
                        not set(kids) & set(children_of(mpid)) and
                        children_of(mpid), patience(10),
                        what="the reload's 2 workers")
        os.kill(mpid, signal.SIGUSR2)
        newpid = wait_for(
            lambda: int(open(d.pidfile).read().strip() or 0) != mpid and
            int(open(d.pidfile).read().strip() or 0), patience(10),
            what="a new master in the pidfile")
        wait_for(lambda: not pid_alive(mpid), patience(10),
                 what="the old master to hand over and exit")
        mpid = newpid
        kids = wait_for(lambda: len(children_of(mpid)) == 2 and
                        children_of(mpid), patience(5),
                        what="the new master's 2 workers")
        serves(d.port)
    finally:
        for p in [mpid] + kids:
            if pid_alive(p):
                os.kill(p, signal.SIGTERM)
        wait_for(lambda: not any(pid_alive(p) for p in [mpid] + kids),
                 patience(10), what="the detached daemon to exit")


def test_detached_daemon_keeps_lock_and_removes_pidfile(daemon_factory,
                                                        redis_server):
    """Without -D: the parent returns 0 promptly; the lock taken before the
    fork still refuses a second instance; the pidfile goes on exit."""
    d = daemon_factory(wait=False, args=(), workers=2)
    rc, elapsed = wait_exit(d, 5)
    assert rc == 0, d.log()
    assert elapsed < 2, "the parent took %.1f s to return" % elapsed
    mpid = wait_for(lambda: int(open(d.pidfile).read().strip()),
                    patience(5), what="pidfile of the detached daemon")
    kids = []
    try:
        wait_for(lambda: get(d.port, "/healthz", timeout=1).status == 200,
                 patience(5), what="/healthz of the detached daemon")
        kids = wait_for(lambda: len(children_of(mpid)) == 2 and
                        children_of(mpid), patience(5), what="2 workers")
        d2 = daemon_factory(wait=False, workers=1, pidfile=d.pidfile,
                            listen=["127.0.0.1:%d" % free_port()])
        rc2, _ = wait_exit(d2, 5)
        assert rc2 == 1, d2.log()
        assert "another hitcountd is running (pid %d)" % mpid in d2.log(), \
            d2.log()
        os.kill(mpid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(mpid), patience(10),
                 what="detached daemon to exit on SIGTERM")
        assert_gone(kids, 2)
        assert not os.path.exists(d.pidfile), "pidfile left by the daemon"
    finally:
        for p in [mpid] + kids:
            if pid_alive(p):
                kill_pid(p)


# --------------------------------------------------------------------------
# sd_notify
# --------------------------------------------------------------------------

class NotifySocket:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []

    def next(self, timeout=5):
        """The next message (deadline: patience(timeout))."""
        timeout = patience(timeout)
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError("no sd_notify message within %.1f s "
                                 "(so far: %r)" % (timeout, self.messages))
        msg = data.decode()
        self.messages.append(msg)
        return msg

    def pending(self, wait=0.3):
        """Messages that arrive within wait seconds."""
        out = []
        self.sock.settimeout(wait)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except socket.timeout:
            pass
        self.messages.extend(out)
        return out

    def close(self):
        self.sock.close()


def test_sd_notify(daemon_factory, redis_server, tmp_path):
    path = str(tmp_path / "notify.sock")
    ns = NotifySocket(path)
    try:
        d = daemon_factory(wait=False, workers=2,
                           env={"NOTIFY_SOCKET": path})
        msg = ns.next(10)
        assert msg == "READY=1\nMAINPID=%d" % d.pid, msg
        # READY means serving
        r = get(d.port, timeout=5)
        assert r.status == 200, r
        assert ns.next() == "STATUS=2 workers serving"

        os.kill(d.pid, signal.SIGHUP)
        assert ns.next() == "RELOADING=1"
        assert ns.next(10) == "READY=1"
        wait_log(d, "reload succeeded")
        # systemctl status shows how the last reload went
        assert ns.next() == ("STATUS=2 workers serving; "
                             "reload succeeded (generation 1)")
        serves(d.port)

        # a failed reload also ends with READY=1, and says why
        good = d.config_text()
        d.write_config_text(good + "bogus = 1\n")
        os.kill(d.pid, signal.SIGHUP)
        assert ns.next() == "RELOADING=1"
        assert ns.next() == "READY=1"
        status = ns.next()
        assert status.startswith("STATUS=2 workers serving; reload failed: "), status
        assert "bogus" in status, status
        wait_log(d, "reload failed")
        d.write_config_text(good)

        kids = d.workers()
        os.kill(d.pid, signal.SIGTERM)
        assert ns.next() == "STOPPING=1"
        rc, _ = wait_exit(d, 10)
        assert rc == 0
        assert_gone(kids, 1)
        assert ns.pending() == [], ns.messages
    finally:
        ns.close()


def test_no_notify_socket_no_problem(daemon_factory, redis_server):
    """NOTIFY_SOCKET naming nothing: the daemon serves and stops normally."""
    d = daemon_factory(workers=1, env={"NOTIFY_SOCKET": "/nonexistent/x"})
    serves(d.port)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    serves(d.port)


# --------------------------------------------------------------------------
# socket activation
# --------------------------------------------------------------------------

def activated_daemon(daemon_factory, **overrides):
    """Start hitcountd the way systemd does for socket activation: a
    listening socket as fd 3, LISTEN_PID = the daemon's own pid."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    act_port = lsock.getsockname()[1]
    fd = lsock.fileno()
    # the wrapper execs hitcountd, so LISTEN_PID (its own pid) is the daemon's
    wrapper = ("import os, sys\n"
               "fd = int(sys.argv[1])\n"
               "if fd != 3:\n"
               "    os.dup2(fd, 3)\n"
               "    os.close(fd)\n"
               "os.environ['LISTEN_PID'] = str(os.getpid())\n"
               "os.environ['LISTEN_FDS'] = '1'\n"
               "os.execv(sys.argv[2], sys.argv[2:])\n")
    conf_port = free_port()
    try:
        d = daemon_factory(wait=False,
                           prefix=["/usr/bin/python3", "-c", wrapper,
                                   str(fd)],
                           pass_fds=(fd,),
                           listen=["127.0.0.1:%d" % conf_port], **overrides)
    finally:
        lsock.close()       # only the daemon holds the socket now
    d.port = act_port
    d.wait_healthy()
    return d, act_port, conf_port


def test_socket_activation(daemon_factory, redis_server):
    d, act_port, conf_port = activated_daemon(daemon_factory, workers=2)
    kids = d.wait_workers(2)
    serves(act_port)
    assert port_refuses(conf_port), \
        "the configured listen address was bound despite socket activation"
    assert "socket activation" in d.log()
    assert redis_server.visits() == 3
    # a reload keeps serving the inherited socket
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    wait_for(lambda: len(d.workers()) == 2 and
             not set(d.workers()) & set(kids), patience(10),
             what="generation 2")
    serves(act_port)
    assert port_refuses(conf_port)
    kids = d.workers()
    rc, _ = wait_exit_after(d, signal.SIGTERM, 10)
    assert rc == 0
    assert port_refuses(act_port)


def test_listen_pid_of_another_process_is_ignored(daemon_factory,
                                                  redis_server):
    d = daemon_factory(workers=1, env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    serves(d.port)
    assert "socket activation" not in d.log()
