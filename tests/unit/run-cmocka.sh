#!/bin/sh
# Run one cmocka test binary for `make check`.  cmocka refuses to overwrite
# an existing XML report (it then prints to stdout instead), so remove the
# report of this binary's group (test_http -> tests/http.xml) first.
group=$(basename "$1")
group=${group#test_}
rm -f "tests/$group.xml"
exec "$@"
