# tests/container/lib-dockerd.sh - a private Docker engine and a local
# debian:bookworm-slim, for the test scripts that need a real Docker
# engine on a Debian 12 machine that cannot pull from Docker Hub
# (tests/container/run.sh and tests/systemd/run.sh).
#
# Sourced by bash; defines functions and variables only, starts nothing.
# Every command is bounded by `tmo` (seconds left, DT by default) when the
# sourcing script defines it, by DT (default 120) otherwise.
#
#   dockerd_start DIR POOL LOG  start dockerd in DIR (made with mktemp -d by
#                               the caller) with its own data-root,
#                               exec-root and socket, no iptables, no
#                               ip_forward, no default bridge, networks from
#                               the address pool POOL (e.g. 172.29.0.0/16;
#                               a different pool per script lets two run at
#                               once); exports DOCKER_HOST, DOCKER_CONFIG and
#                               DOCKER_BUILDKIT=0, sets dockerd_pid.
#                               0 once the engine answers (60 s), else 1.
#   dockerd_purge LOG           remove every container, volume, bridge
#                               network and image of that engine; 0 if
#                               nothing is left.  Sets dockerd_bridges.
#   dockerd_stop                TERM to dockerd (it stops its containerd),
#                               KILL after 30 s; then containerd if it is
#                               left, and the links of dockerd_bridges.
#                               0 if dockerd stopped on TERM.
#   dockerd_remove_dir DIR      unmount what the engine left under DIR and
#                               remove DIR.
#   rootfs_ensure TAR MIRROR MAX_AGE_DAYS WORKDIR [SUITE]
#                               the debootstrapped SUITE (default bookworm;
#                               trixie for the Dockerfile's build stage)
#                               minbase tarball (as debian:SUITE-slim: its
#                               apt sources, apt and dpkg settings), made
#                               in WORKDIR when
#                               TAR is missing, older than MAX_AGE_DAYS or
#                               corrupt; 0 when TAR is usable.  A lock on
#                               TAR.lock keeps two scripts from making it
#                               at once.

# The cache of debootstrapped rootfs tarballs, the mirror they come from
# and the age after which they are made again, from the environment.
cache=${HITCOUNTD_CI_CACHE:-/var/cache/hitcountd-ci}
mirror=${HITCOUNTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
max_age=${HITCOUNTD_ROOTFS_MAX_AGE_DAYS:-30}

lib_tmo() {
	if declare -F tmo > /dev/null; then
		tmo
	else
		echo "${DT:-120}"
	fi
}
lib_docker() { timeout "$(lib_tmo)" /usr/bin/docker "$@"; }

dockerd_pid=
dockerd_dir=
dockerd_bridges=

dockerd_start() {
	local d=$1 pool=$2 log=$3 i
	dockerd_dir=$d
	mkdir -p "$d/data" "$d/exec" "$d/cli" || return 1
	echo '{}' > "$d/daemon.json"
	export DOCKER_HOST="unix://$d/docker.sock"
	export DOCKER_CONFIG="$d/cli"
	export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
	/usr/sbin/dockerd --config-file "$d/daemon.json" \
	    --iptables=false --ip6tables=false --ip-forward=false --bridge=none \
	    --default-address-pool "base=$pool,size=24" \
	    --storage-driver=overlay2 --data-root "$d/data" --exec-root "$d/exec" \
	    -H "$DOCKER_HOST" --pidfile "$d/dockerd.pid" > "$log" 2>&1 &
	dockerd_pid=$!
	for i in $(seq 120); do
		timeout 10 /usr/bin/docker version > /dev/null 2>&1 && return 0
		kill -0 "$dockerd_pid" 2> /dev/null || return 1
		sleep 0.5
	done
	return 1
}

dockerd_purge() {
	local log=$1 ids id
	ids=$(lib_docker ps -aq)
	[ -n "$ids" ] && lib_docker rm -f $ids >> "$log" 2>&1
	ids=$(lib_docker volume ls -q)
	[ -n "$ids" ] && lib_docker volume rm $ids >> "$log" 2>&1
	dockerd_bridges=$(lib_docker network ls -q --filter driver=bridge)
	for id in $dockerd_bridges; do
		lib_docker network rm "$id" >> "$log" 2>&1
	done
	lib_docker image prune -a -f >> "$log" 2>&1
	for _ in 1 2 3; do      # children before parents
		ids=$(lib_docker images -aq | sort -u)
		[ -z "$ids" ] && break
		lib_docker rmi -f $ids >> "$log" 2>&1
	done
	[ -z "$(lib_docker ps -aq)" ] && [ -z "$(lib_docker volume ls -q)" ] &&
	    [ -z "$(lib_docker network ls -q --filter driver=bridge)" ] &&
	    [ -z "$(lib_docker images -aq)" ]
}

dockerd_stop() {
	local cpid rc=0 id
	[ -n "$dockerd_pid" ] || return 0
	cpid=$(cat "$dockerd_dir/exec/containerd/containerd.pid" 2> /dev/null)
	kill -TERM "$dockerd_pid" 2> /dev/null
	for _ in $(seq 60); do
		kill -0 "$dockerd_pid" 2> /dev/null || break
		sleep 0.5
	done
	if kill -0 "$dockerd_pid" 2> /dev/null; then
		kill -KILL "$dockerd_pid"
		rc=1
	fi
	wait "$dockerd_pid" 2> /dev/null
	if [ -n "$cpid" ] && kill -0 "$cpid" 2> /dev/null; then
		sleep 2
		kill -0 "$cpid" 2> /dev/null && kill -KILL "$cpid"
	fi
	for id in $dockerd_bridges; do
		ip link show "br-${id:0:12}" > /dev/null 2>&1 &&
		    ip link del "br-${id:0:12}"
	done
	dockerd_pid=
	return $rc
}

dockerd_remove_dir() {
	local d=$1 m
	[ -n "$d" ] && [ -d "$d" ] || return 0
	findmnt -rn -o TARGET | grep "^$d/" | sort -r | while read -r m; do
		umount -l "$m"
	done
	rm -rf --one-file-system "$d"
}

# The debootstrap itself, for rootfs_ensure (under its lock).
rootfs_make() {
	local tar=$1 mirror=$2 root="$4/rootfs" suite=${5:-bookworm} rc
	timeout "$(DT=900 lib_tmo)" debootstrap --variant=minbase "$suite" "$root" "$mirror" || return 1
	# As the official image: the updates and security suites, and the
	# slim variant's apt and dpkg settings.
	rm -f "$root/etc/apt/sources.list"
	cat > "$root/etc/apt/sources.list.d/debian.sources" <<-EOF
	Types: deb
	URIs: http://deb.debian.org/debian
	Suites: $suite $suite-updates
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

	Types: deb
	URIs: http://deb.debian.org/debian-security
	Suites: $suite-security
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	cat > "$root/etc/apt/apt.conf.d/docker-clean" <<-'EOF'
	DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
	APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
	Dir::Cache::pkgcache "";
	Dir::Cache::srcpkgcache "";
	EOF
	echo 'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/docker-no-languages"
	cat > "$root/etc/dpkg/dpkg.cfg.d/docker" <<-'EOF'
	path-exclude /usr/share/doc/*
	path-include /usr/share/doc/*/copyright
	path-exclude /usr/share/man/*
	path-exclude /usr/share/info/*
	path-exclude /usr/share/locale/*
	path-include /usr/share/locale/locale.alias
	EOF
	# ... and what those settings keep out of later installs.
	find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/*
	find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
	    -exec rm -rf {} +
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
	    "$root"/var/log/*.log "$root"/var/log/apt/* "$root/debootstrap"
	mkdir -p "$(dirname "$tar")"
	tar --numeric-owner -C "$root" -c . | gzip -1 > "$tar.tmp.$$" &&
	    mv "$tar.tmp.$$" "$tar"
	rc=$?
	rm -f "$tar.tmp.$$"
	rm -rf --one-file-system "$root"
	return $rc
}

rootfs_usable() {       # rootfs_usable TAR MAX_AGE_DAYS
	[ -s "$1" ] && [ -n "$(find "$1" -mtime -"$2")" ] && gzip -t "$1" 2> /dev/null
}

rootfs_ensure() {
	local tar=$1 mirror=$2 max_age=$3 work=$4 suite=${5:-bookworm} rc=0
	rootfs_usable "$tar" "$max_age" && return 0
	mkdir -p "$(dirname "$tar")" || return 1
	(
		flock -w "$(DT=1800 lib_tmo)" 9 || exit 1
		# Made by another script while this one waited for the lock?
		rootfs_usable "$tar" "$max_age" && exit 0
		rm -f "$tar"
		rootfs_make "$tar" "$mirror" "$max_age" "$work" "$suite"
	) 9> "$tar.lock" || rc=1
	return $rc
}
