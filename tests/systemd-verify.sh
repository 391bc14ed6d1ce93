#!/bin/sh
# etc/hitcountd.service must pass `systemd-analyze verify`.  The unit is
# instantiated with this build's binary and config so that verify can check
# that every command it names exists and is executable.
srcdir=${srcdir:-.}
builddir=$(pwd)
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "FAIL: systemd-analyze is not installed (package systemd)"
	exit 1
fi
tmp=$(mktemp -d /tmp/hitcountd-unit.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sed -e "s|@sbindir@|$builddir/src|g" -e "s|@sysconfdir@|$(cd "$srcdir" && pwd)/etc|g" \
    "$srcdir/etc/hitcountd.service.in" > "$tmp/hitcountd.service"
out=$(systemd-analyze verify --man=no "$tmp/hitcountd.service" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	printf '%s\n' "$out"
	echo "FAIL: systemd-analyze verify rejected the unit"
	exit 1
fi
grep -q '^Type=notify$' "$tmp/hitcountd.service" &&
grep -q '^KillMode=mixed$' "$tmp/hitcountd.service" &&
grep -q '^ExecReload=.* -t -f ' "$tmp/hitcountd.service" || {
	echo "FAIL: the unit lacks Type=notify, KillMode=mixed or a checked reload"
	exit 1
}
echo "PASS: systemd-analyze verify accepts hitcountd.service"
