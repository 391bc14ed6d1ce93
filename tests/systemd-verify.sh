#!/bin/sh
# etc/hitcountd.service and etc/hitcountd.socket must pass `systemd-analyze
# verify`.  The units are instantiated with this build's binary and config
# so that verify can check that every command they name exists and is
# executable, and side by side so that it finds the service the socket
# starts.
srcdir=${srcdir:-.}
builddir=$(pwd)
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "FAIL: systemd-analyze is not installed (package systemd)"
	exit 1
fi
tmp=$(mktemp -d /tmp/hitcountd-unit.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for u in service socket; do
	sed -e "s|@sbindir@|$builddir/src|g" -e "s|@sysconfdir@|$(cd "$srcdir" && pwd)/etc|g" \
	    "$srcdir/etc/hitcountd.$u.in" > "$tmp/hitcountd.$u"
done
out=$(systemd-analyze verify --man=no "$tmp/hitcountd.service" "$tmp/hitcountd.socket" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	printf '%s\n' "$out"
	echo "FAIL: systemd-analyze verify rejected the units"
	exit 1
fi
# The pidfile's default directory is the unit's RuntimeDirectory; the
# root master may write nowhere else in /run.
: > "$tmp/empty.conf"
pid=$("$builddir/src/hitcountd" -T -f "$tmp/empty.conf" | sed -n 's/^pidfile = "\(.*\)"$/\1/p')
case $pid in
/run/hitcountd/*) ;;
*) echo "FAIL: the default pidfile $pid is not in /run/hitcountd/"; exit 1 ;;
esac
if ! grep -q '^RuntimeDirectory=hitcountd$' "$tmp/hitcountd.service" ||
    grep -q '^ReadWritePaths=.*/run' "$tmp/hitcountd.service"; then
	echo "FAIL: the unit must have RuntimeDirectory=hitcountd and no ReadWritePaths=/run"
	exit 1
fi
# hitcountd -t warns about a shutdown_timeout that this would cut short.
stop=$(sed -n 's/^#define MAIN_UNIT_STOP_TIMEOUT //p' "$srcdir/src/main.c")
grep -q "^TimeoutStopSec=$stop\$" "$tmp/hitcountd.service" || {
	echo "FAIL: the unit's TimeoutStopSec is not src/main.c's MAIN_UNIT_STOP_TIMEOUT ($stop)"
	exit 1
}
grep -q '^Type=notify$' "$tmp/hitcountd.service" &&
grep -q '^KillMode=control-group$' "$tmp/hitcountd.service" &&
grep -q '^ExecReload=.* -t -f ' "$tmp/hitcountd.service" || {
	echo "FAIL: the unit lacks Type=notify, KillMode=control-group or a checked reload"
	exit 1
}
# The master signals workers of another user and hands them the access
# log: without these the bounding set makes a reload and a stop fail.
for cap in CAP_KILL CAP_CHOWN; do
	grep -q "^CapabilityBoundingSet=.*\\<$cap\\>" "$tmp/hitcountd.service" || {
		echo "FAIL: CapabilityBoundingSet lacks $cap"
		exit 1
	}
done
grep -q '^LogsDirectory=hitcountd$' "$tmp/hitcountd.service" || {
	echo "FAIL: the unit lacks LogsDirectory=hitcountd (access log under ProtectSystem=strict)"
	exit 1
}
grep -q '^ListenStream=' "$tmp/hitcountd.socket" &&
grep -q '^WantedBy=sockets.target$' "$tmp/hitcountd.socket" || {
	echo "FAIL: hitcountd.socket lacks ListenStream= or WantedBy=sockets.target"
	exit 1
}
echo "PASS: systemd-analyze verify accepts hitcountd.service and hitcountd.socket"
