#!/bin/bash
# tests/systemd/run.sh - hitcountd under a real systemd: systemd as PID 1
# in a container of a private Docker engine, hitcountd installed with
# `make install` and Redis beside it, on a Debian 12 machine that cannot
# pull images.
#
#  1. starts a private dockerd (tests/container/lib-dockerd.sh; its own
#     address pool, so tests/container/run.sh can run at the same time),
#     imports the debootstrapped bookworm minbase rootfs that
#     tests/container/run.sh caches (made here the same way if missing),
#     and builds tests/systemd/Dockerfile: systemd, redis-server, and
#     hitcountd from this tree's `make dist` tarball, configured with
#     --prefix=/usr --sysconfdir=/etc and installed with `make install`;
#  2. boots it with systemd as PID 1 (the only flags that boot here:
#     --privileged fails, the VM's bounding set lacks CAP_SYS_RESOURCE);
#  3. checks the installed units: start through sd_notify, reload under
#     load, the journal's priorities, the access log under the sandbox,
#     stop by TERM in under 2 s, restart after kill -9 of the master, each
#     signal sent to every process of the service, a binary upgrade (a
#     broken binary refused, then a good one under load: MainPID moves to
#     the new master, no request lost, reload and stop reach it), and
#     socket activation with a restart under load.
#
# Prints one "PASS name" / "FAIL name" line per check and a summary line
# "N passed, N failed"; exits 0 only if every check passed.  Everything it
# started (the container, the image, its dockerd and containerd, the
# background docker exec clients) is removed or stopped, by PID, on every
# exit path.
#
# Usage (as root): tests/systemd/run.sh
# Environment:
#   HITCOUNTD_CI_CACHE      cache directory (default /var/cache/hitcountd-ci)
#   HITCOUNTD_DEBIAN_MIRROR debootstrap mirror (default http://deb.debian.org/debian)
#   HITCOUNTD_ROOTFS_MAX_AGE_DAYS  rebuild the cached rootfs after this (30)
#   HITCOUNTD_SYSTEMD_BUDGET  seconds the run may take before cleanup (900);
#                           every command is bounded by what is left of it
#   HITCOUNTD_SYSTEMD_POOL  the private dockerd's address pool (172.29.0.0/16)
#   KEEP_LOGS=1             keep the log directory even when all passed
set -u
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${HITCOUNTD_CI_CACHE:-/var/cache/hitcountd-ci}
mirror=${HITCOUNTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
max_age=${HITCOUNTD_ROOTFS_MAX_AGE_DAYS:-30}
pool=${HITCOUNTD_SYSTEMD_POOL:-172.29.0.0/16}

BASE_IMAGE=debian:bookworm-slim
IMAGE=hitcountd-systemd
C=hitcountd-systemd     # the container
WORKERS=2               # workers = 2 in the image's /etc/hitcountd.conf
URL=http://127.0.0.1:5000/

t_start=$(date +%s)
budget=${HITCOUNTD_SYSTEMD_BUDGET:-900}
deadline=$((t_start + budget))
npass=0
nfail=0
dir=
finished=
all_done=
bg_pids=                # host processes started in the background
cgroup_dirs=            # the container's cgroups, checked after removal

logs=$(mktemp -d /tmp/hitcountd-systemd-logs.XXXXXX)

pass() { echo "PASS $1"; npass=$((npass + 1)); }
fail() {
	echo "FAIL $1${2:+ ($2)}"
	nfail=$((nfail + 1))
}
note() { echo "# $*"; }
elapsed() { echo $(($(date +%s) - t_start)); }
# check NAME COMMAND...: PASS if the command succeeds; otherwise FAIL with
# the last line it printed (the whole output is in $logs/NAME.log).
check() {
	local name=$1 why
	shift
	if "$@" >> "$logs/$name.log" 2>&1; then
		pass "$name"
	else
		why=$(tail -n 1 "$logs/$name.log")
		fail "$name" "${why:-see $logs/$name.log}"
		tail -n 15 "$logs/$name.log" | sed 's/^/    /'
	fi
}

# Seconds a command may take: DT (default 120), but no later than the
# deadline of the whole run (cleanup, which sets in_cleanup, excepted).
tmo() {
	local t=${DT:-120} left=$((deadline - $(date +%s)))
	if [ -z "${in_cleanup:-}" ] && [ "$left" -lt "$t" ]; then
		t=$((left > 1 ? left : 1))
	fi
	echo "$t"
}
docker() { timeout "$(tmo)" /usr/bin/docker "$@"; }
# wait_for SECONDS COMMAND...: until the command succeeds
wait_for() {
	local end=$(($(date +%s) + $1))
	shift
	until "$@" > /dev/null 2>&1; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.3
	done
}

. "$top/tests/container/lib-dockerd.sh"

# ------------------------------------------------- inside the container
ex() { DT=${DT:-60} docker exec "$C" "$@"; }
sc() { ex systemctl "$@"; }
prop() { ex systemctl show -p "$2" --value "$1"; }      # prop UNIT PROPERTY
main_pid() { prop hitcountd.service MainPID; }
# The master's workers: its children named hitcountd, sorted.
workers() {
	local m
	m=$(main_pid)
	[ -n "$m" ] && [ "$m" != 0 ] || return 0
	ex pgrep -P "$m" -x hitcountd | sort -n | tr '\n' ' '
}
nwords() { echo $#; }
alive() { ex test -d "/proc/$1"; }
# Every hitcountd process in the container, "PID STATE USER" lines.
hitcountd_procs() { ex ps -C hitcountd -o pid=,stat=,user= ; }
no_hitcountd() { [ -z "$(hitcountd_procs)" ]; }
body() { ex curl -sS --max-time 5 "$URL"; }
# n_ok N: N requests one after another, each answered 200.
n_ok() {
	local codes
	codes=$(ex sh -c "for i in \$(seq $1); do curl -s -o /dev/null -w '%{http_code} ' --max-time 3 $URL; done")
	echo "answers: $codes"
	[ "$(echo "$codes" | tr ' ' '\n' | grep -c '^200$')" -eq "$1" ]
}
visits() { ex redis-cli --raw GET visits; }
is_active() { [ "$(prop "$1" ActiveState)" = active ]; }
is_inactive() {
	local s
	s=$(prop "$1" ActiveState)
	[ "$s" = inactive ] || [ "$s" = failed ]
}
# The journal's position now, for journal_since.
cursor() { ex journalctl -q -n 1 --show-cursor -o cat | sed -n 's/^-- cursor: //p'; }
journal_since() {       # journal_since CURSOR [journalctl args]: hitcountd's lines
	local c=$1
	shift
	ex journalctl -q --no-pager -u hitcountd.service --after-cursor "$c" -o cat "$@"
}
sd_journal_since() {    # the unit's lines, systemd's own included (-o short)
	local c=$1
	shift
	ex journalctl -q --no-pager -u hitcountd.service --after-cursor "$c" "$@"
}
# Start wrk in the container; output in the container's /tmp/NAME.wrk.
# Its requests carry the user agent wrk-NAME (found in the access log).
wrk_start() {           # wrk_start NAME SECONDS [CONNECTIONS (50)]
	docker exec "$C" sh -c "wrk -t2 -c${3:-50} -d$2s --timeout 5s -H 'User-Agent: wrk-$1' $URL > /tmp/$1.wrk 2>&1" \
	    > /dev/null 2>&1 &
	wrk_pid=$!
	bg_pids="$bg_pids $wrk_pid"
}
wrk_wait() {            # wrk_wait NAME: wait for it (not in a subshell)
	wait "$wrk_pid"
	wrk_out=$(ex cat "/tmp/$1.wrk")
}
# From wrk's output: "REQUESTS NON2XX CONNECT READ WRITE TIMEOUT".
wrk_stats() {
	awk '/ requests in / {r = $1}
	     /Non-2xx or 3xx responses:/ {n = $NF}
	     /Socket errors:/ {gsub(",", ""); c = $4; rd = $6; w = $8; t = $10}
	     END {printf "%d %d %d %d %d %d\n", r, n, c, rd, w, t}'
}
# wrk_result NAME [V0]: wait for wrk NAME, print its output and a line
# "wrk: SUMMARY"; sets wrk_summary, wrk_req (answers), wrk_bad (non-2xx
# and socket errors) and, given Redis's visits V0 before it started,
# wrk_visits (visits counted since).
wrk_result() {
	local st
	wrk_wait "$1"
	echo "$wrk_out"
	st=($(echo "$wrk_out" | wrk_stats))
	wrk_req=${st[0]} wrk_bad=$((st[1] + st[2] + st[3] + st[4] + st[5]))
	wrk_summary="${st[0]} requests, ${st[1]} non-2xx, socket errors connect ${st[2]} read ${st[3]} write ${st[4]} timeout ${st[5]}"
	if [ -n "${2:-}" ]; then
		wrk_visits=$(($(visits) - $2))
		wrk_summary="$wrk_summary; visits +$wrk_visits"
	fi
	echo "wrk: $wrk_summary"
}
# Results of a wrk run, as PASS/FAIL lines:
#   no_failed_requests NAME ANSWERS BAD SUMMARY
no_failed_requests() {
	[ "$2" -gt 0 ] && [ "$3" -eq 0 ] && pass "$1" || fail "$1" "$4"
}
# Redis's count against the daemon's own count of what it answered, with
# no slack that could hide a visit counted twice.  count_start COMMAND
# (before the load) notes Redis's visits and the output of COMMAND,
# "VISITS FAILED": the GET / the daemon answered with a visit, and those
# it answered 503 (whose INCR Redis may still have applied, its reply too
# late).  Then counted_once NAME ANSWERS CONNECTIONS waits (10 s) until
# the visits Redis counted since lie between the daemon's visits since
# and those plus its failures -- exactly its visits when nothing failed --
# and checks that wrk's ANSWERS are among the daemon's visits (wrk counts
# completed answers: at its end one request per connection may be
# answered by the daemon and not read by wrk).
count_start() {
	local st
	count_cmd=$1
	st=($($count_cmd))
	c_v0=$(visits) c_a0=${st[0]} c_f0=${st[1]}
}
count_now() {           # sets c_v, c_a, c_f; true if Redis agrees
	local st
	st=($($count_cmd))
	c_v=$(($(visits) - c_v0)) c_a=$((st[0] - c_a0)) c_f=$((st[1] - c_f0))
	[ "$c_a" -le "$c_v" ] && [ "$c_v" -le $((c_a + c_f)) ]
}
counted_once() {
	if wait_for 10 count_now && [ "$2" -gt 0 ] && [ "$2" -le "$c_a" ] &&
	    [ "$c_a" -le $(($2 + $3)) ]; then
		pass "$1"
		note "$1: Redis +$c_v, the daemon answered $c_a visits and $c_f x 503, wrk $2 answers"
	else
		fail "$1" "Redis +$c_v; the daemon answered $c_a visits, $c_f x 503; wrk $2 answers on $3 connections"
	fi
}
# COMMANDs for count_start: from /metrics (kept across a reload, not across
# a binary upgrade), or from the access log lines of one user agent.
answered_by_metrics() {
	ex curl -sS --max-time 5 http://127.0.0.1:5000/metrics |
	    awk '$1 == "hitcountd_visits_total" {a = $2}
	         $1 == "hitcountd_http_requests_total{code=\"503\"}" {f = $2}
	         END {printf "%d %d\n", a, f}'
}
answered_in_access_log() {      # answered_in_access_log USER-AGENT
	ex sh -c 'cat /var/log/hitcountd/access.log*' |
	    awk -v ua="\"$1\"" '$NF == ua && $7 == "/" && $9 == 200 {a++}
	         $NF == ua && $7 == "/" && $9 == 503 {f++}
	         END {printf "%d %d\n", a, f}'
}
# barrier CURSOR N: WINCH to the master, then wait (10 s) for the N-th
# "WINCH ignored" in the journal since CURSOR.  The master handles WINCH
# last in a turn (after SIGCHLD, HUP and the others) and logs what it did
# about each: once that line is there, whatever a signal sent before did
# (a worker killed or stopped, a reload, a stop) is in the journal, and
# an assertion that nothing happened means something.
barrier() {
	local b_cur=$1 b_n=$2
	sc kill -s WINCH --kill-whom=main hitcountd.service || return 1
	wait_for 10 eval '[ "$(journal_since "$b_cur" | grep -c "WINCH ignored")" -ge "$b_n" ]'
}
# visits_grow N: wait (10 s) until Redis counted N more visits: the load
# really runs before the next step.
visits_grow() {
	local g_end=$(($(visits) + $1))
	wait_for 10 eval '[ "$(visits)" -ge "$g_end" ]'
}
# A pid list minus another: what of $1 is not in $2.
minus() {
	local p out=
	for p in $1; do
		case " $2 " in *" $p "*) ;; *) out="$out $p" ;; esac
	done
	echo $out
}
# Processes of the service stopped by a signal (state T), if any.
stopped_procs() { hitcountd_procs | awk '$2 ~ /^T/ {print $1}' | tr '\n' ' '; }

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
	local p d left
	for p in $bg_pids; do
		kill -0 "$p" 2> /dev/null && kill -TERM "$p"
	done
	for p in $bg_pids; do
		wait "$p" 2> /dev/null
	done
	if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2> /dev/null; then
		[ -n "$cgroup_dirs" ] || cgroup_dirs=$(container_cgroups)
		DT=60 docker rm -f "$C" >> "$logs/cleanup.log" 2>&1
		if dockerd_purge "$logs/cleanup.log"; then
			pass cleanup-container-image
		else
			fail cleanup-container-image "see $logs/cleanup.log"
		fi
		# systemd made cgroups below the container's: gone with it?
		left=
		for d in $cgroup_dirs; do
			[ -d "$d" ] && left="$left $d"
		done
		if [ -z "$left" ]; then
			pass cleanup-container-cgroups
		else
			fail cleanup-container-cgroups "left:$left"
			for d in $left; do  # deepest first
				find "$d" -depth -type d -exec rmdir {} + 2> /dev/null
			done
		fi
		if dockerd_stop; then
			pass dockerd-stopped
		else
			fail dockerd-stopped "did not stop on TERM within 30 s"
		fi
	fi
	dockerd_remove_dir "$dir"
	echo "# total time: $(elapsed) s"
	echo "$npass passed, $nfail failed"
	if [ "$nfail" -eq 0 ] && [ -z "${KEEP_LOGS:-}" ]; then
		rm -rf "$logs"
	else
		echo "# logs: $logs"
	fi
}
# The container's cgroup directories on the host (cgroup v1 and v2).
container_cgroups() {
	local id
	id=$(DT=20 docker inspect -f '{{.Id}}' "$C" 2> /dev/null) || return 0
	[ -n "$id" ] || return 0
	find /sys/fs/cgroup -maxdepth 4 -type d -name "*$id*" 2> /dev/null
}
trap 'cleanup; [ "$nfail" -eq 0 ] && [ -n "$all_done" ]; exit $?' EXIT
trap 'fail interrupted "signal"; exit 1' INT TERM HUP

abort() {               # a prerequisite failed: nothing after it can run
	fail "$1" "${2:-}"
	exit 1
}

# ------------------------------------------------------ 1. prerequisites
[ "$(id -u)" -eq 0 ] || abort prerequisites "must run as root (dockerd, debootstrap)"
missing=
for p in docker.io debootstrap iproute2 util-linux make; do
	dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "ok installed" ||
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

dir=$(mktemp -d /tmp/hcsd.XXXXXX)
if dockerd_start "$dir" "$pool" "$logs/dockerd.log"; then
	pass dockerd-started
else
	tail -n 30 "$logs/dockerd.log"
	abort dockerd-started "no answer on $DOCKER_HOST within 60 s"
fi
note "$(/usr/sbin/dockerd --version), address pool $pool"

# ------------------------------------------------------------ 2. the image
rootfs_tar=$cache/debian-bookworm-slim-rootfs.tar.gz
if rootfs_usable "$rootfs_tar" "$max_age"; then
	note "base rootfs from the cache: $rootfs_tar"
else
	note "debootstrap --variant=minbase bookworm (cached afterwards in $cache)"
fi
check base-rootfs rootfs_ensure "$rootfs_tar" "$mirror" "$max_age" "$dir"
[ -s "$rootfs_tar" ] || abort base-image "no rootfs tarball"
DT=300 check base-image-import docker import --change 'CMD ["bash"]' "$rootfs_tar" "$BASE_IMAGE"

# The source as it is distributed: `make dist` of this tree (configured
# first when it is not), built in the image as an administrator would.
make_tarball() {
	local src=$top
	if [ ! -f "$top/Makefile" ]; then
		# An unconfigured tree: configure a copy, so $top stays as it is.
		src=$dir/src
		mkdir -p "$src" &&
		    tar -C "$top" --exclude=./.git -c . | tar -C "$src" -x &&
		    (cd "$src" && ./autogen.sh && ./configure) || return 1
	fi
	timeout "$(DT=300 tmo)" make -C "$src" dist || return 1
	tarball=$(ls -t "$src"/hitcountd-*.tar.gz | head -n 1)
	echo "tarball: $tarball"
	mkdir -p "$dir/ctx" &&
	    cp "$tarball" "$dir/ctx/hitcountd.tar.gz" &&
	    cp "$here/Dockerfile" "$dir/ctx/Dockerfile"
}
check make-dist-tarball make_tarball
[ -s "$dir/ctx/hitcountd.tar.gz" ] || abort make-dist-tarball "no tarball"
t0=$(date +%s)
DT=900 check image-build docker build --network host -t "$IMAGE" "$dir/ctx"
note "docker build took $(($(date +%s) - t0)) s"
docker image inspect "$IMAGE" > /dev/null 2>&1 || abort image-build "no image"

# ------------------------------------------------------------- 3. the boot
# Exactly the flags that boot systemd on these machines; no network but
# the container's loopback (Redis, hitcountd and the clients are inside).
check boot-container docker run -d --name "$C" --network none \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    "$IMAGE" /lib/systemd/systemd
cgroup_dirs=$(container_cgroups)
booted() {
	local s
	s=$(DT=10 ex systemctl is-system-running 2> /dev/null)
	[ "$s" = running ] || [ "$s" = degraded ]
}
boot_check() {
	local pid1 state
	wait_for 60 booted
	pid1=$(ex cat /proc/1/comm)
	state=$(ex systemctl is-system-running)
	echo "PID 1: $pid1, system state: $state"
	ex systemctl --failed --no-legend --plain
	[ "$pid1" = systemd ] && { [ "$state" = running ] || [ "$state" = degraded ]; }
}
check boot-systemd-pid1 boot_check
failed_units=$(ex systemctl --failed --no-legend --plain 2> /dev/null | awk '{print $1}' | tr '\n' ' ')
[ -n "$failed_units" ] && note "failed units after boot: $failed_units"
booted || abort boot-systemd-pid1 "systemd did not come up"
note "$(ex systemctl --version | head -n 1)"
check redis-server-active wait_for 30 is_active redis-server.service

# ------------------------------------------------------- 4. the units
units_installed() {
	ex ls -l /usr/lib/systemd/system/hitcountd.service /usr/lib/systemd/system/hitcountd.socket &&
	    ex systemd-analyze verify --man=no /usr/lib/systemd/system/hitcountd.service \
	    /usr/lib/systemd/system/hitcountd.socket
}
check units-installed-and-verified units_installed
check enable-service sc enable hitcountd.service
sec=$(ex systemd-analyze security --no-pager hitcountd.service 2> /dev/null | tail -n 1)
note "systemd-analyze security: ${sec#→ }"

start_notify() {
	local t body status
	t=$(ex sh -c 's=$(date +%s%N); systemctl start hitcountd; r=$?; echo $r $((($(date +%s%N) - s) / 1000000))')
	echo "systemctl start: exit and ms: $t"
	[ "${t%% *}" = 0 ] || return 1
	echo "Type=$(prop hitcountd Type) ActiveState=$(prop hitcountd ActiveState) SubState=$(prop hitcountd SubState)"
	status=$(prop hitcountd StatusText)
	echo "StatusText=$status"
	[ "$(prop hitcountd Type)" = notify ] && is_active hitcountd || {
		echo "not active through Type=notify"
		return 1
	}
	# Only the daemon's sd_notify sets the status text.
	case $status in *"workers serving"*) ;; *) echo "no STATUS= from the daemon"; return 1 ;; esac
	body=$(body)
	echo "GET /: $body"
	[ "$body" = "Page visited 1 times" ]
}
check start-active-through-sd-notify-and-serves start_notify

workers_check() {
	local w m u p
	wait_for 10 eval '[ "$(nwords $(workers))" = $WORKERS ]'
	m=$(main_pid)
	w=$(workers)
	echo "master $m, workers $w"
	[ "$(nwords $w)" = "$WORKERS" ] || { echo "$(nwords $w) workers, not $WORKERS"; return 1; }
	u=$(ex ps -o user= -p "$m")
	[ "$u" = root ] || { echo "master runs as $u"; return 1; }
	for p in $w; do
		u=$(ex ps -o user= -p "$p")
		[ "$u" = nobody ] || { echo "worker $p runs as $u"; return 1; }
	done
}
check workers-running-as-nobody workers_check

# The master's bounding set: exactly what the unit grants.
caps_check() {
	local m bnd want=0 c
	m=$(main_pid)
	bnd=$(ex awk '/^CapBnd:/ {print $2}' "/proc/$m/status")
	# CAP_CHOWN 0, CAP_KILL 5, CAP_SETGID 6, CAP_SETUID 7,
	# CAP_NET_BIND_SERVICE 10
	for c in 0 5 6 7 10; do
		want=$((want | (1 << c)))
	done
	echo "CapBnd of the master: $bnd, expected $(printf '%016x' $want)"
	[ $((16#$bnd)) -eq $want ]
}
check master-capabilities-as-in-unit caps_check

# The journal: warnings at priority 4, no "hitcountd[PID]:" in the text.
# (The worker's PID makes the line unique: journalctl 252 returns nothing
# for -p together with -u and --after-cursor.)
journal_check() {
	local w lines
	w=$(workers)
	w=${w%% *}
	ex kill -KILL "$w"
	wait_for 10 eval 'ex journalctl -q --no-pager -u hitcountd.service -p warning -o cat | grep -q "worker $w killed by signal 9"'
	echo "-- journalctl -u hitcountd -p warning:"
	ex journalctl -q --no-pager -u hitcountd.service -p warning -o cat
	ex journalctl -q --no-pager -u hitcountd.service -p warning..warning -o cat |
	    grep -qx "warning: worker $w killed by signal 9" || {
		echo "no 'warning: worker $w killed by signal 9' at priority warning"
		return 1
	}
	wait_for 10 eval '[ "$(nwords $(workers))" = $WORKERS ]'
	lines=$(ex journalctl -q --no-pager -u hitcountd.service -o cat)
	if echo "$lines" | grep -q '^hitcountd\['; then
		echo "$lines" | grep '^hitcountd\[' | head -n 3
		echo "lines still carry hitcountd[PID]:"
		return 1
	fi
	# info lines are not warnings
	echo "$lines" | grep -q '^info: worker started' || { echo "no info lines"; return 1; }
	if ex journalctl -q --no-pager -u hitcountd.service -p warning -o cat | grep -q '^info:'; then
		echo "info lines at priority warning"
		return 1
	fi
}
check journal-warning-priority-no-duplicate-prefix journal_check

# ---------------------------------------------- 5. reload under load
reload_under_load() {
	local before v0 rc now gone after status
	before=$(workers)
	v0=$(visits)
	count_start answered_by_metrics
	wrk_start reload 8
	visits_grow 200 || echo "the load did not start"
	rc=$(ex sh -c 'systemctl reload hitcountd; echo $?')
	echo "systemctl reload: exit $rc; workers before: $before"
	# Done when none of the old workers is left (or 10 s).
	wait_for 10 eval '[ -z "$(for p in $before; do alive $p && echo $p; done)" ]'
	gone=yes
	for p in $before; do
		alive "$p" && gone="no: $p still runs"
	done
	after=$(workers)
	status=$(ex systemctl status --no-pager hitcountd.service | sed -n 's/^ *Status: //p')
	wrk_result reload "$v0"
	echo "workers after: $after; status: $status"
	r_rc=$rc r_gone=$gone r_after=$after r_before=$before r_status=$status
	r_req=$wrk_req r_bad=$wrk_bad r_visits=$wrk_visits r_summary=$wrk_summary
}
reload_under_load > "$logs/reload.log" 2>&1
sed -n 's/^wrk: /# reload under load, wrk: /p' "$logs/reload.log"
[ "$r_rc" = 0 ] && pass reload-exit-0 || fail reload-exit-0 "systemctl reload exited $r_rc"
no_failed_requests reload-under-load-0-failed-requests "$r_req" "$r_bad" "$r_summary"
[ "$r_gone" = yes ] && pass reload-old-workers-gone || fail reload-old-workers-gone "$r_gone"
[ "$(nwords $r_after)" = "$WORKERS" ] && [ -z "$(minus "$r_before" "$(minus "$r_before" "$r_after")")" ] &&
    pass reload-new-workers-serving ||
    fail reload-new-workers-serving "before: $r_before, after: $r_after"
counted_once reload-visits-counted-once "$r_req" 50
case $r_status in
*"reload succeeded"*) pass reload-result-in-systemctl-status ;;
*) fail reload-result-in-systemctl-status "Status: $r_status" ;;
esac

# A broken file never reaches the daemon: ExecReload's `hitcountd -t`
# fails the reload, and the workers stay.
reload_broken_config() {
	local before rc after c
	before=$(workers)
	c=$(cursor)
	ex cp /etc/hitcountd.conf /tmp/hitcountd.conf.good
	ex sh -c 'echo "workers = many" >> /etc/hitcountd.conf'
	rc=$(ex sh -c 'systemctl reload hitcountd 2>&1; echo $?' | tail -n 1)
	ex cp /tmp/hitcountd.conf.good /etc/hitcountd.conf
	# A HUP, had one come, was handled before the barrier's WINCH.
	barrier "$c" 1 || { echo "no 'WINCH ignored' in the journal"; return 1; }
	if journal_since "$c" | grep -Eq 'reload: configuration|keeping the running configuration|reload succeeded'; then
		journal_since "$c"
		echo "the daemon got a reload"
		return 1
	fi
	after=$(workers)
	echo "systemctl reload with a broken file: exit $rc; workers $before -> $after;" \
	    "ActiveState=$(prop hitcountd ActiveState)"
	[ "$rc" != 0 ] || { echo "systemctl reload succeeded with a broken file"; return 1; }
	is_active hitcountd && [ "$after" = "$before" ] || { echo "workers $before -> $after"; return 1; }
	n_ok 3
}
check reload-broken-config-refused-workers-kept reload_broken_config

# ------------------------------------------------------ 6. access log
access_log_check() {
	local n1 n2 own
	ex sed -i 's|^access_log = .*|access_log = "/var/log/hitcountd/access.log"|' /etc/hitcountd.conf
	ex grep '^access_log' /etc/hitcountd.conf
	sc restart hitcountd.service || { echo "restart with the access log failed"; return 1; }
	n_ok 5 || return 1
	wait_for 5 eval '[ "$(ex grep -c "\"GET / HTTP/1.1\" 200" /var/log/hitcountd/access.log)" -ge 5 ]'
	ex ls -ld /var/log/hitcountd /var/log/hitcountd/access.log
	n1=$(ex grep -c '"GET / HTTP/1.1" 200' /var/log/hitcountd/access.log)
	own=$(ex stat -c %U:%G:%a /var/log/hitcountd/access.log)
	echo "$n1 lines, owner $own"
	# The master's, writable by the workers' group: no CAP_DAC_OVERRIDE.
	[ "$n1" -ge 5 ] && [ "$own" = root:nogroup:660 ] || { echo "access log: $n1 lines, owner $own"; return 1; }
	# Once more, now that the file exists.
	sc restart hitcountd.service || { echo "restart with an existing access log failed"; return 1; }
	n_ok 3 || return 1
	wait_for 5 eval '[ "$(ex grep -c "\"GET / HTTP/1.1\" 200" /var/log/hitcountd/access.log)" -ge $((n1 + 3)) ]'
	n2=$(ex grep -c '"GET / HTTP/1.1" 200' /var/log/hitcountd/access.log)
	echo "after the second restart: $n2 lines"
	[ "$n2" -ge $((n1 + 3)) ] || { echo "no lines after a restart: $n1 -> $n2"; return 1; }
}
check access-log-in-logs-directory access_log_check
# logrotate's way: move the file away, USR1 to the master.
workers_reopened() {    # every worker holds the new file open, none the old
	local w fds
	for w in $(workers); do
		fds=$(ex ls -l "/proc/$w/fd") || return 1
		echo "$fds" | grep -q ' /var/log/hitcountd/access\.log$' || return 1
		! echo "$fds" | grep -q 'access\.log\.1$' || return 1
	done
}
access_log_reopen() {
	local own n
	ex mv /var/log/hitcountd/access.log /var/log/hitcountd/access.log.1
	sc kill -s USR1 --kill-who=main hitcountd.service
	wait_for 10 workers_reopened || { echo "the workers did not reopen the access log"; return 1; }
	n_ok 3 || return 1
	wait_for 5 eval '[ "$(ex grep -c "\"GET / HTTP/1.1\" 200" /var/log/hitcountd/access.log)" -ge 3 ]'
	n=$(ex grep -c '"GET / HTTP/1.1" 200' /var/log/hitcountd/access.log)
	own=$(ex stat -c %U:%G:%a /var/log/hitcountd/access.log)
	echo "new file: $n lines, owner $own"
	[ "$n" -ge 3 ] && [ "$own" = root:nogroup:660 ]
}
check access-log-reopened-on-usr1 access_log_reopen

# ----------------------------------------------------------- 7. stop
stop_check() {
	local c out ms
	c=$(cursor)
	out=$(ex sh -c 's=$(date +%s%N); systemctl stop hitcountd; r=$?; echo $r $((($(date +%s%N) - s) / 1000000))')
	ms=${out#* }
	echo "systemctl stop: exit ${out%% *}, $ms ms; Result=$(prop hitcountd Result)" \
	    "ExecMainCode=$(prop hitcountd ExecMainCode) ExecMainStatus=$(prop hitcountd ExecMainStatus)"
	note "systemctl stop took $ms ms" >&3
	sd_journal_since "$c"
	hitcountd_procs
	[ "${out%% *}" = 0 ] || { echo "systemctl stop failed"; return 1; }
	[ "$ms" -lt 2000 ] || { echo "stop took $ms ms"; return 1; }
	if sd_journal_since "$c" | grep -Eq 'SIGKILL|timed out|remains running'; then
		echo "systemd killed: $(sd_journal_since "$c" | grep -E 'SIGKILL|timed out|remains running' | head -n 1)"
		return 1
	fi
	[ "$(prop hitcountd Result)" = success ] || { echo "Result=$(prop hitcountd Result)"; return 1; }
	# exited (1), not killed (2), with 0
	[ "$(prop hitcountd ExecMainCode)" = 1 ] && [ "$(prop hitcountd ExecMainStatus)" = 0 ] ||
	    { echo "the master did not exit 0"; return 1; }
	no_hitcountd || { echo "processes left: $(hitcountd_procs | tr '\n' ' ')"; return 1; }
}
check stop-under-2s-by-term-nothing-left stop_check 3>&1

# ------------------------------------------------ 8. kill -9 of the master
sc start hitcountd.service > "$logs/start-2.log" 2>&1
kill_master_check() {
	local m0 w0 nr0 m1 left= p
	wait_for 10 eval '[ "$(nwords $(workers))" = $WORKERS ]'
	m0=$(main_pid)
	w0=$(workers)
	nr0=$(prop hitcountd NRestarts)
	echo "master $m0, workers $w0, NRestarts $nr0"
	ex kill -KILL "$m0"
	wait_for 20 eval 'm1=$(main_pid); [ "$m1" != "$m0" ] && [ "$m1" != 0 ] && is_active hitcountd'
	m1=$(main_pid)
	echo "new master $m1, ActiveState $(prop hitcountd ActiveState), NRestarts $(prop hitcountd NRestarts)"
	[ "$m1" != "$m0" ] && [ "$m1" != 0 ] && is_active hitcountd || { echo "not restarted"; return 1; }
	[ "$(prop hitcountd NRestarts)" = $((nr0 + 1)) ] || { echo "NRestarts $(prop hitcountd NRestarts)"; return 1; }
	for p in $w0; do
		alive "$p" && left="$left $p"
	done
	[ -z "$left" ] || { echo "workers of the killed master still run:$left"; return 1; }
	wait_for 10 eval '[ "$(nwords $(workers))" = $WORKERS ]'
	echo "new workers: $(workers)"
	n_ok 3
}
check kill-9-master-restarted-no-old-worker kill_master_check

# -------------------------------------- 9. every signal to every process
# systemctl kill (--kill-who=all): the master and each worker get it.
# HUP reloads (a new generation), USR2 upgrades the binary (a new master,
# which becomes MainPID, with new workers; the old master drains),
# TTIN/TTOU add/remove one worker, USR1 and WINCH change nothing; no
# worker may be killed or stopped by the signal it got itself.
signal_check() {
	local sig=$1 m0 before n0 want c after m1 extra gone bad nr0
	wait_for 10 eval '[ -z "$(stopped_procs)" ]'
	m0=$(main_pid)
	before=$(workers)
	n0=$(nwords $before)
	nr0=$(prop hitcountd NRestarts)
	case $sig in
	TTIN) want=$((n0 + 1)) ;;
	TTOU) want=$((n0 - 1)) ;;
	*) want=$n0 ;;
	esac
	c=$(cursor)
	sc kill -s "$sig" hitcountd.service || { echo "systemctl kill failed"; return 1; }
	# Let it settle: the count reached; for HUP the old generation gone,
	# for USR2 the old master too.
	case $sig in
	HUP) wait_for 10 eval '[ "$(nwords $(workers))" = $want ] && [ -z "$(minus "$before" "$(minus "$before" "$(workers)")")" ]' ;;
	USR2) wait_for 20 eval 'm1=$(main_pid); [ "$m1" != "$m0" ] && [ "$m1" != 0 ] && ! alive "$m0" && [ "$(nwords $(workers))" = $want ]' ;;
	*) wait_for 10 eval '[ "$(nwords $(workers))" = $want ]' ;;
	esac
	# A worker the signal killed or stopped shows once the master has
	# handled the signals before the barrier's (for WINCH, its own first).
	barrier "$c" "$([ "$sig" = WINCH ] && echo 2 || echo 1)" ||
	    { echo "no 'WINCH ignored' in the journal"; return 1; }
	m1=$(main_pid)
	after=$(workers)
	echo "$sig: master $m0 -> $m1, workers $before -> $after (want $want)"
	echo "status: $(prop hitcountd StatusText)"
	journal_since "$c"
	bad=$(stopped_procs)
	[ -z "$bad" ] || { echo "stopped (state T) by $sig: $bad"; return 1; }
	is_active hitcountd && [ "$(prop hitcountd NRestarts)" = "$nr0" ] ||
	    { echo "$(prop hitcountd ActiveState), NRestarts $nr0 -> $(prop hitcountd NRestarts)"; return 1; }
	if [ "$sig" = USR2 ]; then
		[ "$m1" != "$m0" ] && [ "$m1" != 0 ] || { echo "MainPID still $m0: no new master"; return 1; }
		! alive "$m0" || { echo "the old master $m0 still runs"; return 1; }
		[ "$(ex ps -o user= -p "$m1")" = root ] || { echo "new master not root"; return 1; }
	else
		[ "$m1" = "$m0" ] || { echo "master $m0 -> $m1"; return 1; }
	fi
	[ "$(nwords $after)" = "$want" ] || { echo "$(nwords $after) workers, want $want"; return 1; }
	extra=$(minus "$after" "$before")       # new workers
	gone=$(minus "$before" "$after")        # workers that went away
	case $sig in
	HUP|USR2)
		for p in $before; do
			alive "$p" && { echo "old worker $p still runs"; return 1; }
		done ;;
	TTIN) [ -z "$gone" ] && [ "$(nwords $extra)" = 1 ] || { echo "new: $extra, gone: $gone"; return 1; } ;;
	TTOU) [ -z "$extra" ] && [ "$(nwords $gone)" = 1 ] || { echo "new: $extra, gone: $gone"; return 1; } ;;
	*) [ -z "$gone" ] && [ -z "$extra" ] || { echo "workers replaced: gone $gone, new $extra"; return 1; } ;;
	esac
	if journal_since "$c" | grep -Eq 'killed by signal|exited with status|failed'; then
		echo "$(journal_since "$c" | grep -E 'killed by signal|exited with status|failed' | head -n 1)"
		return 1
	fi
	n_ok 10
}
for sig in HUP USR1 USR2 WINCH TTIN TTOU; do
	check "signal-$sig-to-all-keeps-serving" signal_check "$sig"
done

# TERM, QUIT and INT to every process: a clean stop, exit 0, no restart.
stop_signal_check() {
	local sig=$1 nr0 t0 ms
	# Whatever the checks before did (a worker left stopped): CONT, and
	# a fresh start.
	sc kill -s CONT hitcountd.service 2> /dev/null
	is_active hitcountd || sc start hitcountd.service
	sc is-active hitcountd.service || { echo "could not start before the check"; return 1; }
	wait_for 10 eval '[ "$(nwords $(workers))" -ge 1 ]'
	nr0=$(prop hitcountd NRestarts)
	t0=$(date +%s%N)
	sc kill -s "$sig" hitcountd.service || { echo "systemctl kill failed"; return 1; }
	wait_for 15 is_inactive hitcountd
	ms=$((($(date +%s%N) - t0) / 1000000))
	echo "$sig: inactive after ~$ms ms; ActiveState=$(prop hitcountd ActiveState)" \
	    "Result=$(prop hitcountd Result) ExecMainCode=$(prop hitcountd ExecMainCode)" \
	    "ExecMainStatus=$(prop hitcountd ExecMainStatus) NRestarts=$(prop hitcountd NRestarts)"
	[ "$(prop hitcountd ActiveState)" = inactive ] || { echo "ActiveState=$(prop hitcountd ActiveState)"; return 1; }
	[ "$(prop hitcountd Result)" = success ] || { echo "Result=$(prop hitcountd Result)"; return 1; }
	[ "$(prop hitcountd ExecMainCode)" = 1 ] && [ "$(prop hitcountd ExecMainStatus)" = 0 ] ||
	    { echo "exit: code $(prop hitcountd ExecMainCode) status $(prop hitcountd ExecMainStatus)"; return 1; }
	[ "$(prop hitcountd NRestarts)" = "$nr0" ] || { echo "restarted"; return 1; }
	no_hitcountd || { echo "processes left: $(hitcountd_procs | tr '\n' ' ')"; return 1; }
}
for sig in TERM QUIT INT; do
	check "signal-$sig-to-all-stops-cleanly" stop_signal_check "$sig"
done

# ----------------------------------------- 10. binary upgrade (USR2)
# As hitcountd(8), BINARY UPGRADE, tells an administrator: a new binary
# renamed over the installed one (`install` does that), then USR2 to the
# master only.  First a binary that cannot serve (the master keeps
# serving), then a good one under wrk load (MainPID passes to the new
# master, no request lost), then reload and stop of the new master.
upgrade_bin=$(prop hitcountd ExecStart | sed -n 's/^{ path=\([^ ;]*\) .*/\1/p')
note "binary upgrade of $upgrade_bin"
sc start hitcountd.service > "$logs/start-3.log" 2>&1
ex cp -p "$upgrade_bin" /root/hitcountd.good
pidfile_is() {          # pidfile_is PID: /run/hitcountd.pid names it, no .oldbin
	[ "$(ex cat /run/hitcountd.pid)" = "$1" ] && ! ex test -e /run/hitcountd.pid.oldbin
}
status_line() { ex systemctl status --no-pager hitcountd.service | sed -n 's/^ *Status: //p'; }
usr2_main() { sc kill -s USR2 --kill-whom=main hitcountd.service; }

upgrade_broken_binary() {
	local m0 w0 nr0 c st
	wait_for 10 eval '[ "$(nwords $(workers))" = $WORKERS ]'
	m0=$(main_pid)
	w0=$(workers)
	nr0=$(prop hitcountd NRestarts)
	ex sh -c 'printf "#!/bin/sh\nexit 1\n" > /root/hitcountd.broken'
	ex install -m 755 /root/hitcountd.broken "$upgrade_bin" || return 1
	c=$(cursor)
	usr2_main || { echo "systemctl kill failed"; return 1; }
	wait_for 20 eval 'journal_since "$c" | grep -q "binary upgrade failed"'
	# Anything the failure broke shows once the master's next turn is done.
	barrier "$c" 1 || { echo "no 'WINCH ignored' in the journal"; return 1; }
	st=$(status_line)
	journal_since "$c"
	echo "MainPID $m0 -> $(main_pid), workers $w0 -> $(workers)," \
	    "ActiveState $(prop hitcountd ActiveState), NRestarts $nr0 -> $(prop hitcountd NRestarts)"
	echo "Status: $st"
	journal_since "$c" | grep -q "binary upgrade failed, this master keeps serving" ||
	    { echo "no 'binary upgrade failed' in the journal"; return 1; }
	[ "$(main_pid)" = "$m0" ] && is_active hitcountd &&
	    [ "$(prop hitcountd NRestarts)" = "$nr0" ] || { echo "MainPID or state changed"; return 1; }
	[ "$(workers)" = "$w0" ] || { echo "workers changed"; return 1; }
	pidfile_is "$m0" || { echo "pidfile: $(ex cat /run/hitcountd.pid), .oldbin: $(ex ls /run/hitcountd.pid.oldbin 2>&1)"; return 1; }
	case $st in
	*"binary upgrade failed"*) ;;
	*) echo "systemctl status does not say that the upgrade failed"; return 1 ;;
	esac
	n_ok 5
}
check upgrade-broken-binary-mainpid-kept-still-serving-status-failed upgrade_broken_binary
restore_good_binary() {
	ex install -m 755 /root/hitcountd.good "$upgrade_bin" &&
	    ex cmp /root/hitcountd.good "$upgrade_bin" &&
	    ex "$upgrade_bin" -V
}
check upgrade-good-binary-put-back restore_good_binary

# The good binary, a copy renamed over the installed one, under load.
upgrade_under_load() {
	local m0 w0 nr0 v0 c rc m1 w1 st left= p exe_new exe_bin
	wait_for 10 eval '[ "$(nwords $(workers))" = $WORKERS ]'
	m0=$(main_pid)
	w0=$(workers)
	nr0=$(prop hitcountd NRestarts)
	v0=$(visits)
	c=$(cursor)
	ex cp -p "$upgrade_bin" /root/hitcountd.new
	count_start "answered_in_access_log wrk-upgrade"
	wrk_start upgrade 6 20
	visits_grow 100 || echo "the load did not start"
	ex install -m 755 /root/hitcountd.new "$upgrade_bin"
	usr2_main
	rc=$?
	echo "systemctl kill -s USR2 --kill-whom=main: exit $rc; master $m0, workers $w0"
	wait_for 20 eval 'm1=$(main_pid); [ "$m1" != "$m0" ] && [ "$m1" != 0 ] && ! alive "$m0" && [ "$(nwords $(workers))" = $WORKERS ]'
	m1=$(main_pid)
	w1=$(workers)
	st=$(status_line)
	for p in $m0 $w0; do
		alive "$p" && left="$left $p"
	done
	exe_new=$(ex stat -L -c %i "/proc/$m1/exe")
	exe_bin=$(ex stat -c %i "$upgrade_bin")
	wrk_result upgrade "$v0"
	echo "MainPID $m0 -> $m1 (user $(ex ps -o user= -p "$m1"), inode of its binary $exe_new, of $upgrade_bin $exe_bin)," \
	    "workers $w0 -> $w1, ActiveState $(prop hitcountd ActiveState), NRestarts $nr0 -> $(prop hitcountd NRestarts)"
	echo "pidfile: $(ex cat /run/hitcountd.pid); Status: $st"
	sd_journal_since "$c"
	u_rc=$rc u_m0=$m0 u_m1=$m1 u_left=$left u_status=$st
	u_req=$wrk_req u_bad=$wrk_bad u_visits=$wrk_visits u_summary=$wrk_summary
	u_main_ok=
	[ "$rc" = 0 ] && [ "$m1" != "$m0" ] && [ "$m1" != 0 ] &&
	    [ "$(ex ps -o user= -p "$m1")" = root ] && [ -n "$exe_new" ] && [ "$exe_new" = "$exe_bin" ] &&
	    pidfile_is "$m1" && u_main_ok=1
	u_active_ok=
	is_active hitcountd && [ "$(prop hitcountd NRestarts)" = "$nr0" ] &&
	    [ "$(nwords $w1)" = "$WORKERS" ] && [ -z "$(minus "$w1" "$(minus "$w1" "$w0")")" ] &&
	    ! journal_since "$c" | grep -Eq 'killed by signal|exited with status|failed' &&
	    ! sd_journal_since "$c" | grep -Eq 'only permitted for main PID|Failed|SIGKILL' && u_active_ok=1
}
upgrade_under_load > "$logs/upgrade.log" 2>&1
sed -n 's/^wrk: /# binary upgrade under load, wrk: /p' "$logs/upgrade.log"
# systemd does not wait for a MainPID that is not its child when it
# stops the unit with KillMode=mixed (it goes on to SIGKILL at once); the
# unit uses KillMode=control-group, where it waits for the cgroup.
grep -o 'Supervising process .*' "$logs/upgrade.log" | sed 's/^/# systemd: /'
upgrade_fail() {        # upgrade_fail NAME WHY: FAIL with the log's tail
	fail "$1" "$2"
	tail -n 25 "$logs/upgrade.log" | sed 's/^/    /'
}
[ -n "$u_main_ok" ] && pass upgrade-mainpid-is-new-master-running-installed-binary ||
    upgrade_fail upgrade-mainpid-is-new-master-running-installed-binary "MainPID $u_m0 -> $u_m1, see $logs/upgrade.log"
[ -n "$u_active_ok" ] && pass upgrade-unit-stays-active-new-workers-serving ||
    upgrade_fail upgrade-unit-stays-active-new-workers-serving "see $logs/upgrade.log"
case $u_status in
*"binary upgrade: new master $u_m1 serving"*) pass upgrade-status-text-in-systemctl-status ;;
*) fail upgrade-status-text-in-systemctl-status "Status: $u_status" ;;
esac
[ -z "$u_left" ] && pass upgrade-old-master-and-workers-gone ||
    fail upgrade-old-master-and-workers-gone "still running:$u_left"
no_failed_requests upgrade-under-load-0-failed-requests "$u_req" "$u_bad" "$u_summary"
counted_once upgrade-visits-counted-once "$u_req" 20

# The new master is the service's now: systemctl reload and stop reach it.
upgrade_then_reload() {
	local m w0 rc
	m=$(main_pid)
	w0=$(workers)
	rc=$(ex sh -c 'systemctl reload hitcountd; echo $?')
	wait_for 10 eval '[ -z "$(for p in $w0; do alive $p && echo $p; done)" ] && [ "$(nwords $(workers))" = $WORKERS ]'
	echo "systemctl reload: exit $rc; MainPID $m -> $(main_pid); workers $w0 -> $(workers); Status: $(status_line)"
	[ "$rc" = 0 ] && [ "$(main_pid)" = "$m" ] && is_active hitcountd || return 1
	[ -z "$(minus "$w0" "$(minus "$w0" "$(workers)")")" ] && [ "$(nwords $(workers))" = "$WORKERS" ] ||
	    { echo "workers not replaced"; return 1; }
	case $(status_line) in *"reload succeeded"*) ;; *) echo "no 'reload succeeded'"; return 1 ;; esac
	n_ok 5
}
check upgrade-then-reload-reaches-new-master upgrade_then_reload
check upgrade-then-stop-under-2s-nothing-left stop_check 3>&1

# ---------------------------------------------- 11. socket activation
sc stop hitcountd.service > /dev/null 2>&1
socket_first_request() {
	local b c
	c=$(cursor)
	sc start hitcountd.socket || return 1
	echo "hitcountd.socket: $(prop hitcountd.socket ActiveState), Listen: $(prop hitcountd.socket Listen)"
	echo "hitcountd.service: $(prop hitcountd ActiveState)"
	is_inactive hitcountd || { echo "the service runs before any connection"; return 1; }
	b=$(body)
	echo "first request: $b"
	case $b in "Page visited "*" times") ;; *) echo "first request: $b"; return 1 ;; esac
	is_active hitcountd || { echo "service not active after the first request"; return 1; }
	wait_for 5 eval 'journal_since "$c" | grep -q "socket activation: listening on"'
	journal_since "$c" | grep "socket activation" || { echo "the daemon did not adopt the socket"; return 1; }
}
check socket-activation-serves-first-request socket_first_request

socket_restart_under_load() {
	local m0 m1 failed=
	wait_for 10 eval '[ "$(nwords $(workers))" = $WORKERS ]'
	m0=$(main_pid)
	wrk_start restart 8
	visits_grow 200 || failed="$failed; no load before the first restart"
	sc restart hitcountd.service || failed="$failed; the first restart failed"
	visits_grow 200 || failed="$failed; no load after the first restart"
	sc restart hitcountd.service || failed="$failed; the second restart failed"
	visits_grow 200 || failed="$failed; no load after the second restart"
	m1=$(main_pid)
	wrk_result restart
	echo "master $m0 -> $m1"
	note "socket restart under load, wrk: $wrk_summary" >&3
	[ -z "$failed" ] || { echo "${failed#; }"; return 1; }
	[ "$m1" != "$m0" ] && is_active hitcountd || { echo "not restarted"; return 1; }
	[ "$wrk_req" -gt 0 ] || { echo "no requests"; return 1; }
	[ "$wrk_bad" -eq 0 ] || { echo "wrk: $wrk_summary"; return 1; }
}
check socket-restart-under-load-refuses-nothing socket_restart_under_load 3>&1

final_stop() {
	sc stop hitcountd.socket hitcountd.service
	wait_for 10 no_hitcountd
	hitcountd_procs
	no_hitcountd
}
check final-stop-nothing-left final_stop
ex journalctl -q --no-pager -u hitcountd.service -u hitcountd.socket > "$logs/journal-hitcountd.log" 2>&1

all_done=1
exit 0
