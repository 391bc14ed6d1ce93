#!/bin/sh
# The man pages must be clean under mandoc -Tlint (warnings included):
# the ones this build made from man/*.in, with its paths.  And none may
# name a path this build did not configure (@...@ left, /usr/local/etc
# when the configuration is elsewhere).
prefix=$(sed -n 's/^prefix = //p' Makefile)
sysconfdir=$(sed -n 's/^sysconfdir = //p' Makefile | sed "s|\${prefix}|$prefix|")
for p in man/hitcountd.8 man/hitcountd.conf.5; do
	if grep -n '@[a-z]*@' "$p"; then
		echo "FAIL: $p: a path was not substituted"
		exit 1
	fi
	if grep -qF '/usr/local/etc' "$p" && [ "$sysconfdir" != /usr/local/etc ]; then
		grep -nF '/usr/local/etc' "$p"
		echo "FAIL: $p names /usr/local/etc, this build's sysconfdir is $sysconfdir"
		exit 1
	fi
done
out=$(mandoc -Tlint -Wwarning man/hitcountd.8 man/hitcountd.conf.5 2>&1)
rc=$?
if [ -n "$out" ] || [ $rc -ne 0 ]; then
	printf '%s\n' "$out"
	echo "FAIL: mandoc -Tlint reported problems"
	exit 1
fi
echo "PASS: man pages lint clean"
