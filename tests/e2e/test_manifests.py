"""The example Kubernetes manifests (deploy/kubernetes/) against the image
and the daemon: the ports, paths and user they name are those of the
Dockerfile and the daemon's configuration, the grace period covers
shutdown_delay + shutdown_timeout, the Secret lands where password_file
looks, and the real daemon, started with the ConfigMap's configuration
(addresses moved to free loopback ports), answers the probe paths as the
manifests' comments say.  No cluster runs here: this is what can be
checked without one.
"""

import os
import re
import signal

import pytest
import yaml

from e2e_daemon import Daemon, wait_all_workers_down
from e2e_helpers import free_port
from e2e_http import get, wait_unready

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
KDIR = os.path.join(TOP, "deploy", "kubernetes")


def _docs():
    out = {}
    for name in sorted(os.listdir(KDIR)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(KDIR, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    out[doc["kind"]] = doc
    return out


@pytest.fixture(scope="module")
def k8s():
    return _docs()


def _conf_text(k8s):
    return k8s["ConfigMap"]["data"]["hitcountd.conf"]


def _key(text, key):
    """The value of a top-level or section key, as written (unquoted)."""
    m = re.search(r"^\s*%s\s*=\s*(.+?)\s*$" % re.escape(key), text, re.M)
    assert m, "no %s in the ConfigMap's configuration" % key
    return m.group(1).strip('"')


def _port_of(listen_value):
    return int(re.search(r":(\d+)\"?\s*}?$", listen_value).group(1))


def _container(k8s):
    (c,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def _dockerfile():
    with open(os.path.join(TOP, "Dockerfile")) as f:
        return f.read()


def test_ports_match_the_image_and_the_configuration(k8s):
    text = _conf_text(k8s)
    ports = {p["name"]: p["containerPort"] for p in _container(k8s)["ports"]}
    expose = int(re.search(r"^EXPOSE (\d+)", _dockerfile(), re.M).group(1))
    with open(os.path.join(TOP, "etc", "hitcountd-container.conf")) as f:
        image_listen = _port_of(_key(f.read(), "listen"))
    assert ports["http"] == _port_of(_key(text, "listen")) == expose \
        == image_listen
    assert ports["metrics"] == _port_of(_key(text, "metrics_listen"))
    # the Service publishes the public port only, by name
    svc = k8s["Service"]["spec"]
    assert [p["targetPort"] for p in svc["ports"]] == ["http"]
    labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert svc["selector"].items() <= labels.items()
    assert k8s["Deployment"]["spec"]["selector"]["matchLabels"].items() \
        <= labels.items()


def test_probes_name_the_daemons_paths(k8s):
    c, text = _container(k8s), _conf_text(k8s)
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == _key(text, "readyz_path")
    assert c["livenessProbe"]["httpGet"]["port"] == "http"
    assert c["readinessProbe"]["httpGet"]["port"] == "http"


def test_security_context_and_user_match_the_image(k8s):
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    c = _container(k8s)
    uid, gid = re.search(r"^USER (\d+):(\d+)", _dockerfile(), re.M).groups()
    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert (psc["runAsUser"], psc["runAsGroup"]) == (int(uid), int(gid))
    assert psc["fsGroup"] == int(gid)
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in csc["capabilities"]
    # nothing is written: no pidfile under a read-only root
    assert _key(_conf_text(k8s), "pidfile") == ""


def test_grace_period_covers_delay_and_timeout(k8s):
    text = _conf_text(k8s)
    delay = int(_key(text, "shutdown_delay"))
    timeout = int(_key(text, "shutdown_timeout"))
    grace = k8s["Deployment"]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]
    assert delay > 0
    assert grace >= delay + timeout + 2, (grace, delay, timeout)
    # no preStop hook: the image has no shell and no sleep
    assert "lifecycle" not in _container(k8s)


def test_mounts_put_files_where_the_daemon_reads_them(k8s):
    c, pod = _container(k8s), k8s["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    # the configuration: -f names the ConfigMap's key under its mount
    cm = [n for n, v in volumes.items() if "configMap" in v]
    assert len(cm) == 1
    assert volumes[cm[0]]["configMap"]["name"] == \
        k8s["ConfigMap"]["metadata"]["name"]
    args = c["args"]
    assert args[args.index("-f") + 1] == os.path.join(mounts[cm[0]],
                                                      "hitcountd.conf")
    assert "-D" in args
    # the password: password_file is the Secret's key under its mount
    sec = [n for n, v in volumes.items() if "secret" in v]
    assert len(sec) == 1
    secret = k8s["Secret"]
    assert volumes[sec[0]]["secret"]["secretName"] == \
        secret["metadata"]["name"]
    (key,) = secret["stringData"].keys()
    assert _key(_conf_text(k8s), "password_file") == \
        os.path.join(mounts[sec[0]], key)
    assert "password =" not in _conf_text(k8s).replace("password_file", "")
    assert not any(e["name"].startswith("REDIS_") for e in c.get("env", []))


def _on_loopback(text, port, mport, redis_port, password_file=None):
    """A configuration with its addresses moved to loopback ports."""
    subs = [(r'^(\s*listen\s*=).*$', r'\1 {"127.0.0.1:%d"}' % port),
            (r'^(\s*metrics_listen\s*=).*$', r'\1 {"127.0.0.1:%d"}' % mport),
            (r'^(\s*host\s*=).*$', r'\1 "127.0.0.1"'),
            (r'^(\s*port\s*=).*$', r'\1 %d' % redis_port)]
    if password_file:
        subs.append((r'^(\s*password_file\s*=).*$',
                     r'\1 "%s"' % password_file))
    for pat, rep in subs:
        text, n = re.subn(pat, rep, text, flags=re.M)
        assert n == 1, pat
    return text


def _start(hitcountd_bin, redis_server, workdir, text, port):
    """The daemon on configuration text, answering /healthz on port."""
    workdir.mkdir()
    d = Daemon(hitcountd_bin, str(workdir), redis_server, {}, None, ["-D"])
    d.write_config_text(text)
    d.port = port
    return d.start()


def test_the_daemon_answers_as_the_manifests_say(k8s, hitcountd_bin,
                                                 redis_server, tmp_path):
    password = k8s["Secret"]["stringData"]["redis-password"]
    redis_server.cli("CONFIG", "SET", "requirepass", password)
    redis_server.password = password
    pwfile = tmp_path / "redis-password"
    pwfile.write_text(password + "\n")
    os.chmod(str(pwfile), 0o440)          # as defaultMode in the manifest
    port, mport = free_port(), free_port()
    d = _start(hitcountd_bin, redis_server, tmp_path / "pod",
               _on_loopback(_conf_text(k8s), port, mport, redis_server.port,
                            str(pwfile)), port)
    try:
        assert get(port, "/", timeout=5).status == 200   # counted in Redis
        assert get(port, "/healthz", timeout=5).status == 200
        assert get(port, "/readyz", timeout=5).status == 200
        # /metrics is off the Service's port, on the metrics one
        assert get(port, "/metrics", timeout=5).status == 404
        assert get(mport, "/metrics", timeout=5).status == 200
        # Redis down: the page says 503, the pod stays ready and alive
        mark = len(d.log())
        redis_server.stop()
        wait_all_workers_down(d, timeout=5, since=mark)
        assert get(port, "/", timeout=5).status == 503
        assert get(port, "/readyz", timeout=5).status == 200
        assert get(port, "/healthz", timeout=5).status == 200
        # SIGTERM: unready at once, still serving during shutdown_delay
        os.kill(d.pid, signal.SIGTERM)
        wait_unready(port)
        assert get(port, "/healthz", timeout=2).status == 200
        # a second TERM ends the delay (what the kubelet never sends)
        os.kill(d.pid, signal.SIGTERM)
        assert d.proc.wait(int(_key(_conf_text(k8s), "shutdown_timeout"))
                           + 3) == 0, d.log()
    finally:
        d.stop()


# --------------------------------------------------------------------------
# docker-compose.yml: the same checks, without Docker (tests/container/run.sh
# runs it for real)
# --------------------------------------------------------------------------

def _compose():
    with open(os.path.join(TOP, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


def _compose_conf_path(web):
    """The host file docker-compose.yml mounts as the image's config."""
    for v in web.get("volumes", []):
        src, dst = v.split(":")[:2]
        if dst == "/etc/hitcountd.conf":
            assert v.endswith(":ro"), v
            return os.path.join(TOP, src)
    raise AssertionError("docker-compose.yml mounts no /etc/hitcountd.conf")


def test_compose_publishes_no_metrics(hitcountd_bin, redis_server, tmp_path):
    web = _compose()["services"]["web"]
    with open(_compose_conf_path(web)) as f:
        text = f.read()
    # only the public port is published; the metrics one is exposed to
    # the Compose network (a Prometheus container), not to the host
    (published,) = web["ports"]
    assert published.endswith(":5000"), published
    mport = _port_of(_key(text, "metrics_listen"))
    assert [str(p) for p in web["expose"]] == [str(mport)]
    assert _port_of(_key(text, "listen")) == 5000
    # the image's command and health check read the mounted file
    assert "command" not in web
    assert web["healthcheck"]["test"][-1] == "/etc/hitcountd.conf"
    # the daemon on that file: /metrics only on the metrics port
    port, mp = free_port(), free_port()
    d = _start(hitcountd_bin, redis_server, tmp_path / "compose",
               _on_loopback(text, port, mp, redis_server.port), port)
    try:
        assert get(port, "/", timeout=5).status == 200
        assert get(port, "/metrics", timeout=5).status == 404
        assert get(mp, "/metrics", timeout=5).status == 200
    finally:
        d.stop()
