#!/bin/sh
# make run: hitcountd in the foreground on port 5000, as the README's quick
# start promises.  If no Redis answers at the configured address (on a
# fresh machine the host "redis" does not exist), start a private
# redis-server on a free 127.0.0.1 port and point hitcountd at it through
# REDIS_HOST/REDIS_PORT, the same override the Docker setup uses.
# Usage: run-quickstart.sh HITCOUNTD CONFIG
set -u
bin=$1
conf=$2
tmp=$(mktemp -d /tmp/hitcountd-run.XXXXXX)
redis_pid=
cleanup() {
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The packaged config writes /run/hitcountd/hitcountd.pid; a quick start needs none.
sed 's|^pidfile[[:space:]]*=.*|pidfile = ""|' "$conf" > "$tmp/hitcountd.conf"
"$bin" -t -f "$tmp/hitcountd.conf" >/dev/null || exit 1

eff=$("$bin" -T -f "$tmp/hitcountd.conf")
host=$(printf '%s\n' "$eff" | sed -n 's/^ *host = "\(.*\)"$/\1/p')
port=$(printf '%s\n' "$eff" | sed -n 's/^ *port = \([0-9]*\)$/\1/p')

if timeout 2 redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG; then
	echo "run: using Redis at $host:$port"
else
	rport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	echo "run: no Redis answers at $host:$port; starting a private redis-server on 127.0.0.1:$rport"
	redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
	    --dir "$tmp" --daemonize no >"$tmp/redis.log" 2>&1 &
	redis_pid=$!
	i=0
	until redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG; do
		i=$((i + 1))
		if [ $i -gt 50 ]; then
			echo "run: redis-server did not start:" >&2
			cat "$tmp/redis.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	REDIS_HOST=127.0.0.1
	REDIS_PORT=$rport
	export REDIS_HOST REDIS_PORT
fi
echo "run: hitcountd on port 5000 (try: curl localhost:5000); Ctrl-C stops it"
"$bin" -D -f "$tmp/hitcountd.conf" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' INT TERM
wait $pid
