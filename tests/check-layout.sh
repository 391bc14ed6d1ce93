#!/bin/sh
# check-layout.sh: src/ keeps the layers HACKING.md's layout describes (no
# include up a layer, no include circle, no file over 900 lines or function
# over 100, a purpose paragraph atop each .c file); check-layout.py says
# how.  Run by "make check"; exit 0 = pass.
srcdir=${srcdir:-.}
exec /usr/bin/python3 "$srcdir/tests/check-layout.py" "$srcdir"
