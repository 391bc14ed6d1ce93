"""procs.py - what the benchmark reads about processes and Redis.

Owns the process bookkeeping of bench.py (every process it starts is
recorded here and stopped by PID), the /proc readings (CPU ticks, PSS,
sockets, children), Redis's INFO, and the wrk and perf wrappers.  Called by
peers.py (starting servers) and bench.py (the modes); calls nothing of
theirs.
"""

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(cmd, log, env=None, cwd=None):
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                         env=env, cwd=cwd)
    procs.append(p)
    return p


def stop(p):
    """Stop one process started by start(), and forget it."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    procs.remove(p)


def stop_all():
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + 10
    for p in reversed(procs):
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_port(port, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("bench: %s did not come up on port %d" % (what, port))


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(d))
    return kids


def tree(pid):
    return [pid] + children(pid)


def tasks(pids):
    """Every thread of the given processes (perf and strace count per
    thread)."""
    out = []
    for pid in pids:
        try:
            out += [int(t) for t in os.listdir("/proc/%d/task" % pid)]
        except OSError:
            pass
    return out


def pss_kib(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total


def sockets_of(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def cpu_ticks(pid):
    """utime + stime of a process, all its threads, in clock ticks."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


def raise_nofile(n):
    """Raise this process's descriptor limits (inherited by everything it
    starts) to at least n; root may raise the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, n)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def http_get(port, path="/", src=None):
    s = socket.create_connection(("127.0.0.1", port), 5,
                                 source_address=src)
    s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
               % path).encode())
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def redis_cli(rport, *args):
    return subprocess.run(["redis-cli", "-p", str(rport)] + list(args),
                          capture_output=True, text=True,
                          check=True).stdout.strip()


def visits(rport):
    v = redis_cli(rport, "GET", "visits")
    return int(v) if v else 0


def redis_stats(rport, rpid):
    """Redis's command calls by name (our own INFO and GET left out), the
    connections it has accepted, and its CPU ticks."""
    info = redis_cli(rport, "INFO", "all")
    calls = {}
    conns = 0
    for line in info.splitlines():
        m = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
        if m and m.group(1) not in ("info", "get"):
            calls[m.group(1)] = int(m.group(2))
        if line.startswith("total_connections_received:"):
            conns = int(line.split(":")[1])
    return {"calls": calls, "conns": conns, "ticks": cpu_ticks(rpid)}


def redis_delta(a, b):
    """Commands, connections and CPU ticks of Redis between two
    redis_stats()."""
    calls = {k: v - a["calls"].get(k, 0) for k, v in b["calls"].items()}
    calls = {k: v for k, v in calls.items() if v}
    return {"calls": calls, "commands": sum(calls.values()),
            "conns": b["conns"] - a["conns"], "ticks": b["ticks"] - a["ticks"]}


def wrk_cmd(port, conns, close, seconds, path="/", threads=2):
    cmd = ["wrk", "-t%d" % min(threads, conns), "-c%d" % conns,
           "-d%ds" % seconds, "--timeout", "5s",
           "-s", os.path.join(HERE, "report.lua")]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append("http://127.0.0.1:%d%s" % (port, path))
    return cmd


def wrk_result(out):
    m = re.search(r"^RESULT (.*)$", out, re.M)
    if not m:
        sys.exit("bench: wrk gave no result:\n" + out)
    r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def wrk(port, conns, close, seconds, path="/"):
    """One wrk run; its result, with wrk's own CPU time in ticks."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(wrk_cmd(port, conns, close, seconds, path),
                         capture_output=True, text=True).stdout
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = wrk_result(out)
    r["wrk_ticks"] = round((ru1.ru_utime + ru1.ru_stime - ru0.ru_utime -
                            ru0.ru_stime) * CLK_TCK)
    return r


# The system calls a server, Redis or a peer's runtime may make per
# request or connection, counted one by one; raw_syscalls:sys_enter counts
# all of them, and what these miss shows as "other".  A short list, since
# perf attaches each event to each thread, and all 360 take seconds.
SYSCALLS = ("accept accept4 close shutdown epoll_wait epoll_pwait epoll_ctl "
            "poll select read write readv writev recvfrom sendto recvmsg "
            "sendmsg setsockopt getsockopt getsockname getpeername ioctl "
            "fcntl futex socket connect openat newfstatat brk mmap munmap "
            "madvise mprotect getpid gettid clock_gettime gettimeofday "
            "nanosleep clock_nanosleep sched_yield rt_sigprocmask "
            "sendfile64").split()
TRACEFS = "/sys/kernel/tracing/events/syscalls"


def perf_syscalls_start(pids):
    """Count the system calls of the given threads from now on (perf's
    syscall tracepoints: counted in the kernel, nothing slowed much).
    The caller waits PERF_ATTACH seconds before the load starts."""
    events = ",".join(["raw_syscalls:sys_enter"] +
                      ["syscalls:sys_enter_" + c for c in SYSCALLS
                       if os.path.isdir("%s/sys_enter_%s" % (TRACEFS, c))])
    return subprocess.Popen(["perf", "stat", "-x,", "-e", events,
                             "-t", ",".join(map(str, pids))],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


PERF_ATTACH = 1.0


def perf_syscalls_stop(p):
    """{system call: count} since perf_syscalls_start()."""
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=30)[1]
    counts = {}
    total = 0
    for line in err.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[0].isdigit():
            if f[2] == "raw_syscalls:sys_enter":
                total = int(f[0])
            elif int(f[0]) > 0:
                counts[f[2].replace("syscalls:sys_enter_", "")] = int(f[0])
    if total > sum(counts.values()):
        counts["other"] = total - sum(counts.values())
    return counts
