#!/bin/bash
# tests/debian/run.sh - hitcountd's Debian package on a real Debian 12 with
# systemd as PID 1, in a container of a private Docker engine (as
# tests/systemd/run.sh, whose boot flags it uses; the machine cannot pull
# images, and the container has no network).
#
#  1. builds the package twice with .ci/deb: VERSION and VERSION+ci1 (the
#     upgrade), both lintian clean;
#  2. starts a private dockerd (tests/container/lib-dockerd.sh; its own
#     data directory, socket and address pool, so the other Docker tests
#     can run at the same time), imports the cached debootstrapped
#     bookworm rootfs and builds tests/debian/Dockerfile: systemd, Redis
#     from Debian, the package's dependencies, curl and wrk;
#     before that, the README's quick start: in a fresh bookworm container
#     (the base image, nothing added), in a copy of the source tree, the
#     README's run command taken from README.md; `make run` then serves
#     "Page visited 1 times", then 2, and no test-only package (chromium,
#     valgrind, nginx-light, prometheus) was installed;
#  3. boots it and checks, as an administrator would see it:
#     `apt install ./hitcountd_VERSION_amd64.deb` enables and starts the
#     service, which serves, active, with workers as the package's user;
#     the conffile; logrotate reopens the access log with USR1 to the
#     master only; with the conffile edited, `apt install` of the higher
#     version under wrk load: 0 failed requests, the conffile kept, the
#     new binary serving (binary upgrade, MainPID moved); remove stops the
#     service and keeps the configuration; purge removes the user, group,
#     /etc/hitcountd and the logs;
#  4. builds the package on Debian 13 (tests/debian/Dockerfile.trixie, from
#     the debootstrapped trixie rootfs tests/container/run.sh caches too):
#     hiredis 1.2 with TLS (libhiredis_ssl linked), lintian clean.
#
# One "PASS name" / "FAIL name" line per check, then "N passed, N failed";
# exits 0 only if every check passed.  Everything it started is stopped by
# PID or removed on every exit path.
#
# Usage (as root): tests/debian/run.sh [quickstart]
#   quickstart: only the engine, the base image and the quick start checks.
# Environment: HITCOUNTD_CI_CACHE, HITCOUNTD_DEBIAN_MIRROR,
#   HITCOUNTD_ROOTFS_MAX_AGE_DAYS (as tests/systemd/run.sh),
#   HITCOUNTD_DEBIAN_BUDGET (seconds, default 1500),
#   HITCOUNTD_DEBIAN_POOL (default 172.31.0.0/16), KEEP_LOGS=1.
set -u
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
pool=${HITCOUNTD_DEBIAN_POOL:-172.31.0.0/16}
BASE_IMAGE=debian:bookworm-slim
IMAGE=hitcountd-debian
C=hitcountd-debian
URL=http://127.0.0.1:5000/
CONF=/etc/hitcountd/hitcountd.conf

t_start=$(date +%s)
deadline=$((t_start + ${HITCOUNTD_DEBIAN_BUDGET:-1500}))
npass=0
nfail=0
dir=
finished=
all_done=
bg_pids=
logs=$(mktemp -d /tmp/hitcountd-debian-logs.XXXXXX)

. "$top/tests/container/lib-checks.sh"
. "$top/tests/container/lib-dockerd.sh"

ex() { DT=${DT:-120} docker exec "$C" "$@"; }
prop() { ex systemctl show -p "$1" --value hitcountd.service; }
main_pid() { prop MainPID; }
is_active() { [ "$(ex systemctl is-active "$1")" = active ]; }
serves() { ex curl -sS --max-time 5 "$URL" | grep -q '^Page visited [0-9]* times$'; }
workers() { ex pgrep -P "$(main_pid)" -x hitcountd | sort -n | tr '\n' ' '; }

cleanup() {
	[ -n "$finished" ] && return
	finished=1
	in_cleanup=1
	set +e
	local p
	for p in $bg_pids; do
		kill -0 "$p" 2> /dev/null && kill -TERM "$p"
		wait "$p" 2> /dev/null
	done
	if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2> /dev/null; then
		DT=60 docker rm -f "$C" >> "$logs/cleanup.log" 2>&1
		dockerd_purge "$logs/cleanup.log" || fail cleanup-container-image "see $logs/cleanup.log"
		dockerd_stop || fail dockerd-stopped "did not stop on TERM within 30 s"
	fi
	dockerd_remove_dir "$dir"
	checks_finish
}
trap 'cleanup; [ "$nfail" -eq 0 ] && [ -n "$all_done" ]; exit $?' EXIT
trap 'fail interrupted signal; exit 1' INT TERM HUP
abort() { fail "$1" "${2:-}"; exit 1; }
only=
case "${1:-}" in
quickstart) only=quickstart ;;
'') ;;
*) abort usage "usage: $0 [quickstart]" ;;
esac

# ------------------------------------------------------- 1. the packages
[ "$(id -u)" -eq 0 ] || abort prerequisites "must run as root"
for p in docker.io debootstrap debhelper lintian; do
	dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "ok installed" ||
	    abort prerequisites "$p is not installed (.ci/deps, docker.io and debootstrap)"
done
dir=$(mktemp -d /tmp/hcdeb.XXXXXX)
mkdir -p "$dir/ctx"
if [ "$only" != quickstart ]; then
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
build_debs() {
	"$top/.ci/deb" "$dir/ctx" &&
	    "$top/.ci/deb" "$dir/ctx" "$version+ci1"
}
t0=$(date +%s)
check package-builds-lintian-clean build_debs
note "two package builds took $(($(date +%s) - t0)) s"
deb1=hitcountd_${version}_amd64.deb
deb2=hitcountd_${version}+ci1_amd64.deb
[ -s "$dir/ctx/$deb1" ] && [ -s "$dir/ctx/$deb2" ] || abort package-builds-lintian-clean "no .deb"
rm -f "$dir/ctx"/*.log
cp "$here/Dockerfile" "$dir/ctx/"
fi

# ------------------------------------------------ 2. engine, image, boot
dockerd_start "$dir" "$pool" "$logs/dockerd.log" || abort dockerd-started "see $logs/dockerd.log"
rootfs_tar=$cache/debian-bookworm-slim-rootfs.tar.gz
check base-rootfs rootfs_ensure "$rootfs_tar" "$mirror" "$max_age" "$dir"
DT=300 check base-image-import docker import --change 'CMD ["bash"]' "$rootfs_tar" "$BASE_IMAGE"

# ------------------------------ the README's quick start on a fresh Debian 12
# README.md promises that on a fresh Debian 12 machine, as root, in the
# source tree, its run command serves "Page visited 1 times" on port 5000.
# The command is taken from README.md, so that this follows the README.  A
# fresh machine is the debootstrapped base image with nothing added.  The
# install and the build need Debian's archive, so that part runs with the
# host's network; the container is then committed, and `make run` serves
# in a container of that filesystem with a network namespace of its own,
# where port 5000 is free whatever the host runs (the README's path has
# no way to choose another port).  The visits are read with curl if the
# run command installed it, otherwise with the python3 it installs:
# nothing the README does not install is added.
QS=hitcountd-quickstart
readme_cmd=$(grep -x '\.ci/deps run && .*' "$top/README.md")
qs_build() {
	local build=${readme_cmd% && make run}
	echo "README: $readme_cmd"
	[ "$(echo "$readme_cmd" | wc -l)" -eq 1 ] && [ "$build" != "$readme_cmd" ] ||
	    { echo "README.md has no single run command ending in '&& make run'"; return 1; }
	"$top/.ci/deb" --source "$dir/qs/hitcountd" || return 1
	tar -C "$dir/qs" -cf - hitcountd |
	    DT=600 docker run -i --name "$QS-build" --network host "$BASE_IMAGE" \
	    bash -c "tar -C /root -xf - && exec < /dev/null && cd /root/hitcountd && $build" &&
	    DT=120 docker commit "$QS-build" "$QS" &&
	    docker run -d --name "$QS" --network none -w /root/hitcountd "$QS" make run
}
qs_ex() { DT=${DT:-30} docker exec "$QS" "$@"; }
# qs_get PATH: the body, with curl if installed, else with python3; fails
# on an error status.
qs_get() {
	qs_ex sh -c 'if command -v curl > /dev/null; then
		curl -fsS --max-time 5 "http://localhost:5000$1"
	else
		/usr/bin/python3 -c "import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(\"http://localhost:5000\" + sys.argv[1], timeout=5).read().decode())" "$1"
	fi' sh "$1"
}
# A visit as a newcomer's first curl sees it: a worker not yet connected
# to Redis answers 503 and counts nothing, so the first 200 is the one.
qs_visit() {
	local end=$(($(date +%s) + 20)) body
	until body=$(qs_get /); do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.3
	done
	echo "$body"
}
qs_serves() {
	local v1 v2
	[ "$(docker inspect -f '{{.State.Running}}' "$QS")" = true ] || return 1
	wait_for 60 qs_get /readyz || { echo "not ready in 60 s"; docker logs "$QS"; return 1; }
	echo "client: $(qs_ex sh -c 'command -v curl || echo /usr/bin/python3')"
	v1=$(qs_visit) v2=$(qs_visit)
	docker logs "$QS"
	echo "visits: '$v1' then '$v2'"
	[ "$v1" = "Page visited 1 times" ] && [ "$v2" = "Page visited 2 times" ]
}
# The run command installs only what building and running need.
qs_no_test_packages() {
	local ii bad
	ii=$(DT=60 docker run --rm --network none "$QS" dpkg-query -W -f='${Status} ${Package}\n') ||
	    return 1
	echo "$(echo "$ii" | grep -c '^install ok installed ') packages installed"
	bad=$(echo "$ii" | awk '/^install ok installed / {print $4}' |
	    grep -x 'chromium\|valgrind\|nginx-light\|prometheus')
	echo "test-only packages installed: ${bad:-none}"
	[ -z "$bad" ]
}
t0=$(date +%s)
check quickstart-readme-run-command qs_build
note "the README's run command took $(($(date +%s) - t0)) s"
check quickstart-make-run-serves-1-then-2 qs_serves
check quickstart-no-test-packages qs_no_test_packages
DT=60 docker rm -f "$QS" "$QS-build" > /dev/null 2>&1
DT=60 docker rmi "$QS" > /dev/null 2>&1
note "the quick start took $(($(date +%s) - t0)) s"
if [ "$only" = quickstart ]; then
	all_done=1
	exit
fi
t0=$(date +%s)
DT=900 check image-build docker build --network host -t "$IMAGE" "$dir/ctx"
note "docker build took $(($(date +%s) - t0)) s"
docker image inspect "$IMAGE" > /dev/null 2>&1 || abort image-build "no image"
check boot-container docker run -d --name "$C" --network none \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp "$IMAGE" /lib/systemd/systemd
booted() {
	local s
	s=$(DT=10 ex systemctl is-system-running 2> /dev/null)
	[ "$s" = running ] || [ "$s" = degraded ]
}
check boot-systemd wait_for 60 booted
booted || abort boot-systemd "systemd did not come up"
check redis-server-active wait_for 30 is_active redis-server.service

# ------------------------------------------------------------ 3. install
check apt-install ex apt-get install -y "/debs/$deb1"
installed() {
	ex systemctl is-enabled hitcountd.service &&
	    wait_for 20 is_active hitcountd.service &&
	    ex systemctl status --no-pager hitcountd.service &&
	    wait_for 10 serves
}
check installed-enabled-active-serving installed
workers_as_user() {
	local w u
	w=$(workers)
	echo "workers: $w"
	[ -n "$w" ] || return 1
	ex getent passwd hitcountd && ex getent group hitcountd || return 1
	for p in $w; do
		u=$(ex ps -o user= -p "$p")
		echo "$p: $u"
		[ "$u" = hitcountd ] || return 1
	done
}
check workers-run-as-hitcountd workers_as_user
check conffile ex sh -c "dpkg-query -W -f='\${Conffiles}' hitcountd | grep -q '$CONF '"
check man-page-names-the-conffile ex sh -c "zcat /usr/share/man/man8/hitcountd.8.gz | grep -qF '$CONF'"
check copyright ex grep -q 'License: BSD-2-Clause' /usr/share/doc/hitcountd/copyright

# An administrator's edits: an access log, two workers; then a reload.
edit_conf() {
	ex sed -i -e 's|^access_log = .*|access_log = "/var/log/hitcountd/access.log"|' \
	    -e 's|^workers = .*|workers = 2|' "$CONF" &&
	    ex sh -c "echo '# edited by the administrator' >> $CONF" &&
	    ex systemctl reload hitcountd.service &&
	    wait_for 10 serves &&
	    wait_for 10 ex test -s /var/log/hitcountd/access.log
}
check conffile-edited-and-reloaded edit_conf

# logrotate: USR1 to the master only, which has the workers reopen the
# log; nothing restarts, and the new file gets the next lines.
rotate() {
	local m w
	wait_for 10 sh -c "[ \$(echo $(workers) | wc -w) -eq 2 ]"
	m=$(main_pid) w=$(workers)
	ex logrotate -f /etc/logrotate.d/hitcountd || return 1
	ex test -f /var/log/hitcountd/access.log.1 || return 1
	serves
	wait_for 10 ex test -s /var/log/hitcountd/access.log || { echo "no reopen"; return 1; }
	echo "master $m -> $(main_pid), workers $w -> $(workers)"
	[ "$(main_pid)" = "$m" ] && [ "$(workers)" = "$w" ]
}
check logrotate-reopens-with-usr1 rotate

# ------------------------------------------- 4. upgrade under wrk load
old_main=$(main_pid)
docker exec "$C" sh -c "wrk -t2 -c20 -d12s --timeout 5s $URL > /tmp/up.wrk 2>&1" > /dev/null 2>&1 &
wrk_pid=$!
bg_pids="$bg_pids $wrk_pid"
wait_for 10 ex pgrep -x wrk      # the load is on before the upgrade
check apt-install-upgrade ex apt-get install -y "/debs/$deb2"
wait "$wrk_pid"
wrk_out=$(ex cat /tmp/up.wrk)
echo "$wrk_out" | sed 's/^/    /'
no_failed() {
	local r
	r=$(echo "$wrk_out" | awk '/ requests in / {print $1}')
	[ "${r:-0}" -gt 0 ] || return 1
	! echo "$wrk_out" | grep -q 'Non-2xx\|Socket errors'
}
check upgrade-0-failed-requests no_failed
check upgrade-conffile-kept ex sh -c "grep -q '^# edited by the administrator\$' $CONF &&
    ! ls /etc/hitcountd/*.dpkg-* 2> /dev/null"
main_pid_moved() { local m; m=$(main_pid); [ -n "$m" ] && [ "$m" != 0 ] && [ "$m" != "$old_main" ]; }
new_binary() {
	local m exe
	wait_for 20 main_pid_moved
	m=$(main_pid)
	exe=$(ex readlink "/proc/$m/exe")
	echo "MainPID $old_main -> $m, exe $exe, $(ex dpkg-query -W hitcountd)"
	[ "$m" != "$old_main" ] && [ "$exe" = /usr/sbin/hitcountd ] &&
	    ex dpkg-query -W -f='${Version}' hitcountd | grep -qx "$version+ci1" &&
	    is_active hitcountd.service && serves
}
check upgrade-new-binary-serving new_binary

# ----------------------------------------------------- 5. remove, purge
removed() {
	ex apt-get remove -y hitcountd || return 1
	! is_active hitcountd.service && [ -z "$(ex pgrep -x hitcountd)" ] &&
	    ex test -f "$CONF" && ex getent passwd hitcountd
}
check remove-stops-keeps-conffile removed
purged() {
	ex apt-get purge -y hitcountd || return 1
	local left
	left=$(ex sh -c 'ls -d /etc/hitcountd /var/log/hitcountd /usr/sbin/hitcountd \
	    /lib/systemd/system/hitcountd.* /etc/systemd/system/*/hitcountd.* 2> /dev/null;
	    getent passwd hitcountd; getent group hitcountd; dpkg-query -W -f="\${Status}" hitcountd 2> /dev/null | grep -v "not-installed"')
	echo "left after purge: ${left:-nothing}"
	[ -z "$left" ]
}
check purge-leaves-nothing purged

# ------------------------------ 6. Debian 13: hiredis 1.2 and TLS, lintian
trixie_tar=$cache/debian-trixie-slim-rootfs.tar.gz
check base-rootfs-trixie rootfs_ensure "$trixie_tar" "$mirror" "$max_age" "$dir" trixie
DT=300 check base-image-import-trixie docker import --change 'CMD ["bash"]' \
    "$trixie_tar" debian:trixie-slim
mkdir -p "$dir/ctx13" && cp "$here/Dockerfile.trixie" "$dir/ctx13/Dockerfile" &&
    "$top/.ci/deb" --source "$dir/ctx13/src"
t0=$(date +%s)
DT=900 check package-debian13-builds-lintian-clean-with-tls \
    docker build --network host -t hitcountd-debian13 "$dir/ctx13"
note "Debian 13 package build took $(($(date +%s) - t0)) s"
all_done=1
