#!/usr/bin/python3
"""bench.py - hitcountd measured against its ceiling and its predecessor.

Starts, on loopback ports of its own, a private redis-server, nginx with
two workers answering a constant (the ceiling: an HTTP server doing no
work), the original Flask app under gunicorn with 4 sync workers, and
hitcountd with 2 workers.  The ratios to nginx move with whatever else
the machine does, so every workload runs in rounds that alternate the
servers (nginx then hitcountd, then hitcountd then nginx, ...), and each
figure is the median of the rounds with its spread (lowest and highest).
After every hitcountd round the counter must have grown by the number of
200 answers.  Also measured: memory from /proc/PID/smaps_rollup, 10,000
idle keep-alive connections, and redis-benchmark INCR (50 clients, and
one client: with nginx's own one-connection p50 it is the floor of a
request that must wait for one Redis round trip).  Prints a table, the
targets, and a plot.  Everything it starts is stopped by PID.

Usage: bench.py HITCOUNTD [OUTDIR]
Environment:
  BENCH_SECONDS=5      seconds per measured run (after a 1 s warm-up)
  BENCH_ROUNDS=3       alternating rounds of every workload
  BENCH_BASELINE=BIN   another hitcountd binary, measured in the same
                       rounds as a further peer ("baseline"), to compare
                       two builds within one run
  BENCH_IDLE_CONNS=10000
"""

import datetime
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARMUP = 1
IDLE_CONNS = int(os.environ.get("BENCH_IDLE_CONNS", "10000"))
KEEPALIVE = [1, 50, 1000]
# (connections, a new connection per request)
WORKLOADS = [(c, False) for c in KEEPALIVE] + [(50, True)]

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


def http_get(port, path="/"):
    s = socket.create_connection(("127.0.0.1", port), 5)
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


def wrk(port, conns, close, seconds):
    threads = min(2, conns)
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds,
           "--timeout", "5s", "-s", os.path.join(HERE, "report.lua")]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append("http://127.0.0.1:%d/" % port)
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"^RESULT (.*)$", out, re.M)
    if not m:
        sys.exit("bench: wrk gave no result:\n" + out)
    r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def idle_connections(port, pids, n):
    """Hold n idle keep-alive connections; PSS per connection and the
    latency another client sees meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    before = pss_kib(pids)
    socks = []
    req = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), 10)
            s.sendall(req)
            socks.append(s)
            if len(socks) % 500 == 0:       # read the answers in batches
                for t in socks[-500:]:
                    t.recv(4096)
        for t in socks[len(socks) - len(socks) % 500:]:
            t.recv(4096)
        time.sleep(1)
        after = pss_kib(pids)
        lat = []
        for i in range(50):
            t0 = time.perf_counter()
            data = http_get(port)
            lat.append((time.perf_counter() - t0) * 1000)
            if not data.startswith(b"HTTP/1.1 200"):
                sys.exit("bench: probe during idle connections failed")
            time.sleep(0.02)
        split = [sockets_of(p) for p in pids[1:]]
    finally:
        for s in socks:
            s.close()
    return {"before": before, "after": after,
            "per_conn": (after - before) * 1024 / n, "probe_max_ms": max(lat),
            "probe_p50_ms": sorted(lat)[len(lat) // 2], "split": split}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    hitcountd = os.path.abspath(sys.argv[1])
    outdir = os.path.abspath(sys.argv[2] if len(sys.argv) > 2
                             else os.path.join(HERE, "results"))
    os.makedirs(outdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="hitcountd-bench.")
    log = open(os.path.join(tmp, "servers.log"), "w")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        return run(hitcountd, outdir, tmp, log)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


NGINX_CONF = """worker_processes 2;
pid %(t)s/nginx.pid;
error_log %(t)s/nginx.error.log;
daemon off;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path %(t)s/body;
    proxy_temp_path %(t)s/proxy;
    fastcgi_temp_path %(t)s/fcgi;
    uwsgi_temp_path %(t)s/uwsgi;
    scgi_temp_path %(t)s/scgi;
    keepalive_requests 100000000;
    server {
        # reuseport: one socket per worker, so the kernel spreads the
        # connections evenly; without it nginx too can leave one worker
        # with all of them, and the ceiling would be lower than it is.
        listen 127.0.0.1:%(p)d reuseport;
        location / { return 200 "Page visited 1 times"; }
    }
}
"""

HITCOUNTD_CONF = """listen = {"127.0.0.1:%d"}
workers = 2
pidfile = ""
keepalive_timeout = 120
header_timeout = 60
max_connections = 20000
log_level = "warning"
redis {
    host = "127.0.0.1"
    port = %d
}
"""


def start_hitcountd(binary, name, rport, tmp, log):
    """A hitcountd with 2 workers on a port of its own; returns its Popen."""
    port = free_port()
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write(HITCOUNTD_CONF % (port, rport))
    hc = start([binary, "-D", "-f", conf], log)
    wait_port(port, name)
    for i in range(20):
        http_get(port)
    time.sleep(0.5)
    if len(tree(hc.pid)) != 3:
        sys.exit("bench: expected %s master + 2 workers, got %r"
                 % (name, tree(hc.pid)))
    return hc, port


def start_servers(hitcountd, tmp, log):
    """Redis and every peer: returns (redis port, [(name, port, proc,
    counts)])."""
    rport, nport, gport = (free_port() for _ in range(3))
    start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", "--daemonize", "no",
           "--dir", tmp], log)
    wait_port(rport, "redis-server")
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF % {"t": tmp, "p": nport})
    nginx = start(["nginx", "-c", os.path.join(tmp, "nginx.conf"),
                   "-p", tmp], log)
    wait_port(nport, "nginx")
    env = dict(os.environ, REDIS_HOST="127.0.0.1", REDIS_PORT=str(rport))
    gunicorn = start(["gunicorn", "--workers", "4", "--bind",
                      "127.0.0.1:%d" % gport, "--chdir", HERE,
                      "--log-level", "warning", "flask_app:app"], log,
                     env=env)
    wait_port(gport, "gunicorn")
    hc, hport = start_hitcountd(hitcountd, "hitcountd", rport, tmp, log)
    peers = [("nginx", nport, nginx, False), ("hitcountd", hport, hc, True)]
    baseline = os.environ.get("BENCH_BASELINE")
    if baseline:
        b, bport = start_hitcountd(os.path.abspath(baseline), "baseline",
                                   rport, tmp, log)
        peers.append(("baseline", bport, b, True))
    peers.append(("gunicorn+flask", gport, gunicorn, True))
    return rport, peers


def measure(peer, conns, close, rport):
    """One warm-up and one measured wrk run of a workload against a peer;
    for a peer that counts, the counter check of that run."""
    name, port, proc, counts = peer
    wrk(port, conns, close, WARMUP)
    time.sleep(1)       # the warm-up's last requests land first
    v0 = visits(rport) if counts else 0
    cpu0 = [cpu_ticks(p) for p in tree(proc.pid)[1:]]
    r = wrk(port, conns, close, SECONDS)
    cpu1 = [cpu_ticks(p) for p in tree(proc.pid)[1:]]
    r["cpu_split"] = [b - a for a, b in zip(cpu0, cpu1)]
    r["check"] = None
    if counts:
        time.sleep(0.5)     # let answers in flight at the end land
        grew = visits(rport) - v0
        ok200 = r["requests"] - r["non2xx"]
        # wrk stops with up to one request per connection in flight:
        # counted by Redis, not by wrk.
        r["check"] = (ok200, grew, ok200 <= grew <= ok200 + conns)
    r["mem_kib"] = pss_kib(tree(proc.pid))
    print("%-15s %-10s c=%-5d %10.0f req/s  p50 %6.2f ms  p99 %7.2f ms"
          "  errors %d non-2xx %d%s" % (
              name, "close" if close else "keep-alive", conns, r["rps"],
              r["p50_us"] / 1000, r["p99_us"] / 1000, r["errors"],
              r["non2xx"], "" if r["check"] is None else
              "  counter %s" % ("ok" if r["check"][2] else "WRONG")),
          flush=True)
    return r


def rounds(peers, rport):
    """Every workload, ROUNDS times, the peers in alternating order;
    gunicorn+flask (a reference, far below the others) once.  Returns
    {(peer, conns, close): [run, ...]}."""
    runs = {}
    fast = [p for p in peers if p[0] != "gunicorn+flask"]
    slow = [p for p in peers if p[0] == "gunicorn+flask"]
    for i in range(ROUNDS):
        print("round %d of %d" % (i + 1, ROUNDS), flush=True)
        for conns, close in WORKLOADS:
            order = fast if i % 2 == 0 else fast[::-1]
            if i == 0 and conns != 1000:    # sync workers: 1000 time out
                order = order + slow
            for peer in order:
                runs.setdefault((peer[0], conns, close), []).append(
                    measure(peer, conns, close, rport))
    return runs


def run(hitcountd, outdir, tmp, log):
    rport, peers = start_servers(hitcountd, tmp, log)
    hc = [p for p in peers if p[0] == "hitcountd"][0]
    idle_pss = pss_kib(tree(hc[2].pid))
    runs = rounds(peers, rport)
    idle = idle_connections(hc[1], tree(hc[2].pid), IDLE_CONNS)
    rb = redis_bench(rport)
    busy_pss = pss_kib(tree(hc[2].pid))
    report(outdir, runs, idle_pss, busy_pss, idle, rb)
    return 0 if all(r["check"][2] for rs in runs.values() for r in rs
                    if r["check"] is not None) else 1


def cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


def redis_bench(rport):
    """redis-benchmark INCR: requests/s with 50 clients (plain and
    pipelined 16), and the p50 latency of one client."""
    out = {}
    for label, extra in (("INCR", ["-c", "50"]),
                         ("INCR -P 16", ["-c", "50", "-P", "16"]),
                         ("INCR -c 1", ["-c", "1"])):
        r = subprocess.run(["redis-benchmark", "-p", str(rport), "-t",
                            "incr", "-n", "200000", "--csv"] + extra,
                           capture_output=True, text=True).stdout
        m = re.search(r'^"INCR","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)"',
                      r, re.M)
        if not m:
            sys.exit("bench: redis-benchmark gave no result:\n" + r)
        out[label] = {"rps": float(m.group(1)), "p50_ms": float(m.group(4))}
    return out


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def spread(xs, fmt):
    """'median (lowest-highest)' of xs, each formatted with fmt."""
    if len(xs) == 1:
        return fmt % xs[0]
    return "%s (%s-%s)" % (fmt % median(xs), fmt % min(xs), fmt % max(xs))


def ratios(runs, a, b, conns, close):
    """Per round: requests/s of peer a over peer b in the same round."""
    return [x["rps"] / y["rps"] for x, y in
            zip(runs[(a, conns, close)], runs[(b, conns, close)])]


def report_runs(w, runs):
    w("| peer | workload | connections | requests/s, median (lowest-highest)"
      " | p50 ms | p99 ms | errors | non-2xx | memory (PSS) | CPU split "
      "(ticks per worker, median round) |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for (name, conns, close), rs in runs.items():
        rps = [x["rps"] for x in rs]
        mid = sorted(rs, key=lambda x: x["rps"])[len(rs) // 2]
        w("| %s | %s | %d | %s | %s | %s | %d | %d | %.1f MiB | %s |" % (
            name, "new connection per request" if close else "keep-alive",
            conns, spread(rps, "%.0f"),
            spread([x["p50_us"] / 1000 for x in rs], "%.2f"),
            spread([x["p99_us"] / 1000 for x in rs], "%.2f"),
            sum(x["errors"] for x in rs), sum(x["non2xx"] for x in rs),
            rs[-1]["mem_kib"] / 1024,
            "/".join(str(t) for t in mid["cpu_split"])))


def report_checks(w, runs):
    w("Counter checks, every round (Redis growth against 200 answers; wrk "
      "leaves at most one request per connection in flight at the end):")
    w("")
    for (name, conns, close), rs in runs.items():
        for i, x in enumerate(rs):
            if x["check"] is None:
                continue
            ok200, grew, good = x["check"]
            w("- %s %s c=%d, round %d: %d answers 200, counter grew %d: %s"
              % (name, "close" if close else "keep-alive", conns, i + 1,
                 ok200, grew, "ok" if good else "WRONG"))


def targets(runs, idle_pss, idle, rb):
    """(what, measured, wanted, met) for every target of the benchmark."""
    ka50 = ratios(runs, "hitcountd", "nginx", 50, False)
    ka1k = ratios(runs, "hitcountd", "nginx", 1000, False)
    cl50 = ratios(runs, "hitcountd", "nginx", 50, True)
    p50_1 = median([x["p50_us"] / 1000 for x in runs[("hitcountd", 1, False)]])
    floor = rb["INCR -c 1"]["p50_ms"] + median(
        [x["p50_us"] / 1000 for x in runs[("nginx", 1, False)]])
    p99 = median([x["p99_us"] / 1000 for x in runs[("hitcountd", 50, False)]])
    gu = (median([x["rps"] for x in runs[("hitcountd", 50, False)]]) /
          runs[("gunicorn+flask", 50, False)][0]["rps"])
    exact = all(x["check"][2] for rs in runs.values() for x in rs
                if x["check"] is not None)
    return [
        ("keep-alive 50: hitcountd / nginx, median of rounds",
         spread(ka50, "%.2f"), ">= 0.95", median(ka50) >= 0.95),
        ("keep-alive 1000: hitcountd / nginx, median of rounds",
         spread(ka1k, "%.2f"), ">= 0.95", median(ka1k) >= 0.95),
        ("new connection per request 50: hitcountd / nginx, median",
         spread(cl50, "%.2f"), ">= 0.9", median(cl50) >= 0.9),
        ("one connection: hitcountd p50 / floor (Redis INCR p50 %.3f ms + "
         "nginx p50)" % rb["INCR -c 1"]["p50_ms"],
         "%.2f ms / %.2f ms = %.2f" % (p50_1, floor, p50_1 / floor),
         "<= 1.3", p50_1 <= 1.3 * floor),
        ("keep-alive 50: hitcountd p99, median", "%.2f ms" % p99, "<= 5 ms",
         p99 <= 5),
        ("keep-alive 50: hitcountd / gunicorn+flask", "%.1f" % gu, ">= 15",
         gu >= 15),
        ("the counter exact in every round", "yes" if exact else "NO",
         "yes", exact),
        ("idle PSS, master + 2 workers", "%.2f MiB" % (idle_pss / 1024),
         "<= 6 MiB", idle_pss <= 6 * 1024),
        ("%d idle keep-alive connections: memory each" % IDLE_CONNS,
         "%.0f bytes" % idle["per_conn"], "<= 1024 bytes",
         idle["per_conn"] <= 1024),
        ("... meanwhile a new client is answered in (max of 50)",
         "%.2f ms" % idle["probe_max_ms"], "<= 10 ms",
         idle["probe_max_ms"] <= 10),
    ]


def report(outdir, runs, idle_pss, busy_pss, idle, rb):
    lines = []
    w = lines.append
    w("# hitcountd benchmark, %s" % datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    w("")
    w("Machine: %s, %d CPUs, %s; %d alternating rounds of %d s per workload "
      "after %d s warm-up; wrk, the servers and Redis share the machine." % (
          platform.node(), os.cpu_count(), platform.release(), ROUNDS,
          SECONDS, WARMUP))
    w("")
    report_runs(w, runs)
    w("")
    w("redis-benchmark INCR: 50 clients %.0f requests/s; pipelined 16: %.0f "
      "requests/s; one client %.0f requests/s, p50 %.3f ms." % (
          rb["INCR"]["rps"], rb["INCR -P 16"]["rps"], rb["INCR -c 1"]["rps"],
          rb["INCR -c 1"]["p50_ms"]))
    w("")
    report_checks(w, runs)
    w("")
    w("| target | measured | wanted | met |")
    w("|---|---:|---:|---|")
    for t in targets(runs, idle_pss, idle, rb):
        w("| %s | %s | %s | %s |" % (t[0], t[1], t[2],
                                     "yes" if t[3] else "NO"))
    if ("baseline", 50, False) in runs:
        w("")
        w("hitcountd against the baseline build, per round (same rounds):")
        w("")
        for conns, close in WORKLOADS:
            w("- %s c=%d: %s" % ("close" if close else "keep-alive", conns,
                                 spread(ratios(runs, "hitcountd", "baseline",
                                               conns, close), "%.3f")))
    w("")
    w("Idle connections: PSS %.1f MiB before, %.1f MiB with %d connections "
      "open; split between the workers %s sockets; probe p50 %.2f ms. "
      "hitcountd PSS after all runs: %.2f MiB." % (
          idle["before"] / 1024, idle["after"] / 1024, IDLE_CONNS,
          "/".join(map(str, idle["split"])), idle["probe_p50_ms"],
          busy_pss / 1024))
    w("")
    w("![requests/s against connections](rps.png)")
    text = "\n".join(lines) + "\n"
    sys.stdout.write("\n" + text)
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write(text)
    plot(outdir, {k: {"rps": median([x["rps"] for x in rs])}
                  for k, rs in runs.items()})


def plot(outdir, results):
    data = os.path.join(outdir, "rps.dat")
    with open(data, "w") as f:
        for name in ("nginx", "hitcountd", "gunicorn+flask"):
            f.write("# %s\n" % name)
            for c in KEEPALIVE:
                if (name, c, False) in results:
                    f.write("%d %.0f\n" % (c, results[(name, c, False)]["rps"]))
            f.write("\n\n")
    script = """set terminal pngcairo size 900,560
set output '%s'
set title 'keep-alive requests/s against connections (2-core machine, medians of alternating rounds)'
set logscale x
set xlabel 'concurrent connections'
set ylabel 'requests/s'
set key top left
set grid
plot '%s' index 0 with linespoints title 'nginx return 200 (ceiling)', \\
     '' index 1 with linespoints title 'hitcountd (2 workers)', \\
     '' index 2 with linespoints title 'gunicorn + Flask (4 sync workers)'
""" % (os.path.join(outdir, "rps.png"), data)
    r = subprocess.run(["gnuplot"], input=script, text=True,
                       capture_output=True)
    if r.returncode != 0:
        # pngcairo is missing from some gnuplot builds: fall back to png.
        script = script.replace("pngcairo", "png")
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print("plot: %s" % os.path.join(outdir, "rps.png"))


if __name__ == "__main__":
    sys.exit(main())
