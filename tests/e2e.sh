#!/bin/sh
# End-to-end tests of hitcountd (run by `make check` from the build directory).
#
# Environment:
#   srcdir     source directory (set by automake; may be read-only under
#              `make distcheck`); default: the directory above this script
#   HITCOUNTD  daemon under test; default: $(pwd)/src/hitcountd
# The tests start real redis-server, hitcountd and chromium processes on
# 127.0.0.1 (free ports only), and nginx, sentinels, wrk, valgrind ...; a
# test whose tool is missing fails with the Debian package to install
# (tests/e2e/e2e_helpers.py: require_tool).  The exit status is pytest's.

: "${srcdir:=$(dirname "$0")/..}"
builddir=$(pwd)

if [ -z "${HITCOUNTD:-}" ]; then
    HITCOUNTD=$builddir/src/hitcountd
fi
export HITCOUNTD

# never write byte code into the (possibly read-only) source tree
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

mkdir -p "$builddir/tests" || exit 99

/usr/bin/python3 -m pytest -p no:cacheprovider -q \
    --junitxml="$builddir/tests/e2e-junit.xml" "$srcdir/tests/e2e" "$@"
exit $?
