#!/bin/bash
# bench/ab.sh BIN_A BIN_B [ROUNDS] [CONNS] [close|ka] [WORKERS]: two
# hitcountd binaries in alternating rounds on one private Redis, the
# requests/s of each round and B's ratio to A.  For a quick question about
# one change (make bench answers the whole comparison): each round starts
# the daemon afresh, warms it with 2 s of wrk, measures 6 s, stops it.
# Defaults: 5 rounds, 50 connections, a new connection per request
# (Connection: close), 2 workers.  Needs redis-server, wrk, curl.
set -eu
A=$1 B=$2 R=${3:-5} C=${4:-50} MODE=${5:-close} W=${6:-2}
dir=$(mktemp -d /tmp/hitcountd-ab.XXXXXX)
port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rp=$(port)
redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no \
    > "$dir/redis.log" 2>&1 &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
hdr=()
[ "$MODE" = close ] && hdr=(-H "Connection: close")
run() {
	local bin=$1 hp m out
	hp=$(port)
	cat > "$dir/h.conf" <<C
listen = {"127.0.0.1:$hp"}
workers = $W
pidfile = "$dir/h.pid"
max_connections = 20000
redis { host = "127.0.0.1" port = $rp }
C
	"$bin" -f "$dir/h.conf" -d > "$dir/h.log" 2>&1 &
	m=$!
	for _ in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$hp/healthz" && break
		sleep 0.1
	done
	wrk -t2 -c"$C" -d2s "${hdr[@]}" "http://127.0.0.1:$hp/" > /dev/null
	out=$(wrk -t2 -c"$C" -d6s "${hdr[@]}" "http://127.0.0.1:$hp/")
	kill "$m"
	wait "$m" 2>/dev/null || true
	echo "$out" | awk '/Requests\/sec/ {print $2}'
}
for r in $(seq "$R"); do
	a=$(run "$A")
	b=$(run "$B")
	awk -v r="$r" -v a="$a" -v b="$b" 'BEGIN { printf "round %d A %s B %s ratio %.3f\n", r, a, b, b / a }'
done
