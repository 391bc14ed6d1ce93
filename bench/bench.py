#!/usr/bin/python3
"""bench.py - hitcountd measured against its ceiling and its predecessor.

Starts, on loopback ports of its own, a private redis-server, nginx with
two workers answering a constant (the ceiling: an HTTP server doing no
work), the original Flask app under gunicorn with 4 sync workers, and
hitcountd with 2 workers; runs the same wrk workloads against each, one
after another; checks after every run that the counter grew by the number
of 200 answers; measures memory from /proc/PID/smaps_rollup, 10,000 idle
keep-alive connections, and redis-benchmark INCR; prints a table, the
ratios to the targets, and a plot.  Everything it starts is stopped by PID.

Usage: bench.py HITCOUNTD [OUTDIR]     (BENCH_SECONDS=10 per workload)
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
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = 2
IDLE_CONNS = int(os.environ.get("BENCH_IDLE_CONNS", "10000"))
KEEPALIVE = [1, 50, 1000]

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


def run(hitcountd, outdir, tmp, log):
    rport, nport, gport, hport = (free_port() for _ in range(4))
    start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", "--daemonize", "no",
           "--dir", tmp], log)
    wait_port(rport, "redis-server")

    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write("""worker_processes 2;
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
""" % {"t": tmp, "p": nport})
    nginx = start(["nginx", "-c", os.path.join(tmp, "nginx.conf"),
                   "-p", tmp], log)
    wait_port(nport, "nginx")

    env = dict(os.environ, REDIS_HOST="127.0.0.1", REDIS_PORT=str(rport))
    gunicorn = start(["gunicorn", "--workers", "4", "--bind",
                      "127.0.0.1:%d" % gport, "--chdir", HERE,
                      "--log-level", "warning", "flask_app:app"], log,
                     env=env)
    wait_port(gport, "gunicorn")

    conf = os.path.join(tmp, "hitcountd.conf")
    with open(conf, "w") as f:
        f.write("""listen = {"127.0.0.1:%d"}
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
""" % (hport, rport))
    hc = start([hitcountd, "-D", "-f", conf], log)
    wait_port(hport, "hitcountd")
    for i in range(20):
        http_get(hport)
    time.sleep(0.5)
    hc_pids = tree(hc.pid)
    if len(hc_pids) != 3:
        sys.exit("bench: expected hitcountd master + 2 workers, got %r"
                 % hc_pids)
    idle_pss = pss_kib(hc_pids)

    peers = [("nginx", nport, nginx, False), ("hitcountd", hport, hc, True),
             ("gunicorn+flask", gport, gunicorn, True)]
    results = {}
    checks = []
    for name, port, proc, counts in peers:
        for conns, close in [(c, False) for c in KEEPALIVE] + [(50, True)]:
            if name == "gunicorn+flask" and conns == 1000:
                continue        # sync workers: 1000 connections only time out
            wrk(port, conns, close, WARMUP)
            time.sleep(1)       # the warm-up's last requests land first
            v0 = visits(rport) if counts else 0
            cpu0 = [cpu_ticks(p) for p in tree(proc.pid)[1:]]
            r = wrk(port, conns, close, SECONDS)
            cpu1 = [cpu_ticks(p) for p in tree(proc.pid)[1:]]
            r["cpu_split"] = [b - a for a, b in zip(cpu0, cpu1)]
            if counts:
                time.sleep(0.5)     # let answers in flight at the end land
                grew = visits(rport) - v0
                ok200 = r["requests"] - r["non2xx"]
                # wrk stops with up to one request per connection in
                # flight: counted by Redis, not by wrk.
                good = ok200 <= grew <= ok200 + conns
                checks.append((name, conns, close, ok200, grew, good))
            r["mem_kib"] = pss_kib(tree(proc.pid))
            results[(name, conns, close)] = r
            print("%-15s %-10s c=%-5d %10.0f req/s  p50 %6.2f ms  p99 %7.2f ms"
                  "  errors %d non-2xx %d" % (
                      name, "close" if close else "keep-alive", conns,
                      r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000,
                      r["errors"], r["non2xx"]), flush=True)

    idle = idle_connections(hport, tree(hc.pid), IDLE_CONNS)
    rb = redis_bench(rport)
    busy_pss = pss_kib(tree(hc.pid))
    report(outdir, results, checks, idle_pss, busy_pss, idle, rb)
    return 0 if all(c[-1] for c in checks) else 1


def cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


def redis_bench(rport):
    out = {}
    for label, extra in (("INCR", []), ("INCR -P 16", ["-P", "16"])):
        r = subprocess.run(["redis-benchmark", "-p", str(rport), "-t",
                            "incr", "-n", "500000", "-c", "50", "-q"]
                           + extra, capture_output=True, text=True).stdout
        m = re.search(r"INCR: ([\d.]+) requests per second", r)
        out[label] = float(m.group(1)) if m else 0.0
    return out


def report(outdir, results, checks, idle_pss, busy_pss, idle, rb):
    def r(name, conns, close=False):
        return results[(name, conns, close)]

    lines = []
    w = lines.append
    w("# hitcountd benchmark, %s" % datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    w("")
    w("Machine: %s, %d CPUs, %s; %d s per workload after %d s warm-up; "
      "wrk, the servers and Redis share the machine." % (
          platform.node(), os.cpu_count(), platform.release(), SECONDS,
          WARMUP))
    w("")
    w("| peer | workload | connections | requests/s | p50 ms | p99 ms | "
      "errors | non-2xx | memory (PSS) | CPU split (ticks per worker) |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for (name, conns, close), x in results.items():
        w("| %s | %s | %d | %.0f | %.2f | %.2f | %d | %d | %.1f MiB | %s |" % (
            name, "new connection per request" if close else "keep-alive",
            conns, x["rps"], x["p50_us"] / 1000, x["p99_us"] / 1000,
            x["errors"], x["non2xx"], x["mem_kib"] / 1024,
            "/".join(str(t) for t in x["cpu_split"])))
    w("")
    w("redis-benchmark INCR, 50 clients: %.0f requests/s; pipelined 16: "
      "%.0f requests/s." % (rb["INCR"], rb["INCR -P 16"]))
    w("")
    w("Counter checks (Redis growth against 200 answers; wrk leaves at most "
      "one request per connection in flight at the end):")
    w("")
    for name, conns, close, ok200, grew, good in checks:
        w("- %s %s c=%d: %d answers 200, counter grew %d: %s" % (
            name, "close" if close else "keep-alive", conns, ok200, grew,
            "ok" if good else "WRONG"))
    w("")
    ka = r("hitcountd", 50)["rps"] / r("nginx", 50)["rps"]
    cl = r("hitcountd", 50, True)["rps"] / r("nginx", 50, True)["rps"]
    gu = r("hitcountd", 50)["rps"] / r("gunicorn+flask", 50)["rps"]
    p99 = r("hitcountd", 50)["p99_us"] / 1000
    targets = [
        ("keep-alive 50: hitcountd / nginx", "%.2f" % ka, ">= 0.75", ka >= 0.75),
        ("keep-alive 50: hitcountd p99", "%.2f ms" % p99, "<= 5 ms", p99 <= 5),
        ("new connection per request 50: hitcountd / nginx", "%.2f" % cl,
         ">= 0.75", cl >= 0.75),
        ("keep-alive 50: hitcountd / gunicorn+flask", "%.1f" % gu, ">= 15",
         gu >= 15),
        ("idle PSS, master + 2 workers", "%.2f MiB" % (idle_pss / 1024),
         "<= 6 MiB", idle_pss <= 6 * 1024),
        ("%d idle keep-alive connections: memory each" % IDLE_CONNS,
         "%.0f bytes" % idle["per_conn"], "<= 4096 bytes",
         idle["per_conn"] <= 4096),
        ("... meanwhile a new client is answered in (max of 50)",
         "%.2f ms" % idle["probe_max_ms"], "<= 10 ms",
         idle["probe_max_ms"] <= 10),
    ]
    w("| target | measured | wanted | met |")
    w("|---|---:|---:|---|")
    for t in targets:
        w("| %s | %s | %s | %s |" % (t[0], t[1], t[2],
                                     "yes" if t[3] else "NO"))
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
    plot(outdir, results)


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
set title 'keep-alive requests/s against connections (2-core machine, same run)'
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
