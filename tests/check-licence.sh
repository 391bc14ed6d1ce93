#!/bin/sh
# check-licence.sh: the licence is where a packager or a user looks for it.
# LICENSE holds the BSD-2-Clause text and the copyright line; `make install`
# puts it in the documentation directory; both man pages, the README,
# configure.ac, the Dockerfile (its OCI label, and the copy in the image)
# and, when present, debian/copyright name it; the image's version label
# and debian/changelog's first entry are configure.ac's version.  Run by "make check" from
# the build tree (installs into a temporary DESTDIR); exit 0 = pass.
srcdir=${srcdir:-.}
status=0
fail() { echo "FAIL: $*" >&2; status=1; }
has() {         # has FILE FIXED-STRING
	grep -qF -- "$2" "$1" 2>/dev/null || fail "$1 does not say: $2"
}

copyright='Copyright (c) 2026 The hitcountd developers'
has "$srcdir/LICENSE" "$copyright"
has "$srcdir/LICENSE" 'Redistributions in binary form must reproduce'
for page in "$srcdir/man/hitcountd.8" "$srcdir/man/hitcountd.conf.5"; do
	[ -r "$page" ] || page=man/${page##*/}
	[ -r "$page.in" ] && page=$page.in
	has "$page" 'BSD-2-Clause'
done
has "$srcdir/README.md" 'BSD-2-Clause'
has "$srcdir/README.md" 'LICENSE'
has "$srcdir/configure.ac" 'SPDX-License-Identifier: BSD-2-Clause'
has "$srcdir/Dockerfile" 'org.opencontainers.image.licenses="BSD-2-Clause"'
has "$srcdir/Dockerfile" 'share/doc/hitcountd/LICENSE'
version=$(sed -n 's/^AC_INIT(\[hitcountd\], \[\([^]]*\)\].*/\1/p' "$srcdir/configure.ac")
has "$srcdir/Dockerfile" "org.opencontainers.image.version=\"$version\""
if [ -d "$srcdir/debian" ]; then
	has "$srcdir/debian/copyright" 'License: BSD-2-Clause'
	has "$srcdir/debian/copyright" "${copyright#Copyright (c) }"
	head -n 1 "$srcdir/debian/changelog" | grep -qF "hitcountd ($version)" ||
	    fail "debian/changelog's first entry is not version $version"
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
if ${MAKE:-make} -s install DESTDIR="$tmp" > "$tmp.log" 2>&1; then
	lic=$(find "$tmp" -path '*/share/doc/hitcountd/LICENSE')
	if [ -z "$lic" ]; then
		fail "make install did not install share/doc/hitcountd/LICENSE"
	elif ! cmp -s "$lic" "$srcdir/LICENSE"; then
		fail "the installed $lic differs from LICENSE"
	fi
else
	cat "$tmp.log" >&2
	fail "make install DESTDIR=$tmp"
fi
rm -f "$tmp.log"
[ $status -eq 0 ] && echo "PASS: the licence is in every place checked"
exit $status
