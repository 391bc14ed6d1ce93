#!/bin/sh
# check-conf-keys.sh: every option declared in src/confkey.c must appear in the
# example configuration etc/hitcountd.conf and be documented in
# man/hitcountd.conf.5.in, and all three must agree on the defaults: what
# `hitcountd -T` prints for an empty file (the table's defaults) must be
# what etc/hitcountd.conf sets, what the man page's example of the
# defaults sets, and what its "The default is" of each key says.
# Run by "make check" (automake TESTS); exit 0 = pass, 1 = fail.  Uses
# $srcdir (default ".") and $HITCOUNTD (default ./src/hitcountd, the
# build tree's daemon).

srcdir=${srcdir:-.}
conf_c=$srcdir/src/confkey.c
example=$srcdir/etc/hitcountd.conf
manpage=$srcdir/man/hitcountd.conf.5.in
hitcountd=${HITCOUNTD:-./src/hitcountd}

for f in "$conf_c" "$example" "$manpage"; do
	if [ ! -r "$f" ]; then
		echo "FAIL: cannot read $f" >&2
		exit 1
	fi
done
if [ ! -x "$hitcountd" ]; then
	echo "FAIL: no daemon at $hitcountd (build it, or set HITCOUNTD)" >&2
	exit 1
fi

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

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# A configuration as sorted "section.key = value" lines, without comments
# and blank lines, and with one space around each "=".
settings() {
	awk '{ sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "") }
	/^#/ || /^$/ { next }
	/^[a-z_]+[ \t]*\{$/ { sub(/[ \t]*\{$/, ""); sec = $0 "."; next }
	/^\}$/ { sec = ""; next }
	{ sub(/[ \t]*=[ \t]*/, " = "); print sec $0 }' | sort
}

: >"$tmp/empty.conf"
if ! env -u REDIS_HOST -u REDIS_PORT -u REDIS_URL -u REDIS_PASSWORD \
    "$hitcountd" -T -f "$tmp/empty.conf" \
    >"$tmp/dump" 2>"$tmp/err"; then
	echo "FAIL: $hitcountd -T of an empty file: $(cat "$tmp/err")" >&2
	exit 1
fi
settings <"$tmp/dump" >"$tmp/defaults"

# Every declared key (and section) is printed by -T, and no other.
{
	sed -e 's/ = .*//' -e 's/^.*\.//' "$tmp/defaults"
	sed -n 's/^\([a-z_]*\)\..*/\1/p' "$tmp/defaults"
} | sort -u >"$tmp/names"
if ! printf '%s\n' "$keys" | diff - "$tmp/names" >"$tmp/diff"; then
	echo "FAIL: the keys of $conf_c ('<') and of hitcountd -T ('>')" \
	    "differ:" >&2
	cat "$tmp/diff" >&2
	status=1
fi

# The defaults of etc/hitcountd.conf, and of the man page's example of the
# defaults (the first literal display under EXAMPLES).
settings <"$example" >"$tmp/example"
awk '/^\.Sh EXAMPLES/ { ex = 1 } ex && /^\.Bd -literal/ { on = 1; next }
	on && /^\.Ed/ { exit } on' "$manpage" | settings >"$tmp/manexample"
for f in example manexample; do
	if ! diff "$tmp/defaults" "$tmp/$f" >"$tmp/diff"; then
		[ "$f" = example ] && what=$example ||
		    what="the EXAMPLES of $manpage"
		echo "FAIL: the defaults ('<', hitcountd -T of an empty file)" \
		    "and $what ('>') differ:" >&2
		cat "$tmp/diff" >&2
		status=1
	fi
done

# "The default is VALUE." in each key's entry of the man page (VALUE may
# be on the next line), with the mdoc quoting macros and all double quotes
# removed on both sides.
man_default() {
	awk -v key="$1" '
		found && /^\.(It|El)([ \t]|$)/ { exit }
		$0 ~ "^\\.It Ic " key "([ \t]|$)" { found = 1; next }
		found && grab { print; done = 1; exit }
		found && /The default is/ {
			sub(/.*The default is[ \t]*/, "")
			if ($0 == "") grab = 1; else { print; done = 1; exit }
		}
		END { exit !done }' "$manpage"
}
while read -r name eq value; do
	key=${name##*.}
	if ! doc=$(man_default "$key"); then
		echo "FAIL: $manpage gives no default of '$key'" >&2
		status=1
		continue
	fi
	doc=$(printf '%s\n' "$doc" |
	    sed -E -e 's/^\.(Qq|Ql|Cm)[[:space:]]*//' -e 's/[[:space:]]*\.$//' \
		-e 's/\\\(dq/"/g' -e 's/"//g')
	want=$(printf '%s\n' "$value" | sed 's/"//g')
	if [ "$doc" != "$want" ]; then
		echo "FAIL: the default of '$key' is '$want' (hitcountd -T)," \
		    "$manpage says '$doc'" >&2
		status=1
	fi
done <"$tmp/defaults"

if [ "$status" -eq 0 ]; then
	echo "PASS: all $n keys of $conf_c are in $example and $manpage," \
	    "with the defaults of hitcountd -T"
fi
exit "$status"
