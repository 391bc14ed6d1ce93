#!/bin/sh
# End-to-end tests of hitcountd (run by `make check` from the build directory).
#
# Environment:
#   srcdir     source directory (set by automake; may be read-only under
#              `make distcheck`); default: the directory above this script
#   HITCOUNTD  daemon under test; default: $(pwd)/src/hitcountd
#   E2E_K      a pytest -k expression: only the tests it matches
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

# E2E_K: a pytest -k expression choosing the tests (.ci/run's sanitizer
# run leaves out what other steps cover); all of them without it.
/usr/bin/python3 -m pytest -p no:cacheprovider -q ${E2E_K:+-k "$E2E_K"} \
    --junitxml="$builddir/tests/e2e-junit.xml" "$srcdir/tests/e2e" "$@"
exit $?
