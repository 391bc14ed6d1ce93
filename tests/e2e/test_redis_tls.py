"""TLS to Redis (issue 13, item 4), against Debian's redis-server started
with --port 0 --tls-port: it speaks TLS only, so a count is proof that the
connection was TLS.

A throwaway CA, server certificates (the right names, a wrong name, one
from a CA hitcountd does not trust) and a client certificate are made with
openssl(1) for each module run.  Which build is under test is read from
the binary itself (ldd: does it link libhiredis_ssl?), not from what the
daemon says: a TLS build must count over TLS, check the certificate and
the name, show a client certificate, take rediss:// and report bad files
in -t; a build without it (hiredis 0.14) must refuse tls = true and
rediss:// with a clear message, at -t and at start.  Both builds test
something; nothing is skipped.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from e2e_daemon import (clean_env, log_lines, render_config, wait_exit,
                        wait_log)
from e2e_helpers import free_port, patience, reachable_dir, require_tool
from e2e_http import check_503, get, poll_until_200, visits_from_body
from e2e_servers import ClusterTopology, RedisServer, Resp

NO_TLS = "which this build of hitcountd lacks"


# --------------------------------------------------------------------------
# which build, and the certificates
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_build(hitcountd_bin):
    """True when the binary links hiredis_ssl (hiredis >= 1.0 built with
    TLS), False for a build without TLS.  HITCOUNTD_EXPECT_TLS=1 (.ci/run,
    for the hiredis 1.2 build) makes a build without TLS a failure, so
    that these tests cannot pass there by testing the refusal."""
    out = subprocess.run(["ldd", hitcountd_bin], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True,
                         check=True).stdout
    linked = "libhiredis_ssl" in out
    if os.environ.get("HITCOUNTD_EXPECT_TLS") == "1" and not linked:
        pytest.fail("HITCOUNTD_EXPECT_TLS=1, but %s does not link "
                    "libhiredis_ssl:\n%s" % (hitcountd_bin, out))
    return linked


def _openssl(*args, cwd):
    openssl = require_tool("openssl", "openssl")
    subprocess.run([openssl] + list(args), cwd=cwd, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def _ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", "/CN=" + name, "-keyout", name + ".key",
             "-out", name + ".crt", cwd=d)


def _leaf(d, name, ca, san):
    """name.crt and name.key, signed by ca, with subjectAltName san
    (None: a client certificate, with no names)."""
    _openssl("req", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
             "/CN=" + name, "-keyout", name + ".key", "-out", name + ".csr",
             cwd=d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san if san else
                "extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt",
             "-CAkey", ca + ".key", "-CAcreateserial", "-days", "2",
             "-out", name + ".crt", "-extfile", ext, cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A dict of paths: ca, other_ca; server (localhost, 127.0.0.1),
    elsewhere (only elsewhere.example), rogue (right names, other CA),
    client; each NAME has NAME_key too."""
    d = str(tmp_path_factory.mktemp("certs"))
    _ca(d, "ca")
    _ca(d, "other_ca")
    _leaf(d, "server", "ca", "DNS:localhost,IP:127.0.0.1")
    _leaf(d, "elsewhere", "ca", "DNS:elsewhere.example")
    _leaf(d, "rogue", "other_ca", "DNS:localhost,IP:127.0.0.1")
    _leaf(d, "client", "ca", None)
    paths = {}
    for name in ("ca", "other_ca", "server", "elsewhere", "rogue", "client"):
        paths[name] = os.path.join(d, name + ".crt")
        paths[name + "_key"] = os.path.join(d, name + ".key")
    paths["dir"] = d
    return paths


# --------------------------------------------------------------------------
# redis-server over TLS only
# --------------------------------------------------------------------------

class TlsResp(Resp):
    """A RESP connection over TLS, with the client certificate (for
    tls-auth-clients yes).  The test's own client: it trusts both test CAs
    and any name, to ask the servers that hitcountd must refuse."""

    def __init__(self, port, certs, timeout=2.0):
        ctx = ssl.create_default_context(cafile=certs["ca"])
        ctx.load_verify_locations(certs["other_ca"])
        ctx.check_hostname = False
        ctx.load_cert_chain(certs["client"], certs["client_key"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock.settimeout(timeout)
        self.rfile = self.sock.makefile("rb")


class TlsRedis(RedisServer):
    """redis-server with --port 0 --tls-port: TLS or nothing.  cert: which
    server certificate of certs; auth_clients: tls-auth-clients; name and
    extra: as RedisServer's."""

    def __init__(self, workdir, certs, cert="server", auth_clients="optional",
                 name="tls-redis", extra=()):
        RedisServer.__init__(self, workdir, name, extra=extra)
        self.certs = certs
        self.cert = cert
        self.auth_clients = auth_clients

    def start(self, timeout=10):
        c = self.certs
        self.launch(["--port", "0", "--tls-port", str(self.port),
                     "--bind", self.host,
                     "--tls-cert-file", c[self.cert],
                     "--tls-key-file", c[self.cert + "_key"],
                     "--tls-ca-cert-file", c["ca"],
                     "--tls-auth-clients", self.auth_clients,
                     "--save", "", "--appendonly", "no",
                     "--daemonize", "no", "--dir", self.dir] + self.extra,
                    timeout)

    def ping(self):
        """Up: it accepts a TCP connection (its certificate may be one a
        client must refuse)."""
        try:
            socket.create_connection((self.host, self.port), 1).close()
            return True
        except OSError:
            return False

    def command(self, *args, timeout=2.0):
        c = TlsResp(self.port, self.certs, timeout)
        try:
            return c.command(*args)
        finally:
            c.close()

    def visits(self, key="visits", db=None):
        return int(self.command("GET", key) or 0)

    def connections(self):
        info = self.command("INFO", "stats")
        return int(re.search(r"^total_connections_received:(\d+)", info,
                             re.M).group(1))


@pytest.fixture
def tls_redis(tmp_path, certs):
    """tls_redis(cert="server", auth_clients="optional"): started."""
    servers = []

    def make(cert="server", auth_clients="optional"):
        d = tmp_path / ("tls-redis%d" % len(servers))
        d.mkdir()
        srv = TlsRedis(str(d), certs, cert, auth_clients)
        servers.append(srv)
        srv.start()
        return srv
    try:
        yield make
    finally:
        for srv in servers:
            srv.teardown()


def tls_conf(certs, server, **redis):
    """The redis section for server over TLS, trusting the test CA."""
    conf = {"host": "localhost", "port": server.port, "tls": True,
            "tls_ca_file": certs["ca"]}
    conf.update(redis)
    return conf


def start(factory, tls_build, env=None, **redis):
    """A daemon with this redis section.  In a build without TLS it must
    refuse to start, saying why: then None."""
    d = factory(wait=tls_build, env=env, redis=redis)
    if tls_build:
        return d
    rc, _ = wait_exit(d, patience(10))
    assert rc == 1, d.log()
    assert NO_TLS in d.log() and "hiredis >= 1.0" in d.log(), d.log()
    return None


def count(d, n):
    """n GETs on d count 1..n in order."""
    for i in range(1, n + 1):
        r = get(d.port)
        assert r.status == 200, r
        assert visits_from_body(r.body) == i, r


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------

def test_counts_over_tls(bare_daemon_factory, tls_build, tls_redis, certs):
    srv = tls_redis()
    # by name (SNI, and the name check against DNS:localhost)
    d = start(bare_daemon_factory, tls_build, **tls_conf(certs, srv))
    if d is None:
        return
    wait_log(d, "redis: connected to localhost:%d over TLS" % srv.port, 2)
    count(d, 5)
    # by address: checked against the certificate's IP:127.0.0.1
    ip = bare_daemon_factory(redis=tls_conf(certs, srv, host="127.0.0.1"))
    r, _ = poll_until_200(ip.port, patience(5))
    assert visits_from_body(r.body) == 6, r
    assert srv.visits() == 6
    # control: without tls the server cannot be used at all
    plain = bare_daemon_factory(redis={"host": "127.0.0.1",
                                       "port": srv.port})
    check_503(get(plain.port))
    assert srv.visits() == 6


def test_unknown_ca_is_refused_without_a_reconnect_storm(
        bare_daemon_factory, tls_build, tls_redis, certs):
    srv = tls_redis(cert="rogue")
    d = start(bare_daemon_factory, tls_build, **tls_conf(certs, srv))
    if d is None:
        return
    why = "TLS: the server's certificate is refused: "
    wait_log(d, why, 2)
    check_503(get(d.port))
    before = srv.connections()
    time.sleep(3)
    tries = srv.connections() - before
    # two workers, each at most twice a second once backed off
    assert tries <= 2 * 3 * 2 + 4, tries
    lines = log_lines(d, why)
    # once per worker as a warning, then debug lines (not logged at info)
    assert len(lines) == 2, lines
    assert all("warning: redis: cannot connect to localhost:%d" % srv.port
               in l for l in lines), lines
    assert srv.visits() == 0


def test_wrong_host_name_is_refused(bare_daemon_factory, tls_build,
                                    tls_redis, certs):
    srv = tls_redis(cert="elsewhere")
    d = start(bare_daemon_factory, tls_build, **tls_conf(certs, srv))
    if d is None:
        return
    wait_log(d, "the server's certificate is refused: hostname mismatch", 2)
    check_503(get(d.port))
    # the name the certificate carries, given as tls_server_name
    ok = bare_daemon_factory(redis=tls_conf(
        certs, srv, tls_server_name="elsewhere.example"))
    r, _ = poll_until_200(ok.port, patience(5))
    assert visits_from_body(r.body) == 1, r
    assert srv.visits() == 1


def test_client_certificate(bare_daemon_factory, tls_build, tls_redis,
                            certs):
    srv = tls_redis(auth_clients="yes")
    d = start(bare_daemon_factory, tls_build, **tls_conf(certs, srv))
    if d is None:
        return
    # TLS 1.3: the server refuses a missing certificate after the
    # client's handshake is done, with an alert, or a reset when the PING
    # that follows the handshake is still unread
    refused = "warning: redis: cannot connect to localhost:%d: " % srv.port
    wait_log(d, refused, 2)
    check_503(get(d.port))
    for line in log_lines(d, refused):
        assert "TLS: tlsv13 alert certificate required" in line or \
            "want a client certificate" in line, line
    assert "connected to" not in d.log()
    with_cert = bare_daemon_factory(redis=tls_conf(
        certs, srv, tls_cert_file=certs["client"],
        tls_key_file=certs["client_key"]))
    count(with_cert, 3)
    assert srv.visits() == 3


def test_rediss_url(bare_daemon_factory, tls_build, tls_redis, certs,
                    run_hitcountd, tmp_path):
    srv = tls_redis()
    srv.command("CONFIG", "SET", "requirepass", "tls-pw")
    url = "rediss://:tls-pw@localhost:%d/3" % srv.port
    # tls is not in the file: the URL turns it on, and AUTH goes over TLS
    d = start(bare_daemon_factory, tls_build, env={"REDIS_URL": url},
              tls_ca_file=certs["ca"])
    if d is None:
        conf = tmp_path / "empty.conf"
        conf.write_text("")
        r = run_hitcountd("-t", "-f", conf, env={"REDIS_URL": url})
        assert r.returncode == 1 and NO_TLS in r.stderr, r
        assert "tls-pw" not in r.stderr
        return
    count(d, 2)
    c = TlsResp(srv.port, certs)
    try:
        c.command("AUTH", "tls-pw")
        c.command("SELECT", "3")
        assert c.command("GET", "visits") == "2"
    finally:
        c.close()
    # the same URL as redis:// gets nothing from a TLS-only port
    plain = bare_daemon_factory(env={"REDIS_URL": url.replace("rediss",
                                                              "redis")})
    check_503(get(plain.port))


def test_sighup_reads_the_ca_file_again(bare_daemon_factory, tls_build,
                                        tls_redis, certs, tmp_path):
    srv = tls_redis()
    ca = str(tmp_path / "trusted.crt")
    shutil.copy(certs["other_ca"], ca)
    d = start(bare_daemon_factory, tls_build,
              **tls_conf(certs, srv, tls_ca_file=ca))
    if d is None:
        return
    wait_log(d, "the server's certificate is refused", 2)
    check_503(get(d.port))
    workers = d.workers()
    # a file that is no CA: the reload fails, naming it, and the running
    # workers stay
    with open(ca, "w") as f:
        f.write("garbage\n")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload failed")
    assert "option 'tls_ca_file': %s: " % ca in log_lines(
        d, "reload failed")[0], d.log()
    assert d.workers() == workers
    # the right CA in the same file, and a reload: new workers read it
    shutil.copy(certs["ca"], ca)
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reload succeeded")
    r, _ = poll_until_200(d.port, patience(5))
    assert visits_from_body(r.body) == 1, r


def test_start_refuses_a_missing_ca_file(bare_daemon_factory, tls_build,
                                         tmp_path):
    missing = str(tmp_path / "missing-ca.crt")
    d = bare_daemon_factory(wait=False, redis={
        "host": "localhost", "port": free_port(), "tls": True,
        "tls_ca_file": missing})
    rc, _ = wait_exit(d, patience(10))
    assert rc == 1, d.log()
    if tls_build:
        assert "option 'tls_ca_file': %s: No such file or directory" \
            % missing in d.log(), d.log()
    else:
        assert NO_TLS in d.log(), d.log()


def _t(run_hitcountd, tmp_path, redis):
    """hitcountd -t of a file with this redis section."""
    conf = tmp_path / ("t%d.conf" % len(os.listdir(str(tmp_path))))
    conf.write_text(render_config({"redis": redis}))
    return run_hitcountd("-t", "-f", conf)


def test_t_checks_the_tls_files(run_hitcountd, tls_build, certs, tmp_path):
    good = {"tls": True, "tls_ca_file": certs["ca"],
            "tls_cert_file": certs["client"],
            "tls_key_file": certs["client_key"]}
    r = _t(run_hitcountd, tmp_path, good)
    if not tls_build:
        assert r.returncode == 1 and NO_TLS in r.stderr, r
        # tls = false is fine in any build
        r = _t(run_hitcountd, tmp_path, dict(good, tls=False))
        assert r.returncode == 0, r
        return
    assert r.returncode == 0, r
    notcert = str(tmp_path / "notcert.pem")
    with open(notcert, "w") as f:
        f.write("not a certificate\n")
    bad = [
        ({"tls_ca_file": "/nonexistent/ca.crt"},
         "option 'tls_ca_file': /nonexistent/ca.crt: No such file or "
         "directory"),
        ({"tls_ca_file": notcert}, "option 'tls_ca_file': %s: " % notcert),
        ({"tls_ca_file": "", "tls_ca_dir": certs["ca"]},
         "option 'tls_ca_dir': %s: Not a directory" % certs["ca"]),
        ({"tls_cert_file": "/nonexistent/c.crt"},
         "option 'tls_cert_file': /nonexistent/c.crt: No such file"),
        ({"tls_key_file": certs["server_key"]},
         "option 'tls_key_file': %s: " % certs["server_key"]),
        ({"tls_key_file": ""}, "'tls_cert_file' and 'tls_key_file' "
         "together"),
        ({"tls_cert_file": "relative.crt"}, "tls_cert_file"),
        ({"socket": "/run/redis.sock"}, "does not go over a Unix socket"),
    ]
    for change, why in bad:
        r = _t(run_hitcountd, tmp_path, dict(good, **change))
        assert r.returncode == 1, (change, r)
        assert why in r.stderr, (change, r.stderr)


def test_t_reports_an_unreadable_file(hitcountd_bin, tls_build, certs):
    """A CA file the master cannot read.  Run as nobody when root (root
    reads any file), from a copy of the binary in a directory nobody can
    reach (pytest's tmp_path is mode 0700)."""
    with reachable_dir("hitcountd-tls-", 0o755) as d:
        binary = os.path.join(d, "hitcountd")
        shutil.copy(hitcountd_bin, binary)
        locked = os.path.join(d, "locked.crt")
        shutil.copy(certs["ca"], locked)
        os.chmod(locked, 0)
        conf = os.path.join(d, "h.conf")
        with open(conf, "w") as f:
            f.write('user = ""\nredis {\n    tls = true\n'
                    '    tls_ca_file = "%s"\n}\n' % locked)
        os.chmod(conf, 0o644)
        argv = [binary, "-t", "-f", conf]
        if os.geteuid() == 0:
            argv = [require_tool("setpriv", "util-linux"), "--reuid=nobody",
                    "--regid=nogroup", "--clear-groups"] + argv
        r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=15,
                           env=clean_env())
    assert r.returncode == 1, r
    if tls_build:
        assert "option 'tls_ca_file': %s: Permission denied" % locked in \
            r.stderr, r.stderr
    else:
        assert NO_TLS in r.stderr, r.stderr


def test_t_refuses_tls_with_sentinels(run_hitcountd, tls_build, certs,
                                      tmp_path):
    conf = tmp_path / "s.conf"
    conf.write_text('redis {\n    tls = true\n    tls_ca_file = "%s"\n'
                    '    sentinels = {"127.0.0.1:%d"}\n}\n'
                    % (certs["ca"], free_port()))
    r = run_hitcountd("-t", "-f", conf)
    assert r.returncode == 1, r
    if tls_build:
        assert "is not supported with 'sentinels'" in r.stderr, r.stderr
    else:
        assert "is not supported with 'sentinels'" in r.stderr or \
            NO_TLS in r.stderr, r.stderr


def test_cluster_over_tls(bare_daemon_factory, tls_build, certs, tmp_path):
    """A Redis Cluster speaking TLS only (nodes, bus and replication):
    every node, the seed and the slot's primary, is reached over TLS with
    the same CA, and each node's certificate is checked for the address
    CLUSTER SLOTS gives (127.0.0.1)."""
    def node(path, name, extra):
        return TlsRedis(path, certs, name=name, extra=extra + [
            "--tls-cluster", "yes", "--tls-replication", "yes"])
    topo = ClusterTopology(
        str(tmp_path / "cluster"), make_node=node,
        cli_args=["--tls", "--cacert", certs["ca"], "--cert",
                  certs["client"], "--key", certs["client_key"]])
    try:
        topo.start()
        owner, _ = topo.slot_nodes(12263)       # CLUSTER KEYSLOT visits
        seed = next(n for n in topo.nodes if n is not owner)
        d = start(bare_daemon_factory, tls_build, host=None, port=None,
                  cluster=["127.0.0.1:%d" % seed.port], tls=True,
                  tls_ca_file=certs["ca"])
        if d is None:
            return                  # refused, and said why (start())
        r, _ = poll_until_200(d.port, patience(10))
        n = visits_from_body(r.body)
        for i in range(n + 1, n + 20):
            r = get(d.port)
            assert r.status == 200 and visits_from_body(r.body) == i, r
        assert owner.visits() == n + 19
        assert "connected to cluster node 127.0.0.1:%d over TLS" % \
            owner.port in d.log(), d.log()
    finally:
        topo.teardown()
