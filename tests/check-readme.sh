#!/bin/sh
# check-readme.sh: the README is what a newcomer needs and agrees with the
# daemon: its run command installs only the run dependencies, its test
# command is the one .ci/run runs, its minimal configuration passes
# `hitcountd -t`, it names systemctl's --kill-whom (not the old
# --kill-who) and holds no copy of the Redis ACL (hitcountd.conf(5) has
# it), and it stays short.  Run by "make check"; exit 0 = pass.
srcdir=${srcdir:-.}
readme=$srcdir/README.md
hitcountd=${HITCOUNTD:-./src/hitcountd}
status=0
fail() { echo "FAIL: $*" >&2; status=1; }
grep -qxF '.ci/deps run && ./autogen.sh && ./configure && make && make run' "$readme" ||
    fail "no run command with '.ci/deps run'"
grep -qxF '.ci/deps && ./autogen.sh && ./configure && make check' "$readme" ||
    fail "no test command"
grep -n -- '--kill-who=' "$readme" && fail "--kill-who is systemctl's old name"
grep -n 'ACL SETUSER\|+incr +get' "$readme" "$srcdir/HACKING.md" &&
    fail "a copy of the ACL: point to hitcountd.conf(5)"
n=$(wc -l < "$readme")
[ "$n" -le 180 ] || fail "README.md has $n lines, more than 180"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
# The block after "## A minimal configuration", with pidfile off.
awk '/^## A minimal configuration/ {s = 1} s && /^```$/ {if (in_) exit; in_ = 1; next}
     s && in_' "$readme" > "$tmp/min.conf"
echo 'pidfile = ""' >> "$tmp/min.conf"
grep -q '^redis {' "$tmp/min.conf" || fail "no minimal configuration found"
"$hitcountd" -t -f "$tmp/min.conf" > "$tmp/out" 2>&1 ||
    fail "the minimal configuration is refused: $(cat "$tmp/out")"
[ $status -eq 0 ] && echo "PASS: the README's commands and configuration hold"
exit $status
