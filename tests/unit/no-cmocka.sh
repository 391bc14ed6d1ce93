#!/bin/sh
# Stands in for the unit tests when configure found no cmocka: fail, and
# say what to install, instead of letting them go unrun.
echo "cmocka was not found when configure ran: the unit tests were not built." >&2
echo "Install it (Debian: apt-get install libcmocka-dev), then run ./configure again." >&2
exit 1
