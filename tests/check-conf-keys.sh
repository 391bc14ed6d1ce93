#!/bin/sh
# check-conf-keys.sh: every option declared in src/conf.c must appear in the
# example configuration etc/hitcountd.conf and be documented in
# man/hitcountd.conf.5.  Run by "make check" (automake TESTS); exit 0 = pass,
# 1 = fail.  Uses $srcdir (default ".").

srcdir=${srcdir:-.}
conf_c=$srcdir/src/conf.c
example=$srcdir/etc/hitcountd.conf
manpage=$srcdir/man/hitcountd.conf.5

for f in "$conf_c" "$example" "$manpage"; do
	if [ ! -r "$f" ]; then
		echo "FAIL: cannot read $f" >&2
		exit 1
	fi
done

# Option names: the first string argument of every libconfuse declaration
# macro (CFG_INT, CFG_STR, CFG_STR_LIST, CFG_SEC, CFG_INT_CB, CFG_SIMPLE_*,
# ...).  The file is joined into one line so that declarations spread over
# several lines are found, and C comments are removed first.
keys=$(tr '\n' ' ' <"$conf_c" |
	sed -E 's#/\*([^*]|\*+[^*/])*\*+/# #g' |
	grep -o 'CFG_[A-Z_]*[[:space:]]*([[:space:]]*"[^"]*"' |
	sed -e 's/^[^"]*"//' -e 's/"$//' |
	sort -u)

if [ -z "$keys" ]; then
	echo "FAIL: no option declarations (CFG_...(\"name\", ...)) found in $conf_c" >&2
	exit 1
fi

status=0
n=0
for key in $keys; do
	n=$((n + 1))
	# Example config: an uncommented "key = value" or section "key {".
	if ! grep -Eq "^[[:space:]]*$key[[:space:]]*(=|\\{)" "$example"; then
		echo "FAIL: key '$key' is missing from $example" >&2
		status=1
	fi
	# Man page: a ".It Ic key" list entry, or a ".Ss" heading naming it
	# (used for sections).
	if ! grep -Eq "^\\.It[[:space:]]+Ic[[:space:]]+$key([[:space:]]|\$)" "$manpage" &&
	   ! grep -Eq "^\\.Ss[[:space:]].*(^|[^A-Za-z0-9_])$key([^A-Za-z0-9_]|\$)" "$manpage"; then
		echo "FAIL: key '$key' is not documented in $manpage" >&2
		status=1
	fi
done

if [ "$status" -eq 0 ]; then
	echo "PASS: all $n keys of $conf_c are in $example and $manpage"
fi
exit "$status"
