#!/bin/sh
# The man pages must be clean under mandoc -Tlint (warnings included).
srcdir=${srcdir:-.}
out=$(mandoc -Tlint -Wwarning "$srcdir/man/hitcountd.8" "$srcdir/man/hitcountd.conf.5" 2>&1)
rc=$?
if [ -n "$out" ] || [ $rc -ne 0 ]; then
	printf '%s\n' "$out"
	echo "FAIL: mandoc -Tlint reported problems"
	exit 1
fi
echo "PASS: man pages lint clean"
