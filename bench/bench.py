#!/usr/bin/python3
"""bench.py - hitcountd measured against its ceiling, the servers that do
the same job, and its predecessor.

Starts, on loopback ports of its own, a private redis-server and, each
with two workers against that Redis (peers.py): hitcountd; nginx answering
a constant (the ceiling: an HTTP server doing no work); nginx + Lua
(resty.redis `INCR visits` over a pooled connection); webdis
(`GET /INCR/visits`); and the seed's Flask app under gunicorn.  Everything
it starts is stopped by PID.  The modes (BENCH_MODES, comma-separated,
default all of them, in this order):

  peers    every workload (keep-alive at 1, 50 and 1,000 connections, a new
           connection per request at 50) in rounds that alternate the
           servers (gunicorn, far below, once); each figure is the median
           of the rounds with its lowest and highest.  After every round of
           a server that counts, Redis must have grown by the number of 200
           answers (plus at most one request per connection that wrk
           leaves in flight when it stops), and one more answer must carry
           the count Redis then holds plus one (webdis: the number in its
           JSON).  Each round also reads Redis's INFO commandstats (Redis
           commands per visit) and the CPU ticks of every process in
           /proc (CPU per request: the server's workers and master, Redis,
           wrk).  Then the goals of issue 22 (hitcountd >= 2x the best
           same-job peer with keep-alive at 50 and 1,000, >= 1.5x with a
           new connection per request at 50; >= 0.95x nginx at all three)
           and the older targets.
  profile  system calls per request (= per connection with a new
           connection per request) of the servers' workers and of Redis,
           counted by perf's syscall tracepoints, at the three goal
           workloads, for hitcountd, nginx and the same-job peers.
  active   BENCH_ACTIVE_CONNS (10,000) keep-alive connections, all active,
           against hitcountd and nginx in alternating rounds: requests/s,
           p99, and PSS per connection (during the run, over before it).
  idle     BENCH_IDLE_CONNS (50,000) idle keep-alive connections, from
           several source addresses 127.0.0.x, to hitcountd and to nginx:
           PSS per connection, and the latency of 50 new clients meanwhile.
           Held by child processes of 10,000 connections each, and served
           by as many workers as the hard RLIMIT_NOFILE requires (without
           CAP_SYS_RESOURCE it cannot be raised: 20,000 gives 6 workers,
           twice what an even split needs).
  redis    what one Redis carries: BENCH_INSTANCES (4) hitcountd instances
           on the one Redis, loaded at once by a wrk each, the counter
           checked; with the peers rounds' figures, visits per Redis
           command and Redis CPU per visit, and redis-benchmark INCR.

The limits these need are raised for the run only: this process's and its
children's RLIMIT_NOFILE, net.core.somaxconn and net.ipv4.tcp_max_syn_backlog
(restored at the end), and the servers' own keys (hitcountd max_connections
and backlog, nginx worker_connections, Redis maxclients) in their bench
configurations.  Prints the report and writes OUTDIR/latest.md and a plot.

Usage: bench.py HITCOUNTD [OUTDIR]
Environment:
  BENCH_MODES=peers,profile,active,idle,redis
  BENCH_SECONDS=5      seconds per measured run (after a 1 s warm-up)
  BENCH_ROUNDS=3       alternating rounds of every workload
  BENCH_PROFILE_SECONDS=3
  BENCH_ACTIVE_CONNS=10000
  BENCH_ACTIVE_SECONDS=10 seconds of each active run (opening 10,000
                       connections takes a while of it)
  BENCH_IDLE_CONNS=50000
  BENCH_INSTANCES=4
  BENCH_LUA_ROOT=DIR   where bench/run unpacked nginx's Lua stack (without
                       it, no nginx+lua peer)
  BENCH_BASELINE=BIN   another hitcountd binary, measured in the same
                       rounds as a further peer ("baseline")
"""

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import peers as P
import report
from procs import (CLK_TCK, PERF_ATTACH, cpu_ticks, http_get,
                   perf_syscalls_start, perf_syscalls_stop, pss_kib,
                   raise_nofile, redis_delta,
                   redis_stats, sockets_of, stop, stop_all, tasks, tree,
                   visits, wrk, wrk_cmd, wrk_result)

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PROFILE_SECONDS = int(os.environ.get("BENCH_PROFILE_SECONDS", "3"))
ACTIVE_SECONDS = int(os.environ.get("BENCH_ACTIVE_SECONDS", "10"))
ACTIVE_CONNS = int(os.environ.get("BENCH_ACTIVE_CONNS", "10000"))
IDLE_CONNS = int(os.environ.get("BENCH_IDLE_CONNS", "50000"))
IDLE_PER_PROC = 10000
INSTANCES = int(os.environ.get("BENCH_INSTANCES", "4"))
MODES = os.environ.get("BENCH_MODES",
                       "peers,profile,active,idle,redis").split(",")
WARMUP = 1
KEEPALIVE = [1, 50, 1000]
# (connections, a new connection per request)
WORKLOADS = [(c, False) for c in KEEPALIVE] + [(50, True)]
GOAL_WORKLOADS = [(50, False), (1000, False), (50, True)]
SAME_JOB = ("nginx+lua", "webdis")
SYSCTLS = {"net.core.somaxconn": "65535",
           "net.ipv4.tcp_max_syn_backlog": "65535"}


def check_count(peer, r, conns, close, v0, rport):
    """The counter check of one run: Redis grew by the 200 answers (plus
    what wrk left in flight), and a further answer carries Redis's count
    plus one.  Called once the answers in flight at the end have landed."""
    v1 = visits(rport)
    grew = v1 - v0
    ok200 = r["requests"] - r["non2xx"]
    # wrk stops with up to one request per connection in flight: counted
    # by Redis, not by wrk.
    good = ok200 <= grew <= ok200 + conns
    data = http_get(peer["port"], peer["path"])
    m = re.search(peer["answer"].encode(), data)
    answered = int(m.group(1)) if m else None
    return {"ok200": ok200, "grew": grew, "answered": answered,
            "expected": v1 + 1, "good": good and answered == v1 + 1}


def measure(peer, conns, close, rport, rpid, seconds=None):
    """One warm-up and one measured wrk run of a workload against a peer:
    the wrk result, CPU ticks of each process, Redis's work, and for a
    peer that counts, the counter check."""
    seconds = seconds or SECONDS
    wrk(peer["port"], conns, close, WARMUP, peer["path"])
    time.sleep(0.5)     # the warm-up's last requests land first
    pids = tree(peer["proc"].pid)
    v0 = visits(rport) if peer["counts"] else 0
    rs0 = redis_stats(rport, rpid)
    cpu0 = [cpu_ticks(p) for p in pids]
    r = wrk(peer["port"], conns, close, seconds, peer["path"])
    cpu1 = [cpu_ticks(p) for p in pids]
    ticks = [b - a for a, b in zip(cpu0, cpu1)]
    r["master_ticks"] = ticks[0] if len(pids) > 1 else 0
    r["cpu_split"] = ticks[1:] if len(pids) > 1 else ticks
    time.sleep(0.5)     # let answers in flight at the end land
    # Redis's work before the check's own requests.
    r["redis"] = redis_delta(rs0, redis_stats(rport, rpid))
    r["check"] = None
    if peer["counts"]:
        r["check"] = check_count(peer, r, conns, close, v0, rport)
    r["mem_kib"] = pss_kib(tree(peer["proc"].pid))
    print("%-15s %-10s c=%-5d %10.0f req/s  p50 %6.2f ms  p99 %7.2f ms"
          "  errors %d non-2xx %d%s" % (
              peer["name"], "close" if close else "keep-alive", conns,
              r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000, r["errors"],
              r["non2xx"], "" if r["check"] is None else
              "  counter %s" % ("ok" if r["check"]["good"] else "WRONG")),
          flush=True)
    return r


def mode_peers(peers, rport, rpid):
    """Every workload, ROUNDS times, the peers in alternating order;
    gunicorn+flask once.  Returns {(peer, conns, close): [run, ...]}."""
    runs = {}
    fast = [p for p in peers if p["name"] != "gunicorn+flask"]
    slow = [p for p in peers if p["name"] == "gunicorn+flask"]
    for i in range(ROUNDS):
        print("round %d of %d" % (i + 1, ROUNDS), flush=True)
        for conns, close in WORKLOADS:
            k = i % len(fast)
            order = fast[k:] + fast[:k]
            if i % 2:
                order = order[::-1]
            if i == 0 and conns != 1000:    # sync workers: 1000 time out
                order = order + slow
            for peer in order:
                runs.setdefault((peer["name"], conns, close), []).append(
                    measure(peer, conns, close, rport, rpid))
    return runs


def mode_profile(peers, rport, rpid):
    """{(peer, conns, close): {"requests", "server": {call: n},
    "redis": {call: n}}}: system calls of the workers and of Redis over a
    wrk run."""
    out = {}
    redis_tids = tasks([rpid])
    for peer in peers:
        if peer["name"] in ("gunicorn+flask", "baseline"):
            continue
        for conns, close in GOAL_WORKLOADS:
            wrk(peer["port"], conns, close, WARMUP, peer["path"])
            ps = perf_syscalls_start(tasks(peer["workers"]()))
            pr = perf_syscalls_start(redis_tids)
            time.sleep(PERF_ATTACH)
            r = wrk(peer["port"], conns, close, PROFILE_SECONDS,
                    peer["path"])
            time.sleep(0.5)
            out[(peer["name"], conns, close)] = {
                "requests": r["requests"], "server": perf_syscalls_stop(ps),
                "redis": perf_syscalls_stop(pr)}
            print("profile %s c=%d %s: %d requests" % (
                peer["name"], conns, "close" if close else "keep-alive",
                r["requests"]), flush=True)
    return out


def mode_active(two, rport):
    """ACTIVE_CONNS keep-alive connections, all active, against a fresh
    hitcountd and nginx alternating; PSS before the first run, and in the
    middle of each run."""
    runs = {}
    fresh = {p["name"]: pss_kib(tree(p["proc"].pid)) for p in two}
    for i in range(ROUNDS):
        for peer in (two if i % 2 == 0 else two[::-1]):
            wrk(peer["port"], ACTIVE_CONNS, False, 2, peer["path"])
            time.sleep(1)
            pids = tree(peer["proc"].pid)
            v0 = visits(rport)
            w = subprocess.Popen(wrk_cmd(peer["port"], ACTIVE_CONNS, False,
                                         ACTIVE_SECONDS, peer["path"]),
                                 stdout=subprocess.PIPE, text=True)
            time.sleep(ACTIVE_SECONDS / 2)
            during = pss_kib(pids)
            held = sum(sockets_of(p) for p in pids)
            r = wrk_result(w.communicate()[0])
            r.update(pss_before=fresh[peer["name"]], pss_during=during,
                     sockets=held, check=None)
            if peer["counts"]:
                time.sleep(0.5)
                r["check"] = check_count(peer, r, ACTIVE_CONNS, False, v0,
                                         rport)
            runs.setdefault(peer["name"], []).append(r)
            print("active %s c=%d: %.0f req/s p99 %.2f ms errors %d, PSS "
                  "%d -> %d KiB" % (peer["name"], ACTIVE_CONNS, r["rps"],
                                    r["p99_us"] / 1000, r["errors"],
                                    fresh[peer["name"]], during), flush=True)
    return runs


def hold_part(port, src, n, ready, release):
    """In a child: n idle keep-alive connections from src, each after one
    answered request; a byte on ready once they are open, then held until
    release reaches its end."""
    socks = []
    req = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"
    done = b"0"
    try:
        for i in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_IP, 24, 1)     # IP_BIND_ADDRESS_NO_PORT
            s.bind((src, 0))
            s.settimeout(30)
            s.connect(("127.0.0.1", port))
            s.sendall(req)
            socks.append(s)
            if len(socks) % 500 == 0:       # read the answers in batches
                for t in socks[-500:]:
                    t.recv(4096)
        for t in socks[len(socks) - len(socks) % 500:]:
            t.recv(4096)
        done = b"1"
    finally:
        os.write(ready, done)
        if done == b"1":
            os.read(release, 1)
        os._exit(0)


def hold_idle(port, n, per_proc=IDLE_PER_PROC):
    """n idle keep-alive connections, held by child processes of per_proc
    connections each (no process may hold more descriptors than the hard
    RLIMIT_NOFILE), each child from its own source address 127.0.0.2, .3,
    ... (so none runs out of ephemeral ports).  Returns the release
    function, which closes them all."""
    kids = []
    ready_r, ready_w = os.pipe()
    rel_r, rel_w = os.pipe()
    for i in range(0, n, per_proc):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(rel_w)
            hold_part(port, "127.0.0.%d" % (2 + i // per_proc),
                      min(per_proc, n - i), ready_w, rel_r)
        kids.append(pid)
    os.close(ready_w)
    os.close(rel_r)

    def release():
        os.close(rel_w)             # every child reads its end, and exits
        for pid in kids:
            os.waitpid(pid, 0)
        os.close(ready_r)
    got = b""
    while len(got) < len(kids):
        got += os.read(ready_r, len(kids))
    if b"0" in got:
        release()
        sys.exit("bench: a child holding idle connections failed")
    return release


def mode_idle(two):
    """For a fresh hitcountd and nginx: PSS per idle connection, and what a
    new client waits meanwhile."""
    out = {}
    for peer in two:
        pids = tree(peer["proc"].pid)
        before = pss_kib(pids)
        t0 = time.time()
        release = hold_idle(peer["port"], IDLE_CONNS)
        try:
            opened = time.time() - t0
            time.sleep(1)
            after = pss_kib(pids)
            lat = []
            for i in range(50):
                t = time.perf_counter()
                data = http_get(peer["port"])
                lat.append((time.perf_counter() - t) * 1000)
                if not data.startswith(b"HTTP/1.1 200"):
                    sys.exit("bench: probe during idle connections failed")
                time.sleep(0.02)
            split = [sockets_of(p) for p in pids[1:]]
        finally:
            release()
        lat.sort()
        out[peer["name"]] = {
            "before": before, "after": after, "opened_s": opened,
            "per_conn": (after - before) * 1024 / IDLE_CONNS,
            "probe_p50_ms": lat[len(lat) // 2], "probe_max_ms": lat[-1],
            "split": split}
        print("idle %s: %d connections in %.1f s, %.0f bytes each, probe "
              "max %.2f ms" % (peer["name"], IDLE_CONNS, opened,
                               out[peer["name"]]["per_conn"], lat[-1]),
              flush=True)
        time.sleep(2)
    return out


def mode_redis(hitcountd, rport, rpid, tmp, log):
    """INSTANCES hitcountd on the one Redis, each loaded by its own wrk
    at the same time; the counter checked over all of them."""
    inst = [P.start_hitcountd(hitcountd, "instance%d" % i, rport, tmp, log)
            for i in range(INSTANCES)]
    conns = 1000 // INSTANCES
    try:
        for p in inst:
            wrk(p["port"], conns, False, WARMUP)
        time.sleep(1)
        v0 = visits(rport)
        rs0 = redis_stats(rport, rpid)
        # Twice as long as a round's run: Redis's CPU in 100 Hz ticks.
        ws = [subprocess.Popen(wrk_cmd(p["port"], conns, False, 2 * SECONDS,
                                       threads=1),
                               stdout=subprocess.PIPE, text=True)
              for p in inst]
        rs = [wrk_result(w.communicate()[0]) for w in ws]
        time.sleep(0.5)
        grew = visits(rport) - v0
        rd = redis_delta(rs0, redis_stats(rport, rpid))
        ok200 = sum(r["requests"] - r["non2xx"] for r in rs)
    finally:
        for p in inst:
            stop(p["proc"])
    out = {"instances": INSTANCES, "conns": conns, "ok200": ok200,
           "grew": grew, "good": ok200 <= grew <= ok200 + conns * INSTANCES,
           "rps": sum(r["rps"] for r in rs), "redis": rd,
           "p99_ms": max(r["p99_us"] for r in rs) / 1000}
    print("redis: %d instances, %d answers 200, counter grew %d, %d "
          "commands, %d Redis ticks" % (INSTANCES, ok200, grew,
                                        rd["commands"], rd["ticks"]),
          flush=True)
    return out


def redis_bench(rport, rpid):
    """redis-benchmark INCR: requests/s with 50 clients (plain and
    pipelined 16) and Redis's CPU per command meanwhile, and the p50
    latency of one client."""
    out = {}
    for label, extra, n in (("INCR", ["-c", "50"], 200000),
                            ("INCR -P 16", ["-c", "50", "-P", "16"], 1000000),
                            ("INCR -c 1", ["-c", "1"], 50000)):
        t0 = cpu_ticks(rpid)
        r = subprocess.run(["redis-benchmark", "-p", str(rport), "-t",
                            "incr", "-n", str(n), "--csv"] + extra,
                           capture_output=True, text=True).stdout
        ticks = cpu_ticks(rpid) - t0
        m = re.search(r'^"INCR","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)"',
                      r, re.M)
        if not m:
            sys.exit("bench: redis-benchmark gave no result:\n" + r)
        out[label] = {"rps": float(m.group(1)), "p50_ms": float(m.group(4)),
                      "cpu_us": ticks / CLK_TCK * 1e6 / n}
    return out


def sysctls_raise():
    """Raise the kernel's listen limits for the run; returns the old
    values to restore."""
    old = {}
    for k, v in SYSCTLS.items():
        r = subprocess.run(["sysctl", "-n", k], capture_output=True,
                           text=True)
        if r.returncode == 0:
            old[k] = r.stdout.strip()
            subprocess.run(["sysctl", "-q", "-w", "%s=%s" % (k, v)])
    return old


def sysctls_restore(old):
    for k, v in old.items():
        subprocess.run(["sysctl", "-q", "-w", "%s=%s" % (k, v)])


def workers_for(conns):
    """Workers enough for conns connections: 2, or more where the hard
    RLIMIT_NOFILE (which only CAP_SYS_RESOURCE could raise) would leave a
    worker short of descriptors."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # Twice as many: the split between the workers can be uneven.
    return max(2, -(-conns * 2 // (hard - 1000)))


def mark(mode):
    print("bench: mode %s from %s" % (mode, time.strftime("%H:%M:%S")),
          flush=True)


def run(hitcountd, outdir, tmp, log):
    rport, redis = P.start_redis(tmp, log)
    rpid = redis.pid
    peers = P.start_all(hitcountd, rport, tmp, log)
    hc = [p for p in peers if p["name"] == "hitcountd"][0]
    res = {"modes": MODES, "idle_pss": pss_kib(tree(hc["proc"].pid))}
    if "peers" in MODES:
        mark("peers")
        res["runs"] = mode_peers(peers, rport, rpid)
    if "profile" in MODES:
        mark("profile")
        res["profile"] = mode_profile(peers, rport, rpid)
    for mode, fn in (("active", lambda two: mode_active(two, rport)),
                     ("idle", mode_idle)):
        if mode in MODES:
            mark(mode)
            nw = workers_for(ACTIVE_CONNS if mode == "active" else IDLE_CONNS)
            res[mode + "_workers"] = nw
            two = P.start_big_pair(hitcountd, rport, tmp, log, mode, nw)
            res[mode] = fn(two)
            for p in two:
                stop(p["proc"])
    if "redis" in MODES:
        mark("redis")
        res["redis"] = mode_redis(hitcountd, rport, rpid, tmp, log)
        res["redis_bench"] = redis_bench(rport, rpid)
    res["busy_pss"] = pss_kib(tree(hc["proc"].pid))
    report.write(outdir, res, {
        "seconds": SECONDS, "rounds": ROUNDS, "warmup": WARMUP,
        "profile_seconds": PROFILE_SECONDS, "active_conns": ACTIVE_CONNS,
        "idle_conns": IDLE_CONNS, "workloads": WORKLOADS,
        "goal_workloads": GOAL_WORKLOADS, "same_job": SAME_JOB,
        "keepalive": KEEPALIVE})
    return 0 if report.all_exact(res) else 1


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    hitcountd = os.path.abspath(sys.argv[1])
    outdir = os.path.abspath(sys.argv[2] if len(sys.argv) > 2
                             else os.path.join(P.HERE, "results"))
    os.makedirs(outdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="hitcountd-bench.")
    os.chmod(tmp, 0o755)
    log = open(os.path.join(tmp, "servers.log"), "w")
    raise_nofile(200000)
    old = sysctls_raise()
    try:
        return run(hitcountd, outdir, tmp, log)
    finally:
        stop_all()
        sysctls_restore(old)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
