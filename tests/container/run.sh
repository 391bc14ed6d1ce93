#!/bin/bash
# tests/container/run.sh - the Dockerfile and docker-compose.yml on a real
# Docker engine, on a Debian 12 machine that cannot pull from Docker Hub.
#
#  1. installs docker.io, docker-compose, debootstrap and curl from Debian
#     when missing, and starts a private dockerd (own data-root, exec-root,
#     socket, no iptables, no default bridge, address pool 172.30.0.0/16)
#     that only this script uses (tests/container/lib-dockerd.sh, shared
#     with tests/systemd/run.sh);
#  2. makes debian:bookworm-slim locally (debootstrap --variant=minbase,
#     then docker import; the tarball is cached in $HITCOUNTD_CI_CACHE,
#     default /var/cache/hitcountd-ci, and shared with tests/systemd/run.sh),
#     and debian:trixie-slim the same way for the Dockerfile's build stage,
#     and builds a stand-in for the
#     official redis:7 image from Debian's redis-server
#     (tests/container/redis/), so that nothing is pulled;
#  3. runs the manual commands of the Flask + Redis document with hitcountd
#     as the web image: network create, run redis, build, run web, three
#     visits, the health check, docker logs, docker stop, cleanup; and
#     checks the image: only what runs (FROM scratch), at most 15 MB over
#     its base, TLS to Redis (-t with tls on, and counting over rediss://
#     against the stand-in on --tls-port), `docker run --read-only`
#     serving and healthy, and the
#     master's signals through `docker kill -s HUP / TTIN / TTOU`;
#  4. runs docker-compose.yml with Compose v1 (Debian 12's docker-compose
#     1.29) and v2 (Debian 13's, fetched by .ci/compose-v2, as `docker
#     compose`), checks named -v1 / -v2: build, depends_on/service_healthy,
#     both health checks, restart policy, persistence of the counter
#     across `down` + `up` (named volume, appendonly), graceful stop.
#
# Prints one "PASS name" / "FAIL name" line per check and a summary line
# "N passed, N failed"; exits 0 only if every check passed.  Everything it
# started (containers, networks, volumes, images, its dockerd and
# containerd) is removed or stopped, by PID, on every exit path.  Builds
# run with --network host: the private dockerd has no NAT.
#
# Usage (as root): tests/container/run.sh
# Environment:
#   HITCOUNTD_CI_CACHE      cache directory (default /var/cache/hitcountd-ci):
#                           the base rootfs tarball and Compose v2
#   HITCOUNTD_DEBIAN_MIRROR debootstrap mirror (default http://deb.debian.org/debian)
#   HITCOUNTD_ROOTFS_MAX_AGE_DAYS  rebuild the cached rootfs, fetch Compose
#                           v2 again, after this many days (30)
#   HITCOUNTD_CONTAINER_BUDGET  seconds the run may take before cleanup (900);
#                           every command is bounded by what is left of it
#   KEEP_LOGS=1             keep the log directory even when all passed
set -u
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

# Names used by the manual commands and the compose file.  REDIS_IMAGE
# must be the image name docker-compose.yml uses.
REDIS_IMAGE=redis:7
BASE_IMAGE=debian:bookworm-slim
# The Dockerfile's build stage: Debian 13, for hiredis 1.2 with TLS.
BUILD_IMAGE=debian:trixie-slim
WEB_IMAGE=hitcountd
NET=hitcountd-net
PROJECT=hitcountdct

t_start=$(date +%s)
budget=${HITCOUNTD_CONTAINER_BUDGET:-900}
deadline=$((t_start + budget))
npass=0
nfail=0
dir=
finished=
compose_used=

logs=$(mktemp -d /tmp/hitcountd-container-logs.XXXXXX)

. "$here/lib-checks.sh"
# Compose v1 (docker-compose 1.29, Debian 12) or v2 (`docker compose`,
# the CLI plugin of Debian 13's docker-compose in $DOCKER_CONFIG/cli-plugins),
# as compose_flavor says; bounded.
compose_flavor=v1
compose_cmd() {
	if [ "$compose_flavor" = v2 ]; then
		timeout "$(tmo)" /usr/bin/docker compose "$@"
	else
		timeout "$(tmo)" /usr/bin/docker-compose "$@"
	fi
}
compose() {
	compose_cmd -p "$PROJECT" \
	    -f "$top/docker-compose.yml" -f "$here/compose.build-host-network.yml" "$@"
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
http_get() {            # http_get PORT PATH: body on stdout
	curl -sS --max-time 5 "http://127.0.0.1:$1$2"
}
http_status() {         # http_status PORT PATH [curl args]: status code
	local port=$1 path=$2
	shift 2
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "http://127.0.0.1:$port$path"
}
health_is() {           # health_is CONTAINER STATUS
	[ "$(docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null)" = "$2" ]
}
redis_ready() {         # HEAD / is 200 once the web container reaches Redis
	[ "$(http_status "$1" / -I)" = 200 ]
}

. "$here/lib-dockerd.sh"

# ---------------------------------------------------------------- cleanup
cleanup() {
	[ -n "$finished" ] && return
	finished=1
	in_cleanup=1
	set +e
	if [ "$(date +%s)" -gt "$deadline" ]; then
		fail time-budget "over $budget s before cleanup"
	else
		pass time-budget
	fi
	echo "# cleanup"
	if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
		if [ -n "$compose_used" ]; then
			DT=120 compose down -v --rmi local -t 5 >> "$logs/cleanup.log" 2>&1
		fi
		if dockerd_purge "$logs/cleanup.log"; then
			pass cleanup-containers-volumes-networks-images
		else
			fail cleanup-containers-volumes-networks-images
		fi
		# Stop the private dockerd (it stops its containerd).
		if dockerd_stop; then
			pass dockerd-stopped
		else
			fail dockerd-stopped "did not stop on TERM within 30 s"
		fi
	fi
	if [ -n "${ip_forward_before:-}" ]; then
		if [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$ip_forward_before" ]; then
			pass host-ip-forward-unchanged
		else
			fail host-ip-forward-unchanged "restored to $ip_forward_before"
			echo "$ip_forward_before" > /proc/sys/net/ipv4/ip_forward
		fi
	fi
	dockerd_remove_dir "$dir"
	checks_finish
}
trap 'cleanup; [ "$nfail" -eq 0 ] && [ -n "$all_done" ]; exit $?' EXIT
trap 'fail interrupted "signal"; exit 1' INT TERM HUP
all_done=

abort() {               # a prerequisite failed: nothing after it can run
	fail "$1" "${2:-}"
	exit 1
}

# ------------------------------------------------------ 1. prerequisites
[ "$(id -u)" -eq 0 ] || abort prerequisites "must run as root (dockerd, debootstrap)"
missing=
for p in docker.io docker-compose debootstrap curl iproute2 python3; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
if [ -n "$missing" ]; then
	note "installing$missing"
	if ! { DEBIAN_FRONTEND=noninteractive timeout "$(DT=600 tmo)" apt-get update -qq &&
	    DEBIAN_FRONTEND=noninteractive timeout "$(DT=600 tmo)" apt-get install -y -qq \
	    --no-install-recommends $missing; } >> "$logs/apt.log" 2>&1; then
		tail -n 20 "$logs/apt.log"
		abort prerequisites "apt-get install$missing"
	fi
fi
note "$(/usr/sbin/dockerd --version), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"

# A private dockerd: short paths (unix socket length), no iptables and no
# ip_forward (the host's firewall and sysctls are left alone: containers
# on one bridge and the userland port proxy need neither), no default
# bridge (nothing left behind);
# user-defined bridge networks work as usual (from an address pool apart
# from a system dockerd's), builds use --network host.
ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
dir=$(mktemp -d /tmp/hcct.XXXXXX)
unset COMPOSE_FILE COMPOSE_PROJECT_NAME HITCOUNTD_PUBLISH
if dockerd_start "$dir" 172.30.0.0/16 "$logs/dockerd.log"; then
	pass dockerd-started
else
	tail -n 30 "$logs/dockerd.log"
	abort dockerd-started "no answer on $DOCKER_HOST within 60 s"
fi

# Compose v2: Debian 13's docker-compose (a Go CLI plugin that Debian
# 12's libc runs), fetched with a private apt state by .ci/compose-v2
# into $cache/compose-v2 (again after max_age days) and installed as a
# plugin of this run's DOCKER_CONFIG only: `docker compose`.
# DOCKER_BUILDKIT=0 makes it use the classic builder, like 1.29.
compose_v2=
v2dir=$cache/compose-v2
# (sources.list is written by each fetch, not by a use of the cache)
if [ -n "$(find "$v2dir/sources.list" -mtime +"$max_age" 2>/dev/null)" ]; then
	rm -rf "$v2dir/root"
fi
if v2=$(timeout "$(DT=300 tmo)" "$top/.ci/compose-v2" "$v2dir" 2> "$logs/compose-v2-fetch.log") &&
    mkdir -p "$DOCKER_CONFIG/cli-plugins" && ln -sf "$v2" "$DOCKER_CONFIG/cli-plugins/docker-compose" &&
    compose_v2=$(timeout 30 /usr/bin/docker compose version --short 2>> "$logs/compose-v2-fetch.log") &&
    [ -n "$compose_v2" ]; then
	pass compose-v2-plugin
	note "Compose v2: docker compose $compose_v2 ($v2)"
else
	compose_v2=
	fail compose-v2-plugin "see $logs/compose-v2-fetch.log"
	tail -n 20 "$logs/compose-v2-fetch.log" | sed 's/^/    /'
fi

# ---------------------------------------------------- 2. the base images
rootfs_tar=$cache/debian-bookworm-slim-rootfs.tar.gz
if rootfs_usable "$rootfs_tar" "$max_age"; then
	note "base rootfs from the cache: $rootfs_tar"
else
	note "debootstrap --variant=minbase bookworm (cached afterwards in $cache)"
	check debootstrap-rootfs rootfs_ensure "$rootfs_tar" "$mirror" "$max_age" "$dir"
	[ -s "$rootfs_tar" ] || abort base-image "no rootfs tarball"
fi
DT=300 check base-image-import docker import --change 'CMD ["bash"]' "$rootfs_tar" "$BASE_IMAGE"
build_tar=$cache/debian-trixie-slim-rootfs.tar.gz
if rootfs_usable "$build_tar" "$max_age"; then
	note "build-stage rootfs from the cache: $build_tar"
else
	note "debootstrap --variant=minbase trixie (cached afterwards in $cache)"
	check debootstrap-rootfs-trixie rootfs_ensure "$build_tar" "$mirror" "$max_age" "$dir" trixie
	[ -s "$build_tar" ] || abort build-image "no trixie rootfs tarball"
fi
DT=300 check build-image-import docker import --change 'CMD ["bash"]' "$build_tar" "$BUILD_IMAGE"
DT=900 check redis-standin-build docker build --network host -t "$REDIS_IMAGE" "$here/redis"
docker image inspect "$BASE_IMAGE" > /dev/null 2>&1 &&
    docker image inspect "$REDIS_IMAGE" > /dev/null 2>&1 ||
    abort base-images "$BASE_IMAGE or $REDIS_IMAGE missing"

# ---------------------------------- 3. the document's manual commands
note "manual commands: docker network create / run redis / build / run web"
port=$(free_port)
cd "$top" || abort top "cd $top"
check manual-network-create docker network create "$NET"
check manual-run-redis docker run -d --name redis --network "$NET" "$REDIS_IMAGE"
t0=$(date +%s)
DT=900 check manual-build docker build --network host -t "$WEB_IMAGE" .
note "docker build took $(($(date +%s) - t0)) s"
docker image inspect "$WEB_IMAGE" > /dev/null 2>&1 || abort manual-build "no image"
check manual-run-web docker run -d --name web --network "$NET" \
    -p "127.0.0.1:$port:5000" "$WEB_IMAGE"
port_ro=$(free_port)
check readonly-run-web docker run -d --read-only --name web-ro --network "$NET" \
    -p "127.0.0.1:$port_ro:5000" "$WEB_IMAGE"

check manual-web-answers wait_for 30 http_get "$port" /healthz
check manual-web-reaches-redis wait_for 30 redis_ready "$port"
for n in 1 2 3; do
	body=$(http_get "$port" /)
	if [ "$body" = "Page visited $n times" ]; then
		pass "manual-visit-$n"
	else
		fail "manual-visit-$n" "got: $body"
	fi
done
v=$(docker exec redis redis-cli GET visits 2>&1)
[ "$v" = 3 ] && pass manual-redis-cli-get-visits || fail manual-redis-cli-get-visits "got: $v"
ps_out=$(docker ps --format '{{.Names}} {{.Image}} {{.Status}}')
echo "$ps_out" | sed 's/^/# docker ps: /'
echo "$ps_out" | grep -q "^web $WEB_IMAGE Up" && echo "$ps_out" | grep -q "^redis $REDIS_IMAGE Up" &&
    pass manual-docker-ps-both-up || fail manual-docker-ps-both-up

# The image: non-root, hitcountd as PID 1 in exec form.  There is no
# shell in it (FROM scratch), so processes are looked at from the host:
# docker top, and /proc of the container's PID 1 (this script is root).
hpid=$(docker inspect -f '{{.State.Pid}}' web)
uids=$(docker top web -o pid,uid 2>&1 | awk 'NR > 1 {print $2}' | sort -u | tr '\n' ' ')
[ "$uids" = "10001 " ] && pass image-runs-as-non-root || fail image-runs-as-non-root "uids: $uids"
pid1=$(tr '\0' ' ' < "/proc/$hpid/cmdline" 2>&1)
pid1_uid=$(awk '/^Uid:/ {print $2}' "/proc/$hpid/status" 2>&1)
pid1_ns=$(awk '/^NSpid:/ {print $NF}' "/proc/$hpid/status" 2>&1)
case $pid1 in
"/usr/local/sbin/hitcountd -D -f /etc/hitcountd.conf ")
	[ "$pid1_uid" = 10001 ] && [ "$pid1_ns" = 1 ] && pass image-pid1-is-hitcountd ||
	    fail image-pid1-is-hitcountd "uid $pid1_uid, pid $pid1_ns in the container" ;;
*) fail image-pid1-is-hitcountd "PID 1: $pid1" ;;
esac
ep=$(docker image inspect -f '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.ExposedPorts}} {{.Config.User}}' "$WEB_IMAGE")
note "image: $ep"
[ "$ep" = '["/usr/local/sbin/hitcountd"] ["-D","-f","/etc/hitcountd.conf"] {"5000/tcp":{}} 10001:10001' ] &&
    pass image-exec-form-entrypoint-expose-user || fail image-exec-form-entrypoint-expose-user "$ep"
hc=$(docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$WEB_IMAGE")
[ "$hc" = '["CMD","/usr/local/sbin/hitcountd","-H","-f","/etc/hitcountd.conf"]' ] &&
    pass image-healthcheck-without-curl || fail image-healthcheck-without-curl "$hc"
# TLS to Redis is built in: -t accepts tls = true with a CA file that
# OpenSSL reads (a build without hiredis_ssl refuses tls = true), and
# reports a file that is not a certificate, by name.
image_tls() {
	local d
	d=$(mktemp -d "$logs/tls.XXXXXX") || return 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	    -nodes -days 2 -subj /CN=ca -keyout "$d/ca.key" -out "$d/ca.crt" \
	    2> /dev/null || return 1
	echo 'not a certificate' > "$d/bad.crt"
	printf 'redis {\n    tls = true\n    tls_ca_file = "/tls/%s"\n}\n' \
	    ca.crt > "$d/good.conf"
	printf 'redis {\n    tls = true\n    tls_ca_file = "/tls/%s"\n}\n' \
	    bad.crt > "$d/bad.conf"
	chmod 0755 "$d" && chmod 0644 "$d"/*
	docker run --rm --network none -v "$d:/tls:ro" "$WEB_IMAGE" \
	    -t -f /tls/good.conf || return 1
	! docker run --rm --network none -v "$d:/tls:ro" "$WEB_IMAGE" \
	    -t -f /tls/bad.conf > "$d/bad.out" 2>&1 || return 1
	cat "$d/bad.out"
	grep -q "option 'tls_ca_file': /tls/bad.crt: " "$d/bad.out"
}
# Only what runs: the binary, the shared libraries and loader, the
# configuration, passwd/group/nsswitch.conf, the CA bundle (for TLS to
# Redis) and the copyright files; nothing else (no shell, curl, compiler, package manager).  The
# files of a created container, less what Docker itself adds to every
# container (/.dockerenv, /etc/hosts, mtab etc., /dev, /proc, /sys).
image_files() {
	local c rc
	c=$(docker create --network none "$WEB_IMAGE") || return 1
	docker export "$c" | tar -t > "$logs/image-files.txt"
	rc=$?
	docker rm "$c" > /dev/null
	[ "$rc" = 0 ] || return 1
	sed 's,^\./,,; s,/$,,' "$logs/image-files.txt" | sort -u |
	    grep -Ev '^(\.dockerenv|etc/(hosts|hostname|resolv\.conf|mtab)|dev(/.*)?|proc|sys)$' > "$logs/image-files-own.txt"
	cat "$logs/image-files-own.txt"
	! grep -Ev '^(etc|lib|lib64|usr|usr/local|usr/local/sbin|usr/share|usr/share/doc|usr/share/doc/[^/]+|(usr/)?lib/x86_64-linux-gnu|etc/(hitcountd\.conf|passwd|group|nsswitch\.conf)|etc/ssl|etc/ssl/certs|etc/ssl/certs/ca-certificates\.crt|usr/lib|usr/lib/ssl|usr/lib/ssl/cert\.pem|usr/local/sbin/hitcountd|lib64/ld-linux-x86-64\.so\.2|(usr/)?lib/x86_64-linux-gnu/lib(c|hiredis|hiredis_ssl|ssl|crypto|z|zstd|confuse|event-2\.1)\.so[.0-9]*|usr/share/doc/[^/]+/copyright|var|var/lib|var/lib/dpkg|var/lib/dpkg/status\.d|var/lib/dpkg/status\.d/[^/]+)$' \
	    "$logs/image-files-own.txt"
}
# A scanner's view: a dpkg status entry, with its version, for each
# package whose libraries the image copies (glibc, OpenSSL, hiredis...).
image_dpkg_status() {
	local c p
	c=$(docker create --network none "$WEB_IMAGE") || return 1
	docker export "$c" | tar -x -C "$dir/image-fs" --wildcards 'var/lib/dpkg/*'
	docker rm "$c" > /dev/null
	for p in libc6 libhiredis libssl libconfuse libevent; do
		ls "$dir/image-fs/var/lib/dpkg/status.d/" | grep -q "^$p" || {
			echo "no dpkg status entry for $p"
			return 1
		}
	done
	grep -h '^Package:\|^Version:' "$dir/image-fs/var/lib/dpkg/status.d/"*
}
check image-holds-only-what-runs image_files
mkdir -p "$dir/image-fs"
check image-has-dpkg-status-for-scanners image_dpkg_status
check image-has-binary-and-config sh -c "timeout 60 /usr/bin/docker run --rm --network none $WEB_IMAGE -t -f /etc/hitcountd.conf &&
    timeout 60 /usr/bin/docker run --rm --network none $WEB_IMAGE -V"
check image-has-tls image_tls
# The image counting over TLS: rediss:// to the redis:7 stand-in
# (Debian's redis-server, built with TLS) on --tls-port only, its
# certificate from a CA made here, mounted with a configuration that
# names it.  The stand-in answers nothing in plain text.
tls_counts() {
	local d p body
	d=$(mktemp -d "$logs/tls-redis.XXXXXX") || return 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	    -nodes -days 2 -subj /CN=ca -keyout "$d/ca.key" -out "$d/ca.crt" \
	    2> /dev/null &&
	    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	    -nodes -subj /CN=redis-tls -keyout "$d/srv.key" -out "$d/srv.csr" \
	    2> /dev/null &&
	    printf 'subjectAltName=DNS:redis-tls\n' > "$d/san.ext" &&
	    openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
	    -CAcreateserial -days 2 -out "$d/srv.crt" -extfile "$d/san.ext" \
	    2> /dev/null || return 1
	printf '%s\n' 'listen = {"0.0.0.0:5000"}' 'pidfile = ""' \
	    'redis {' '    tls_ca_file = "/tls/ca.crt"' '}' > "$d/web.conf"
	chmod 0755 "$d" && chmod 0644 "$d"/*      # the stand-in runs as redis
	docker run -d --name redis-tls --network "$NET" -v "$d:/tls:ro" \
	    "$REDIS_IMAGE" --port 0 --tls-port 6380 \
	    --tls-cert-file /tls/srv.crt --tls-key-file /tls/srv.key \
	    --tls-ca-cert-file /tls/ca.crt --tls-auth-clients no || return 1
	p=$(free_port)
	docker run -d --name web-tls --network "$NET" -v "$d:/tls:ro" \
	    -p "127.0.0.1:$p:5000" -e REDIS_URL=rediss://redis-tls:6380 \
	    "$WEB_IMAGE" -D -f /tls/web.conf || return 1
	wait_for 30 redis_ready "$p" || { docker logs web-tls; return 1; }
	for n in 1 2; do
		body=$(http_get "$p" /)
		echo "GET /: $body"
		[ "$body" = "Page visited $n times" ] || return 1
	done
	docker logs web-tls 2>&1 | tee "$d/web.log" | grep -q 'over TLS' &&
	    [ "$(docker exec redis-tls redis-cli --tls --cacert /tls/ca.crt \
	    -h redis-tls -p 6380 GET visits)" = 2 ]
}
check image-counts-over-tls tls_counts
docker rm -f web-tls redis-tls > /dev/null 2>&1
# The runtime stage's size over the image it starts from: the whole
# image when that is scratch (no layer in common with the base), else
# what it adds to debian:bookworm-slim.  At most 15 MB.
web_size=$(docker image inspect -f '{{.Size}}' "$WEB_IMAGE")
base_size=$(docker image inspect -f '{{.Size}}' "$BASE_IMAGE")
base_l1=$(docker image inspect -f '{{index .RootFS.Layers 0}}' "$BASE_IMAGE")
web_l1=$(docker image inspect -f '{{index .RootFS.Layers 0}}' "$WEB_IMAGE")
if [ "$base_l1" = "$web_l1" ]; then over=$((web_size - base_size)); else over=$web_size; fi
note "image size: $(awk -v b="$web_size" 'BEGIN {printf "%.1f MB", b/1e6}'), base $BASE_IMAGE" \
    "$(awk -v b="$base_size" 'BEGIN {printf "%.1f MB", b/1e6}'), over the base" \
    "$(awk -v b="$over" 'BEGIN {printf "%.2f MB", b/1e6}')$([ "$base_l1" = "$web_l1" ] || echo ' (FROM scratch)')"
[ -n "$web_size" ] && [ -n "$base_size" ] && [ "$over" -le 15000000 ] &&
    pass image-size-at-most-15mb-over-base || fail image-size-at-most-15mb-over-base "$over bytes"

# docker run --read-only: the daemon writes nothing (no pidfile, logs
# and access log on stderr, metrics in shared anonymous memory), so no
# --tmpfs.  Started with web, so that both health checks run meanwhile.
check readonly-web-healthcheck-healthy wait_for 45 health_is web-ro healthy
ro=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.State.Running}} {{.RestartCount}}' web-ro)
[ "$ro" = "true true 0" ] && pass readonly-rootfs-running || fail readonly-rootfs-running "$ro"
check readonly-web-reaches-redis wait_for 30 redis_ready "$port_ro"
v0=$(docker exec redis redis-cli GET visits 2>&1)
body=$(http_get "$port_ro" /)
v1=$(docker exec redis redis-cli GET visits 2>&1)
[ "$body" = "Page visited $((v0 + 1)) times" ] && [ "$v1" = $((v0 + 1)) ] &&
    pass readonly-web-serves-visits || fail readonly-web-serves-visits "$v0 then $body, $v1"
docker logs web-ro > "$logs/web-ro.log" 2>&1
if grep -q '^hitcountd\[1\]: info: hitcountd 0\.1\.0 started' "$logs/web-ro.log" &&
    ! grep -Eiq 'read-only|warn|error' "$logs/web-ro.log"; then
	pass readonly-logs-no-errors
else
	fail readonly-logs-no-errors "see $logs/web-ro.log"
fi
t0=$(date +%s%N)
docker stop web-ro > /dev/null 2>&1
ms=$((($(date +%s%N) - t0) / 1000000))
code=$(docker inspect -f '{{.State.ExitCode}}' web-ro)
[ "$code" = 0 ] && [ "$ms" -lt 5000 ] && pass readonly-docker-stop-graceful ||
    fail readonly-docker-stop-graceful "${ms} ms, exit code $code"
docker rm web-ro > /dev/null 2>&1

# The HEALTHCHECK of the Dockerfile (interval 10 s).
check manual-web-healthcheck-healthy wait_for 45 health_is web healthy

# .dockerignore: the context holds no .git and no build output (the
# in-tree build, if any, is in $top).
check dockerignore-keeps-outputs-out docker build --network none --no-cache \
    -t hitcountd-context-check -f - . <<-EOF
	FROM $BASE_IMAGE
	COPY . /ctx
	RUN ls -A /ctx /ctx/src && test ! -e /ctx/.git && test ! -e /ctx/src/hitcountd && \
	    test ! -e /ctx/Makefile && test ! -e /ctx/configure && test ! -e /ctx/config.status && \
	    test -z "\$(find /ctx -name '*.o' -o -name '*.log' -o -name '*.tar.gz' -o -name .deps)" && \
	    test ! -e /ctx/tests && test ! -e /ctx/Dockerfile && test -f /ctx/src/main.c && test -f /ctx/configure.ac && \
	    test -f /ctx/etc/hitcountd-container.conf && test -f /ctx/m4/.gitkeep
	EOF
docker rmi -f hitcountd-context-check > /dev/null 2>&1

# Layer caching: a changed source file rebuilds from the sources on;
# the dependency layers (apt-get, autogen) come from the cache.  Built
# from a copy of the context with one source file touched.
layer_cache() {
	local ctx="$dir/ctx" out="$logs/layer-cache-build.out"
	rm -rf "$ctx" && mkdir -p "$ctx" &&
	    tar -C "$top" --exclude=./.git -c . | tar -C "$ctx" -x &&
	    echo '/* layer cache test */' >> "$ctx/src/main.c" || return 1
	DT=600 docker build --network host -t hitcountd-layercache "$ctx" > "$out" 2>&1 || return 1
	# classic builder: "Step i/n : INSTR" followed by " ---> Using cache"
	awk '/^Step [0-9]+\/[0-9]+ : /{step=$0; sub(/^Step [0-9]+\/[0-9]+ : /, "", step); next}
	     / ---> Using cache/ {print "CACHED " step; step=""; next}
	     / ---> Running in / {if (step != "") print "RAN " step; step=""}' "$out"
}
lc=$(layer_cache)
echo "$lc" > "$logs/layer-cache.log"
if echo "$lc" | grep -q '^CACHED RUN apt-get update.*libhiredis-dev' &&
    echo "$lc" | grep -q '^CACHED RUN ./autogen.sh' &&
    echo "$lc" | grep -q '^RAN RUN ./configure'; then
	pass dockerfile-layer-cache-deps-before-sources
else
	fail dockerfile-layer-cache-deps-before-sources "see $logs/layer-cache.log"
	sed 's/^/    /' "$logs/layer-cache.log"
fi
docker rmi -f hitcountd-layercache > /dev/null 2>&1
rm -rf "$dir/ctx"

# Signals to PID 1, as under systemd (ExecReload: hitcountd -t, then
# kill -HUP $MAINPID): HUP starts a new generation of workers and stops
# the old one; TTIN adds a worker, TTOU takes one away.  Observed from
# the host (the master's children in docker top) and on /metrics
# (hitcountd_workers, hitcountd_reloads_total); visits go on counting.
note "signals: docker kill -s HUP / TTIN / TTOU web"
workers_of() {          # workers_of CONTAINER: host PIDs of the master's children
	local m
	m=$(docker inspect -f '{{.State.Pid}}' "$1") || return 1
	docker top "$1" -o pid,ppid | awk -v m="$m" 'NR > 1 && $2 == m {print $1}' | sort -n | tr '\n' ' '
}
metric() {              # metric PORT NAME: its value on /metrics
	http_get "$1" /metrics | awk -v n="$2" '$1 == n {print $2; exit}'
}
nworkers() { workers_of web | wc -w; }
visit_counted() {       # visit_counted PORT: GET / answers the next count
	local v0 body v1
	v0=$(docker exec redis redis-cli GET visits) || return 1
	body=$(http_get "$1" /)
	v1=$(docker exec redis redis-cli GET visits)
	echo "visits $v0, GET / answered: $body, visits $v1"
	[ "$body" = "Page visited $((v0 + 1)) times" ] && [ "$v1" = $((v0 + 1)) ]
}
nw=$(docker logs web 2>&1 | sed -n 's/^hitcountd\[1\]: info: hitcountd .* started, \([0-9]*\) workers$/\1/p' | head -n 1)
w0=$(workers_of web)
master0=$(docker inspect -f '{{.State.Pid}} {{.RestartCount}}' web)
note "workers of web (host PIDs): $w0 (configured: ${nw:-?})"
if [ -n "$nw" ] && [ "$(nworkers)" = "$nw" ] && [ "$(metric "$port" hitcountd_workers)" = "$nw" ]; then
	pass signal-workers-as-configured
else
	fail signal-workers-as-configured "docker top: $w0, metrics: $(metric "$port" hitcountd_workers), log: $nw"
	nw=$(nworkers)
fi
hup_done() {            # as many workers, none of the old ones, one reload
	local now p
	now=$(workers_of web)
	echo "workers: $now"
	[ "$(echo $now | wc -w)" = "$nw" ] || return 1
	for p in $now; do
		case " $w0 " in *" $p "*) return 1 ;; esac
	done
	[ "$(metric "$port" 'hitcountd_reloads_total{result="success"}')" = 1 ] &&
	    [ "$(metric "$port" hitcountd_workers)" = "$nw" ] &&
	    [ "$(docker inspect -f '{{.State.Pid}} {{.RestartCount}}' web)" = "$master0" ]
}
check signal-hup-config-test docker exec web /usr/local/sbin/hitcountd -t -f /etc/hitcountd.conf
docker kill -s HUP web > /dev/null
check signal-hup-replaces-workers wait_for 20 hup_done
check signal-hup-visits-go-on visit_counted "$port"
check signal-hup-logged sh -c "timeout 30 /usr/bin/docker logs web > '$logs/web-hup.log' 2>&1 &&
    grep -q '^hitcountd\[1\]: info: reload succeeded: $nw workers of generation [0-9]* serving' '$logs/web-hup.log'"
docker kill -s TTIN web > /dev/null
n_is() {                # n_is N: N workers in docker top and on /metrics
	[ "$(nworkers)" = "$1" ] && [ "$(metric "$port" hitcountd_workers)" = "$1" ]
}
check signal-ttin-adds-worker wait_for 15 n_is $((nw + 1))
check signal-ttin-visits-go-on visit_counted "$port"
docker kill -s TTOU web > /dev/null
check signal-ttou-removes-worker wait_for 15 n_is "$nw"
check signal-ttou-visits-go-on visit_counted "$port"
check signal-ttin-ttou-logged sh -c "timeout 30 /usr/bin/docker logs web > '$logs/web-signals.log' 2>&1 &&
    grep -q '^hitcountd\[1\]: info: TTIN: $((nw + 1)) workers' '$logs/web-signals.log' &&
    grep -q '^hitcountd\[1\]: info: TTOU: $nw workers' '$logs/web-signals.log'"

# docker logs web: hitcountd's own lines, from PID 1, on stderr.
docker logs web > "$logs/web-before-stop.log" 2>&1
if grep -q '^hitcountd\[1\]: info: hitcountd 0\.1\.0 started, [0-9]* workers' "$logs/web-before-stop.log" &&
    grep -q '^hitcountd\[[0-9]*\]: info: worker started' "$logs/web-before-stop.log"; then
	pass manual-docker-logs-web
else
	fail manual-docker-logs-web "$(head -c 300 "$logs/web-before-stop.log")"
fi

# docker stop web: TERM to PID 1, graceful exit 0, well under the 10 s
# after which Docker would SIGKILL (exit 137).
t0=$(date +%s%N)
docker stop web > /dev/null 2>&1
ms=$((($(date +%s%N) - t0) / 1000000))
code=$(docker inspect -f '{{.State.ExitCode}}' web)
note "docker stop web: ${ms} ms, exit code $code"
[ "$code" = 0 ] && [ "$ms" -lt 5000 ] && pass manual-docker-stop-web-graceful ||
    fail manual-docker-stop-web-graceful "${ms} ms, exit code $code"
docker logs web > "$logs/web-after-stop.log" 2>&1
grep -q 'graceful stop' "$logs/web-after-stop.log" && pass manual-docker-logs-graceful-stop ||
    fail manual-docker-logs-graceful-stop "no 'graceful stop' in docker logs web"
sed 's/^/# docker logs web: /' "$logs/web-after-stop.log" | head -n 12

# The document's cleanup commands.  Like the official image, the
# stand-in declares VOLUME /data, so `docker rm` without -v leaves the
# redis container's anonymous volume behind; it is removed here.
redis_vols=$(docker inspect -f '{{range .Mounts}}{{.Name}} {{end}}' redis)
check manual-cleanup sh -c "timeout 60 /usr/bin/docker stop web redis &&
    timeout 60 /usr/bin/docker rm web redis &&
    timeout 60 /usr/bin/docker network rm $NET &&
    timeout 60 /usr/bin/docker rmi $WEB_IMAGE"
[ -n "$redis_vols" ] && note "docker rm web redis left the anonymous volume of /data: $redis_vols" &&
    docker volume rm $redis_vols > /dev/null 2>&1

# ------------------------------------------------- 4. docker-compose.yml
# The same checks with Compose v1 (Debian 12's docker-compose 1.29) and
# Compose v2 (Debian 13's, run as `docker compose`); check names end in
# -v1 / -v2.  Each run ends with `down -v --rmi local`.
compose_suite() {
	local cv=$1 cport n body t0 t_up web_c redis_c rh ws web_n redis_n pol envs pub aof mnt hpid codes ms vols
	compose_flavor=$cv
	note "docker-compose.yml with $(DT=30 compose_cmd version 2>/dev/null | head -n 1)"
	cport=$(free_port)
	export HITCOUNTD_PUBLISH="127.0.0.1:$cport"
	compose_used=1
	# As users run it: the file alone, no variables (port 5000 on all
	# addresses), validated by Compose itself (1.29 against the Compose
	# Specification schema it carries, compose/config/compose_spec.json;
	# v2 with compose-go) and read back from its `config` output.
	users_config() {
		(unset HITCOUNTD_PUBLISH; DT=60 compose_cmd -f "$top/docker-compose.yml" config) \
		    > "$logs/compose-config-users-$cv.yml" &&
		    ! grep -q '^version:' "$top/docker-compose.yml" &&
		    python3 - "$logs/compose-config-users-$cv.yml" <<-'PY'
		import sys, yaml
		c = yaml.safe_load(open(sys.argv[1]))
		web, redis = c["services"]["web"], c["services"]["redis"]
		(p,) = web["ports"]
		assert p == "5000:5000" or (p["target"] == 5000 and int(p["published"]) == 5000
		                            and "host_ip" not in p), p
		# v2 adds "required: true" (the default) to each dependency.
		(dep,) = web["depends_on"].items()
		assert dep[0] == "redis" and dep[1]["condition"] == "service_healthy", dep
		assert dep[1].get("required", True) is True, dep
		assert web["restart"] == redis["restart"] == "unless-stopped"
		assert web["environment"] == {"REDIS_HOST": "redis", "REDIS_PORT": "6379"}, web["environment"]
		assert "network" not in web["build"], web["build"]
		assert redis["image"] == "redis:7"
		# /metrics: on port 9100 of etc/hitcountd-compose.conf, mounted
		# as the image's configuration, exposed but not published (v1
		# writes a volume as a string, v2 as a mapping).
		assert [str(p) for p in web["expose"]] == ["9100"], web["expose"]
		(v,) = web["volumes"]
		if isinstance(v, str):
		    src, dst, mode = v.rsplit(":", 2)
		    assert mode == "ro", v
		else:
		    src, dst = v["source"], v["target"]
		    assert v["type"] == "bind" and v["read_only"] is True, v
		assert src.endswith("/etc/hitcountd-compose.conf") and dst == "/etc/hitcountd.conf", v
		assert redis["command"] == ["redis-server", "--appendonly", "yes"]
		assert "redis-data" in c["volumes"]
		for s in (web, redis):
		    assert s["healthcheck"]["test"][0] == "CMD", s["healthcheck"]
		print("ok")
		PY
	}
	check "compose-file-valid-as-users-run-it-$cv" users_config
	check "compose-config-valid-with-test-override-$cv" compose config -q
	compose config > "$logs/compose-config-$cv.yml" 2>&1
	# The web image built by Compose itself, with no cache, so that its
	# apt-get really runs (it can only reach the archive through the
	# build's network: host of the override).
	t0=$(date +%s)
	DT=900 check "compose-build-no-cache-$cv" compose build --no-cache web
	note "compose build --no-cache ($cv) took $(($(date +%s) - t0)) s"
	t_up=$(date +%s)
	DT=900 check "compose-up-$cv" compose up -d --build
	web_c=$(compose ps -q web)
	redis_c=$(compose ps -q redis)
	note "compose up ($cv) took $(($(date +%s) - t_up)) s"
	if [ -z "$web_c" ] || [ -z "$redis_c" ]; then
		fail "compose-containers-$cv" "web or redis missing"
		return 1
	fi
	# v1 names containers project_service_1, v2 project-service-1.
	web_n=$(docker inspect -f '{{.Name}}' "$web_c" | sed 's,^/,,')
	redis_n=$(docker inspect -f '{{.Name}}' "$redis_c" | sed 's,^/,,')
	note "containers: $web_n $redis_n"

	check "compose-web-reaches-redis-$cv" wait_for 60 redis_ready "$cport"
	for n in 1 2 3; do
		body=$(http_get "$cport" /)
		[ "$body" = "Page visited $n times" ] && pass "compose-visit-$n-$cv" ||
		    fail "compose-visit-$n-$cv" "got: $body"
	done
	check "compose-redis-healthcheck-healthy-$cv" wait_for 60 health_is "$redis_c" healthy
	check "compose-web-healthcheck-healthy-$cv" wait_for 60 health_is "$web_c" healthy

	# depends_on condition: service_healthy: web started only after the
	# redis container reported healthy.
	docker events --since "$t_up" --until "$(date +%s)" \
	    --format '{{.TimeNano}} {{.Status}} {{.Actor.Attributes.name}}' > "$logs/compose-events-$cv.log" 2>&1
	rh=$(awk -v n="$redis_n" '$2 == "health_status:" && $3 == "healthy" && $4 == n {print $1; exit}' "$logs/compose-events-$cv.log")
	ws=$(awk -v n="$web_n" '$2 == "start" && $3 == n {print $1; exit}' "$logs/compose-events-$cv.log")
	if [ -n "$rh" ] && [ -n "$ws" ] && [ "$ws" -ge "$rh" ]; then
		pass "compose-depends-on-service-healthy-$cv"
	else
		fail "compose-depends-on-service-healthy-$cv" "redis healthy at ${rh:-?}, web started at ${ws:-?}"
		cat "$logs/compose-events-$cv.log"
	fi

	pol=$(docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' "$web_c" "$redis_c" | tr '\n' ' ')
	[ "$pol" = "unless-stopped unless-stopped " ] && pass "compose-restart-unless-stopped-$cv" ||
	    fail "compose-restart-unless-stopped-$cv" "$pol"
	envs=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$web_c")
	echo "$envs" | grep -qx REDIS_HOST=redis && echo "$envs" | grep -qx REDIS_PORT=6379 &&
	    pass "compose-web-redis-env-$cv" || fail "compose-web-redis-env-$cv" "$(echo $envs)"
	pub=$(docker port "$web_c" 5000/tcp)
	[ "$pub" = "127.0.0.1:$cport" ] && pass "compose-web-published-5000-$cv" ||
	    fail "compose-web-published-5000-$cv" "$pub"
	# /metrics: 404 on the published port, not published itself, served
	# on port 9100 to the project's network (reached from the host on
	# the container's address on the bridge).
	code=$(http_status "$cport" /metrics)
	[ "$code" = 404 ] && pass "compose-metrics-not-on-public-port-$cv" ||
	    fail "compose-metrics-not-on-public-port-$cv" "GET /metrics on $cport: $code"
	if docker port "$web_c" 9100/tcp > /dev/null 2>&1; then
		fail "compose-metrics-port-not-published-$cv" "$(docker port "$web_c" 9100/tcp)"
	else
		pass "compose-metrics-port-not-published-$cv"
	fi
	wip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$web_c")
	if [ -n "$wip" ] && curl -sS --max-time 5 "http://$wip:9100/metrics" |
	    grep -q '^hitcountd_workers '; then
		pass "compose-metrics-on-network-port-$cv"
	else
		fail "compose-metrics-on-network-port-$cv" "web at ${wip:-?}:9100"
	fi
	aof=$(docker exec "$redis_c" redis-cli CONFIG GET appendonly | tr '\n' ' ')
	mnt=$(docker inspect -f '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}' "$redis_c")
	if [ "$aof" = "appendonly yes " ] && [ "$mnt" = "volume ${PROJECT}_redis-data /data" ] &&
	    docker exec "$redis_c" test -d /data/appendonlydir; then
		pass "compose-redis-appendonly-named-volume-$cv"
	else
		fail "compose-redis-appendonly-named-volume-$cv" "$aof / $mnt"
	fi
	# PID 1 of the container, seen from the host (no shell in the image).
	hpid=$(docker inspect -f '{{.State.Pid}}' "$web_c")
	[ "$(awk '/^NSpid:/ {print $NF}' "/proc/$hpid/status" 2>/dev/null)" = 1 ] &&
	    [ "$(cat "/proc/$hpid/comm" 2>/dev/null)" = hitcountd ] &&
	    pass "compose-web-pid1-is-hitcountd-$cv" || fail "compose-web-pid1-is-hitcountd-$cv"

	# restart: unless-stopped: hitcountd killed (not by docker stop) comes back.
	restarted() {
		[ "$(docker inspect -f '{{.State.Running}} {{.RestartCount}}' "$web_c")" = "true 1" ] &&
		    redis_ready "$cport"
	}
	if [ -n "$hpid" ] && [ "$hpid" -gt 1 ] && kill -KILL "$hpid" && wait_for 30 restarted; then
		body=$(http_get "$cport" /)
		[ "$body" = "Page visited 4 times" ] && pass "compose-web-restarted-after-crash-$cv" ||
		    fail "compose-web-restarted-after-crash-$cv" "after restart: $body"
	else
		fail "compose-web-restarted-after-crash-$cv" "$(docker inspect -f '{{.State.Status}} {{.RestartCount}}' "$web_c")"
	fi

	compose logs --no-color web > "$logs/compose-web-logs-$cv.log" 2>&1
	grep -q 'hitcountd\[1\]: info: hitcountd 0\.1\.0 started' "$logs/compose-web-logs-$cv.log" &&
	    pass "compose-logs-web-$cv" || fail "compose-logs-web-$cv"

	# Graceful stop of both services.
	t0=$(date +%s%N)
	DT=60 compose stop > "$logs/compose-stop-$cv.log" 2>&1
	ms=$((($(date +%s%N) - t0) / 1000000))
	codes=$(docker inspect -f '{{.State.ExitCode}}' "$web_c" "$redis_c" | tr '\n' ' ')
	note "compose stop ($cv): ${ms} ms, exit codes (web redis) $codes"
	[ "$codes" = "0 0 " ] && [ "$ms" -lt 10000 ] && pass "compose-stop-graceful-$cv" ||
	    fail "compose-stop-graceful-$cv" "${ms} ms, exit codes $codes"

	# Persistence: `down` removes the containers and the network, keeps
	# the named volume; `up` again and the counter goes on from 4.
	check "compose-down-$cv" compose down -t 5
	vols=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
	[ "$vols" = "${PROJECT}_redis-data" ] && pass "compose-down-keeps-volume-$cv" ||
	    fail "compose-down-keeps-volume-$cv" "volumes: $(echo $vols)"
	[ -z "$(docker ps -aq)" ] && pass "compose-down-removes-containers-$cv" ||
	    fail "compose-down-removes-containers-$cv"
	DT=300 check "compose-up-again-$cv" compose up -d
	check "compose-web-reaches-redis-again-$cv" wait_for 60 redis_ready "$cport"
	body=$(http_get "$cport" /)
	[ "$body" = "Page visited 5 times" ] && pass "compose-counter-survives-down-up-$cv" ||
	    fail "compose-counter-survives-down-up-$cv" "got: $body"

	# down -v: the volume goes too, and the image Compose built.
	DT=120 check "compose-down-volumes-images-$cv" compose down -v --rmi local -t 5
	[ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] &&
	    [ -z "$(docker ps -aq)" ] && [ -z "$(docker images -q --filter "reference=${PROJECT}?web")" ] &&
	    pass "compose-down-v-removes-volume-$cv" || fail "compose-down-v-removes-volume-$cv"
	compose_used=
}
compose_suite v1
if [ -n "$compose_v2" ]; then
	compose_suite v2
fi

all_done=1
exit 0
