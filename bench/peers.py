"""peers.py - the servers bench.py measures, each started on a port of its
own, with two workers, against one private Redis.

Owns their configurations: hitcountd; nginx answering a constant (the
ceiling); the servers that do the same job, nginx with Lua (Debian's
libnginx-mod-http-lua with lua-nginx-redis, unpacked privately by
bench/run, one pooled Redis connection per concurrent request per worker
through set_keepalive) and webdis (HTTP to Redis in C, `GET /INCR/visits`);
and the seed's Flask app under gunicorn.  Calls procs.py; called by
bench.py.  A peer is a dict: name, port, path (what wrk asks for), proc,
counts (whether each answer is a visit), answer (the regex of the count in
an answer), workers (a function giving the PIDs that serve).
"""

import os
import resource
import sys
import time

from procs import (HERE, free_port, http_get, start, tree, wait_port)

PAGE = r"Page visited (\d+) times"

NGINX_CONF = """%(modules)s
worker_processes %(workers)d;
worker_rlimit_nofile %(nofile)d;
pid %(t)s/%(n)s.pid;
error_log %(t)s/%(n)s.error.log;
daemon off;
events { worker_connections %(wc)d; }
http {
    access_log off;
    client_body_temp_path %(t)s/body;
    proxy_temp_path %(t)s/proxy;
    fastcgi_temp_path %(t)s/fcgi;
    uwsgi_temp_path %(t)s/uwsgi;
    scgi_temp_path %(t)s/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    %(http)s
    server {
        # reuseport: one socket per worker, so the kernel spreads the
        # connections evenly; without it nginx too can leave one worker
        # with all of them, and the ceiling would be lower than it is.
        listen 127.0.0.1:%(p)d reuseport backlog=%(backlog)d;
        location / { %(body)s }
    }
}
"""

CEILING = 'return 200 "Page visited 1 times";'

# The OpenResty way: a cosocket per request, handed back to the worker's
# pool by set_keepalive, so Redis sees no new connection per visit (the
# pool holds up to 1,000, more than the concurrent requests of a worker).
# Content-Length as every other peer sends it, rather than chunked.
LUA = """default_type text/plain;
            content_by_lua_block {
                local redis = require "nginx.redis"
                local r = redis:new()
                r:set_timeout(5000)
                local ok, err = r:connect("127.0.0.1", %(r)d)
                if not ok then ngx.status = 502; ngx.print(err); return end
                local n, err = r:incr("visits")
                if not n then ngx.status = 502; ngx.print(err); return end
                r:set_keepalive(60000, 1000)
                local body = "Page visited " .. n .. " times"
                ngx.header.content_length = #body
                ngx.print(body)
            }"""

WEBDIS_CONF = """{ "redis_host": "127.0.0.1", "redis_port": %d,
  "http_host": "127.0.0.1", "http_port": %d, "threads": 2,
  "daemonize": false, "database": 0, "verbosity": 1,
  "logfile": "%s/webdis.log" }
"""

HITCOUNTD_CONF = """listen = {"127.0.0.1:%d"}
workers = %d
pidfile = ""
keepalive_timeout = 120
header_timeout = 60
max_connections = %d
backlog = %d
log_level = "warning"
redis {
    host = "127.0.0.1"
    port = %d
}
"""


def forked_workers(proc):
    return lambda: tree(proc.pid)[1:]


def start_redis(tmp, log):
    rport = free_port()
    p = start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--maxclients", "60000", "--dir", tmp], log)
    wait_port(rport, "redis-server")
    return rport, p


# The limits of a server in the rounds, and of one held to tens of
# thousands of connections (active and idle modes): the latter is started
# fresh for those, so that its memory before is a new server's, and nginx
# preallocates its connection table (about 420 bytes a slot per worker),
# which would weigh on its memory in every other figure.
LIMITS = {False: {"conns": 20000, "backlog": 511},
          True: {"conns": 70000, "backlog": 65535}}


def start_hitcountd(binary, name, rport, tmp, log, workers=2, big=False):
    """A hitcountd on a port of its own, checked to have its workers."""
    port = free_port()
    conf = os.path.join(tmp, name + ".conf")
    lim = LIMITS[big]
    with open(conf, "w") as f:
        f.write(HITCOUNTD_CONF % (port, workers, lim["conns"], lim["backlog"],
                                  rport))
    hc = start([binary, "-D", "-f", conf], log)
    wait_port(port, name)
    for i in range(20):
        http_get(port)
    time.sleep(0.5)
    if len(tree(hc.pid)) != workers + 1:
        sys.exit("bench: expected %s master + %d workers, got %r"
                 % (name, workers, tree(hc.pid)))
    return {"name": name, "port": port, "path": "/", "proc": hc,
            "counts": True, "answer": PAGE, "workers": forked_workers(hc)}


def start_nginx(name, body, tmp, log, modules="", http="", env=None,
                big=False, workers=2):
    port = free_port()
    conf = os.path.join(tmp, name + ".conf")
    lim = LIMITS[big]
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"t": tmp, "p": port, "n": name, "body": body,
                              "modules": modules, "http": http,
                              "workers": workers, "wc": lim["conns"],
                              "nofile": min(lim["conns"] + 1000, resource.getrlimit(
                                  resource.RLIMIT_NOFILE)[1]),
                              "backlog": lim["backlog"]})
    p = start(["nginx", "-c", conf, "-p", tmp], log, env=env)
    wait_port(port, name)
    return {"name": name, "port": port, "path": "/", "proc": p,
            "counts": False, "answer": None, "workers": forked_workers(p)}


def start_nginx_lua(rport, tmp, log):
    """nginx + Lua from the private root bench/run unpacked
    (BENCH_LUA_ROOT): its modules by path, its LuaJIT (OpenResty's, which
    would replace the one wrk links if installed) by LD_LIBRARY_PATH for
    nginx alone.  None when there is no such root."""
    root = os.environ.get("BENCH_LUA_ROOT")
    if not root or not os.path.isdir(root):
        print("bench: BENCH_LUA_ROOT unset or missing: no nginx+lua peer")
        return None
    mods = os.path.join(root, "usr/lib/nginx/modules")
    modules = ("load_module %s/ndk_http_module.so;\n"
               "load_module %s/ngx_http_lua_module.so;" % (mods, mods))
    http = 'lua_package_path "%s/usr/share/lua/5.1/?.lua;;";' % root
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(
        root, "usr/lib/x86_64-linux-gnu"))
    p = start_nginx("nginx+lua", LUA % {"r": rport}, tmp, log, modules,
                    http, env)
    p.update(counts=True, answer=PAGE)
    return p


def start_webdis(rport, tmp, log):
    port = free_port()
    conf = os.path.join(tmp, "webdis.json")
    with open(conf, "w") as f:
        f.write(WEBDIS_CONF % (rport, port, tmp))
    p = start(["webdis", conf], log)
    wait_port(port, "webdis")
    return {"name": "webdis", "port": port, "path": "/INCR/visits",
            "proc": p, "counts": True, "answer": r'"INCR":(\d+)',
            "workers": lambda: [p.pid]}


def start_gunicorn(rport, log):
    port = free_port()
    env = dict(os.environ, REDIS_HOST="127.0.0.1", REDIS_PORT=str(rport))
    p = start(["gunicorn", "--workers", "2", "--bind",
               "127.0.0.1:%d" % port, "--chdir", HERE,
               "--log-level", "warning", "flask_app:app"], log, env=env)
    wait_port(port, "gunicorn")
    return {"name": "gunicorn+flask", "port": port, "path": "/", "proc": p,
            "counts": True, "answer": PAGE, "workers": forked_workers(p)}


def start_big_pair(hitcountd, rport, tmp, log, tag, workers):
    """A fresh hitcountd and nginx ceiling with the limits for tens of
    thousands of connections, named as in the rounds."""
    pair = [start_nginx("nginx-" + tag, CEILING, tmp, log, big=True,
                        workers=workers),
            start_hitcountd(hitcountd, "hitcountd-" + tag, rport, tmp, log,
                            workers=workers, big=True)]
    pair[0]["name"], pair[1]["name"] = "nginx", "hitcountd"
    return pair


def start_all(hitcountd, rport, tmp, log):
    """Every peer of the rounds, the ceiling first."""
    peers = [start_nginx("nginx", CEILING, tmp, log),
             start_hitcountd(hitcountd, "hitcountd", rport, tmp, log)]
    lua = start_nginx_lua(rport, tmp, log)
    if lua:
        peers.append(lua)
    peers.append(start_webdis(rport, tmp, log))
    baseline = os.environ.get("BENCH_BASELINE")
    if baseline:
        peers.append(start_hitcountd(os.path.abspath(baseline), "baseline",
                                     rport, tmp, log))
    peers.append(start_gunicorn(rport, log))
    return peers
