# tests/container/lib-checks.sh - the check helpers of the scripts that
# print one "PASS name" / "FAIL name" line per check (tests/systemd/run.sh,
# tests/debian/run.sh, tests/container/run.sh).  Sourced by bash; defines functions only.  The
# sourcing script sets npass=0 nfail=0, t_start (date +%s), deadline (the
# same, plus its budget) and logs (a directory for each check's output).
#
#   pass NAME / fail NAME [WHY] / note TEXT   one result or comment line
#   check NAME COMMAND...   PASS if the command succeeds, otherwise FAIL
#                           with the last line it printed (the whole output
#                           is in $logs/NAME.log)
#   elapsed                 seconds since t_start
#   tmo                     seconds a command may take: DT (default 120),
#                           no later than the deadline (unless in_cleanup)
#   docker ARGS...          /usr/bin/docker bounded by tmo
#   wait_for SECONDS COMMAND...   until the command succeeds; 1 on timeout
#   checks_finish           the last lines: the time taken and the counts;
#                           $logs removed if all passed (unless KEEP_LOGS)

pass() { echo "PASS $1"; npass=$((npass + 1)); }
fail() {
	echo "FAIL $1${2:+ ($2)}"
	nfail=$((nfail + 1))
}
note() { echo "# $*"; }
elapsed() { echo $(($(date +%s) - t_start)); }
check() {
	local name=$1 why
	shift
	if "$@" >> "$logs/$name.log" 2>&1; then
		pass "$name"
	else
		why=$(tail -n 1 "$logs/$name.log")
		fail "$name" "${why:-see $logs/$name.log}"
		tail -n 15 "$logs/$name.log" | sed 's/^/    /'
	fi
}
tmo() {
	local t=${DT:-120} left=$((deadline - $(date +%s)))
	if [ -z "${in_cleanup:-}" ] && [ "$left" -lt "$t" ]; then
		t=$((left > 1 ? left : 1))
	fi
	echo "$t"
}
docker() { timeout "$(tmo)" /usr/bin/docker "$@"; }
wait_for() {
	local end=$(($(date +%s) + $1))
	shift
	until "$@" > /dev/null 2>&1; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.3
	done
}
checks_finish() {
	echo "# total time: $(elapsed) s"
	echo "$npass passed, $nfail failed"
	if [ "$nfail" -eq 0 ] && [ -z "${KEEP_LOGS:-}" ]; then
		rm -rf "$logs"
	else
		echo "# logs: $logs"
	fi
}
