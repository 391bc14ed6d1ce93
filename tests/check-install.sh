#!/bin/sh
# check-install.sh: what `make install` leaves, as an administrator finds
# it.  Installs twice into a temporary DESTDIR: the first install puts
# the configuration in place; the second (an upgrade) keeps the edited
# file.  The installed man pages and units name this build's paths, never
# an unsubstituted @...@.  Run by "make check" from the build tree; exit 0
# = pass.
status=0
fail() { echo "FAIL: $*" >&2; status=1; }
prefix=$(sed -n 's/^prefix = //p' Makefile)
sysconfdir=$(sed -n 's/^sysconfdir = //p' Makefile | sed "s|\${prefix}|$prefix|")

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
inst() { ${MAKE:-make} -s install DESTDIR="$tmp/root" > "$tmp/log" 2>&1 || {
	cat "$tmp/log" >&2; fail "make install DESTDIR=$tmp/root"; exit 1; }; }
conf=$tmp/root$sysconfdir/hitcountd.conf

inst
[ -f "$conf" ] || fail "the first make install did not install $sysconfdir/hitcountd.conf"
echo '# edited by the administrator' >> "$conf"
inst
grep -q '^# edited by the administrator$' "$conf" ||
    fail "a second make install replaced the edited $sysconfdir/hitcountd.conf"
grep -q "keeping .*hitcountd.conf" "$tmp/log" ||
    fail "the second make install did not say it kept the configuration"
[ -n "$(find "$tmp/root" -path '*/share/doc/hitcountd/hitcountd.conf')" ] ||
    fail "no example configuration in the documentation directory"
for f in $(find "$tmp/root" -path '*/man/man*/hitcountd*' -o -name 'hitcountd.s*'); do
	grep -n '@[a-z]*@' "$f" && fail "$f: a path was not substituted"
	grep -qF "$sysconfdir/hitcountd.conf" "$f" ||
	    fail "$f does not name $sysconfdir/hitcountd.conf"
done
[ $status -eq 0 ] && echo "PASS: make install keeps the configuration, pages and units name $sysconfdir"
exit $status
