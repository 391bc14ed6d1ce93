"""report.py - the Markdown report (and the plot) of a bench.py run.

Owns the arithmetic from raw runs to figures (medians and spreads, ratios
per round, CPU and Redis work per request and per visit, the goals) and
their layout; bench.py calls write() and all_exact() with what its modes
measured.  Calls nothing of bench.py's.
"""

import datetime
import json
import os
import platform
import subprocess
import sys

from procs import CLK_TCK


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def spread(xs, fmt):
    """'median (lowest-highest)' of xs, each formatted with fmt."""
    if len(xs) == 1:
        return fmt % xs[0]
    return "%s (%s-%s)" % (fmt % median(xs), fmt % min(xs), fmt % max(xs))


def wl(conns, close):
    return "%s %d" % ("new connection per request" if close
                      else "keep-alive", conns)


def us(ticks, n):
    """Microseconds of CPU per item, from clock ticks."""
    return ticks / CLK_TCK * 1e6 / n if n else 0.0


def ratios(runs, a, b, conns, close):
    """Per round: requests/s of peer a over peer b in the same round."""
    return [x["rps"] / y["rps"] for x, y in
            zip(runs[(a, conns, close)], runs[(b, conns, close)])]


def best_same_job(runs, same_job, conns, close):
    """The same-job peer with the highest median requests/s here."""
    have = [p for p in same_job if (p, conns, close) in runs]
    if not have:
        return None
    return max(have, key=lambda p: median([x["rps"] for x in
                                           runs[(p, conns, close)]]))


def by_workload(d):
    """The items of a {(peer, conns, close): ...} dict, keep-alive first,
    then by connections, the peers in the order they ran."""
    return sorted(d.items(), key=lambda kv: (kv[0][2], kv[0][1]))


def all_exact(res):
    runs = [x for rs in res.get("runs", {}).values() for x in rs]
    runs += [x for rs in res.get("active", {}).values() for x in rs]
    ok = all(x["check"]["good"] for x in runs if x["check"])
    return ok and res.get("redis", {"good": True})["good"]


def section_runs(w, runs):
    w("| peer | workload | connections | requests/s, median (lowest-highest)"
      " | p50 ms | p99 ms | errors | non-2xx | memory (PSS) | CPU split "
      "(ticks per worker, median round) |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for (name, conns, close), rs in by_workload(runs):
        mid = sorted(rs, key=lambda x: x["rps"])[len(rs) // 2]
        w("| %s | %s | %d | %s | %s | %s | %d | %d | %.1f MiB | %s |" % (
            name, "new connection per request" if close else "keep-alive",
            conns, spread([x["rps"] for x in rs], "%.0f"),
            spread([x["p50_us"] / 1000 for x in rs], "%.2f"),
            spread([x["p99_us"] / 1000 for x in rs], "%.2f"),
            sum(x["errors"] for x in rs), sum(x["non2xx"] for x in rs),
            rs[-1]["mem_kib"] / 1024,
            "/".join(str(t) for t in mid["cpu_split"])))


def section_cost(w, runs):
    w("CPU per request from /proc ticks (%d Hz) of each process, and Redis's "
      "work per visit from INFO commandstats, medians of the rounds:" %
      CLK_TCK)
    w("")
    w("| peer | workload | Redis commands per visit | visits per command | "
      "Redis connections accepted per 1,000 visits | Redis CPU us per visit"
      " | CPU us per request: workers | master | Redis | wrk | all |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (name, conns, close), rs in by_workload(runs):
        def med(f):
            return median([f(x) for x in rs])
        cpu = [med(lambda x: us(sum(x["cpu_split"]), x["requests"])),
               med(lambda x: us(x["master_ticks"], x["requests"])),
               med(lambda x: us(x["redis"]["ticks"], x["requests"])),
               med(lambda x: us(x["wrk_ticks"], x["requests"]))]
        if rs[0]["check"]:
            red = "%.3f | %.1f | %.2f | %.2f" % (
                med(lambda x: x["redis"]["commands"] / max(1, x["check"]["grew"])),
                med(lambda x: x["check"]["grew"] / max(1, x["redis"]["commands"])),
                med(lambda x: 1000 * x["redis"]["conns"] / max(1, x["check"]["grew"])),
                med(lambda x: us(x["redis"]["ticks"], x["check"]["grew"])))
        else:
            red = "- | - | - | -"
        w("| %s | %s | %s | %s | %.1f |" % (
            name, wl(conns, close), red,
            " | ".join("%.1f" % c for c in cpu), sum(cpu)))


def goals(res, o):
    """(what, measured, wanted, met) for issue 22's goals and the older
    targets of the benchmark."""
    runs = res["runs"]
    out = []
    for conns, close in o["goal_workloads"]:
        want = 1.5 if close else 2.0
        best = best_same_job(runs, o["same_job"], conns, close)
        if best:
            r = ratios(runs, "hitcountd", best, conns, close)
            out.append(("%s: hitcountd / best same-job peer (%s)" % (
                wl(conns, close), best), spread(r, "%.2f"),
                ">= %.1f" % want, median(r) >= want))
    for conns, close in o["goal_workloads"]:
        r = ratios(runs, "hitcountd", "nginx", conns, close)
        out.append(("%s: hitcountd / nginx (ceiling)" % wl(conns, close),
                    spread(r, "%.2f"), ">= 0.95", median(r) >= 0.95))
    p99 = median([x["p99_us"] / 1000 for x in runs[("hitcountd", 50, False)]])
    out.append(("keep-alive 50: hitcountd p99, median", "%.2f ms" % p99,
                "<= 5 ms", p99 <= 5))
    if ("gunicorn+flask", 50, False) in runs:
        gu = (median([x["rps"] for x in runs[("hitcountd", 50, False)]]) /
              runs[("gunicorn+flask", 50, False)][0]["rps"])
        out.append(("keep-alive 50: hitcountd / gunicorn+flask (2 workers)",
                    "%.1f" % gu, ">= 15", gu >= 15))
    exact = all(x["check"]["good"] for rs in runs.values() for x in rs
                if x["check"])
    out.append(("the counter exact in every round, every server",
                "yes" if exact else "NO", "yes", exact))
    out.append(("idle PSS, master + 2 workers", "%.2f MiB" % (
        res["idle_pss"] / 1024), "<= 6 MiB", res["idle_pss"] <= 6 * 1024))
    return out


def cpu_per_request(runs, name, conns, close, with_wrk):
    """Median over the rounds of the CPU a request costs the server (its
    workers and master) and Redis, and wrk too if with_wrk, in
    microseconds."""
    return median([us(sum(x["cpu_split"]) + x["master_ticks"] +
                      x["redis"]["ticks"] + (x["wrk_ticks"] if with_wrk
                                             else 0), x["requests"])
                   for x in runs[(name, conns, close)]])


def section_cpu_ratios(w, runs, o):
    w("The same comparisons by CPU, medians of the rounds: microseconds of "
      "CPU per request of the server and Redis together, then of everything "
      "including wrk, and for each peer how many times hitcountd's it "
      "spends.  The first ratio does not depend on how the scheduler shares "
      "the cores; the second is the most the requests/s ratio can be when "
      "wrk, the server and Redis saturate the machine's cores together, "
      "since each request costs all of that CPU.")
    w("")
    peers = ("nginx",) + tuple(o["same_job"])
    w("| workload | hitcountd us (with wrk) | %s |" % " | ".join(
        "%s us (with wrk): ratio (with wrk)" % p for p in peers))
    w("|---|---:|%s" % ("---:|" * len(peers)))
    for conns, close in o["goal_workloads"]:
        h = [cpu_per_request(runs, "hitcountd", conns, close, x)
             for x in (False, True)]
        cells = []
        for p in peers:
            if (p, conns, close) in runs:
                c = [cpu_per_request(runs, p, conns, close, x)
                     for x in (False, True)]
                cells.append("%.1f (%.1f): %.2f (%.2f)" % (
                    c[0], c[1], c[0] / h[0], c[1] / h[1]))
            else:
                cells.append("-")
        w("| %s | %.1f (%.1f) | %s |" % (wl(conns, close), h[0], h[1],
                                         " | ".join(cells)))


def section_baseline(w, runs, o):
    w("hitcountd against the baseline build, per round (same rounds):")
    w("")
    for conns, close in o["workloads"]:
        w("- %s: %s" % (wl(conns, close), spread(ratios(
            runs, "hitcountd", "baseline", conns, close), "%.3f")))


def section_checks(w, runs):
    w("<details><summary>counter checks, each round</summary>")
    w("")
    for (name, conns, close), rs in runs.items():
        for i, x in enumerate(rs):
            c = x["check"]
            if c:
                w("- %s %s c=%d, round %d: %d answers 200, counter grew %d; "
                  "next answer %s (Redis + 1 = %d): %s" % (
                      name, "close" if close else "keep-alive", conns, i + 1,
                      c["ok200"], c["grew"], c["answered"], c["expected"],
                      "ok" if c["good"] else "WRONG"))
    w("")
    w("</details>")


def section_profile(w, prof):
    w("System calls per request of the servers' workers (and of Redis), "
      "perf syscall tracepoints over one run each; with a new connection "
      "per request these are also per connection. Calls under 0.02 per "
      "request left out.")
    w("")
    w("| peer | workload | requests | workers: total | workers: by call | "
      "Redis: total | Redis: by call |")
    w("|---|---|---:|---:|---|---:|---|")
    for (name, conns, close), p in by_workload(prof):
        n = max(1, p["requests"])

        def calls(d):
            items = sorted(d.items(), key=lambda kv: -kv[1])
            return ", ".join("%s %.2f" % (k, v / n) for k, v in items
                             if v / n >= 0.02) or "-"
        w("| %s | %s | %d | %.2f | %s | %.2f | %s |" % (
            name, wl(conns, close), p["requests"],
            sum(p["server"].values()) / n, calls(p["server"]),
            sum(p["redis"].values()) / n, calls(p["redis"])))


def section_active(w, act, n, workers):
    w("%d keep-alive connections, all active (wrk -t2 -c%d), against a "
      "fresh hitcountd and nginx (%d workers each), rounds alternating:"
      % (n, n, workers))
    w("")
    w("| server | requests/s | p50 ms | p99 ms | errors | sockets held "
      "(median round) | PSS before | PSS during | bytes per connection |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rs in act.items():
        w("| %s | %s | %s | %s | %d | %d | %.1f MiB | %.1f MiB | %s |" % (
            name, spread([x["rps"] for x in rs], "%.0f"),
            spread([x["p50_us"] / 1000 for x in rs], "%.2f"),
            spread([x["p99_us"] / 1000 for x in rs], "%.2f"),
            sum(x["errors"] for x in rs),
            median([x["sockets"] for x in rs]),
            median([x["pss_before"] for x in rs]) / 1024,
            median([x["pss_during"] for x in rs]) / 1024,
            spread([(x["pss_during"] - x["pss_before"]) * 1024 / n
                    for x in rs], "%.0f")))
    if "hitcountd" in act and "nginx" in act:
        r = [a["rps"] / b["rps"] for a, b in zip(act["hitcountd"],
                                                 act["nginx"])]
        w("")
        w("hitcountd / nginx, per round: %s; counter exact in every "
          "hitcountd round: %s." % (spread(r, "%.2f"), "yes" if all(
              x["check"]["good"] for x in act["hitcountd"]) else "NO"))


def section_idle(w, idle, n, workers):
    w("%d idle keep-alive connections (one answered request each, from "
      "127.0.0.2 and up, 10,000 per source address) to a fresh hitcountd "
      "and nginx (%d workers each), then 50 new clients one after another:"
      % (n, workers))
    w("")
    w("| server | PSS before | PSS with the connections | bytes per "
      "connection | sockets per worker | new client p50 ms | max ms |")
    w("|---|---:|---:|---:|---|---:|---:|")
    for name, x in idle.items():
        w("| %s | %.1f MiB | %.1f MiB | %.0f | %s | %.2f | %.2f |" % (
            name, x["before"] / 1024, x["after"] / 1024, x["per_conn"],
            "/".join(map(str, x["split"])), x["probe_p50_ms"],
            x["probe_max_ms"]))
    w("")
    w("PSS is the servers' own memory; the kernel's socket buffers are not "
      "in it (nor in nginx's).")


def section_redis(w, res):
    runs = res.get("runs", {})
    w("hitcountd's Redis work per concurrency (medians of the rounds), and "
      "what one Redis core would carry at that batch size: visits per "
      "command over Redis CPU per command.")
    w("")
    w("| load | visits per command | Redis CPU us per command | Redis CPU "
      "us per visit | visits/s one Redis core would carry |")
    w("|---|---:|---:|---:|---:|")

    def row(label, grew, cmds, ticks):
        if not cmds or not ticks:
            w("| %s | %.1f | (under one tick) | - | - |" % (
                label, grew / max(1, cmds)))
            return
        w("| %s | %.1f | %.2f | %.3f | %.0f |" % (
            label, grew / cmds, us(ticks, cmds), us(ticks, grew),
            grew / (ticks / CLK_TCK)))
    for (name, conns, close), rs in by_workload(runs):
        if name != "hitcountd":
            continue
        grew = sum(x["check"]["grew"] for x in rs)
        cmds = sum(x["redis"]["commands"] for x in rs)
        ticks = sum(x["redis"]["ticks"] for x in rs)
        row("one hitcountd, %s" % wl(conns, close), grew, cmds, ticks)
    red = res.get("redis")
    if red:
        row("%d hitcountd instances x %d keep-alive connections" % (
            red["instances"], red["conns"]), red["grew"],
            red["redis"]["commands"], red["redis"]["ticks"])
        w("")
        w("%d instances at once on the one Redis: %.0f requests/s in all, "
          "p99 of the worst %.2f ms; %d answers 200, counter grew %d: %s." % (
              red["instances"], red["rps"], red["p99_ms"], red["ok200"],
              red["grew"], "exact" if red["good"] else "WRONG"))
    rb = res.get("redis_bench")
    if rb:
        w("")
        w("redis-benchmark INCR: 50 clients %.0f requests/s (Redis CPU %.2f "
          "us per command); pipelined 16: %.0f requests/s (%.2f us); one "
          "client %.0f requests/s, p50 %.3f ms." % (
              rb["INCR"]["rps"], rb["INCR"]["cpu_us"],
              rb["INCR -P 16"]["rps"], rb["INCR -P 16"]["cpu_us"],
              rb["INCR -c 1"]["rps"], rb["INCR -c 1"]["p50_ms"]))


TUPLE_KEYED = ("runs", "profile")


def save(outdir, res, o):
    """The raw figures as OUTDIR/raw.json, for `report.py raw.json OUTDIR`
    to lay out again."""
    raw = dict(res)
    for k in TUPLE_KEYED:
        if k in raw:
            raw[k] = [[list(key), v] for key, v in raw[k].items()]
    with open(os.path.join(outdir, "raw.json"), "w") as f:
        json.dump({"res": raw, "o": o}, f)


def load(path):
    with open(path) as f:
        raw = json.load(f)
    res, o = raw["res"], raw["o"]
    for k in TUPLE_KEYED:
        if k in res:
            res[k] = {tuple(key): v for key, v in res[k]}
    o["goal_workloads"] = [tuple(x) for x in o["goal_workloads"]]
    o["workloads"] = [tuple(x) for x in o["workloads"]]
    return res, o


def write(outdir, res, o):
    save(outdir, res, o)
    lines = []
    w = lines.append
    w("# hitcountd benchmark, %s" % datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    w("")
    w("Machine: %s, %d CPUs, %s; modes %s; %d alternating rounds of %d s "
      "per workload after %d s warm-up; wrk, the servers and Redis share "
      "the machine." % (platform.node(), os.cpu_count(), platform.release(),
                        ",".join(res["modes"]), o["rounds"], o["seconds"],
                        o["warmup"]))
    if "runs" in res:
        w("")
        section_runs(w, res["runs"])
        w("")
        section_cost(w, res["runs"])
        w("")
        w("| goal or target | measured, median (lowest-highest round) | "
          "wanted | met |")
        w("|---|---:|---:|---|")
        for t in goals(res, o):
            w("| %s | %s | %s | %s |" % (t[0], t[1], t[2],
                                         "yes" if t[3] else "NO"))
        if ("baseline", 50, False) in res["runs"]:
            w("")
            section_baseline(w, res["runs"], o)
        w("")
        section_cpu_ratios(w, res["runs"], o)
        w("")
        section_checks(w, res["runs"])
    if "profile" in res:
        w("")
        section_profile(w, res["profile"])
    if "active" in res:
        w("")
        section_active(w, res["active"], o["active_conns"],
                       res["active_workers"])
    if "idle" in res:
        w("")
        section_idle(w, res["idle"], o["idle_conns"], res["idle_workers"])
    if "redis" in res or "runs" in res:
        w("")
        section_redis(w, res)
    w("")
    w("hitcountd PSS after all runs: %.2f MiB." % (res["busy_pss"] / 1024))
    if "runs" in res:
        w("")
        w("![requests/s against connections](rps.png)")
    text = "\n".join(lines) + "\n"
    sys.stdout.write("\n" + text)
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write(text)
    if "runs" in res:
        plot(outdir, res["runs"], o["keepalive"])


def plot(outdir, runs, keepalive):
    names = []
    for name, conns, close in runs:
        if name not in names:
            names.append(name)
    data = os.path.join(outdir, "rps.dat")
    with open(data, "w") as f:
        for name in names:
            f.write("# %s\n" % name)
            for c in keepalive:
                if (name, c, False) in runs:
                    f.write("%d %.0f\n" % (c, median(
                        [x["rps"] for x in runs[(name, c, False)]])))
            f.write("\n\n")
    title = {"nginx": "nginx return 200 (ceiling)",
             "hitcountd": "hitcountd (2 workers)",
             "nginx+lua": "nginx + Lua, resty.redis INCR (2 workers)",
             "webdis": "webdis GET /INCR/visits (2 threads)",
             "gunicorn+flask": "gunicorn + Flask (2 sync workers)"}
    plots = ", ".join("'%s' index %d with linespoints title '%s'" % (
        data if i == 0 else "", i, title.get(n, n))
        for i, n in enumerate(names))
    script = """set terminal pngcairo size 900,560
set output '%s'
set title 'keep-alive requests/s against connections (2-core machine, medians of alternating rounds)'
set logscale x
set xlabel 'concurrent connections'
set ylabel 'requests/s'
set key top left
set grid
plot %s
""" % (os.path.join(outdir, "rps.png"), plots)
    r = subprocess.run(["gnuplot"], input=script, text=True,
                       capture_output=True)
    if r.returncode != 0:
        # pngcairo is missing from some gnuplot builds: fall back to png.
        script = script.replace("pngcairo", "png")
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print("plot: %s" % os.path.join(outdir, "rps.png"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: report.py RAW.json OUTDIR: lay out a run again")
    write(sys.argv[2], *load(sys.argv[1]))
