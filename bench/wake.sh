#!/bin/bash
# bench/wake.sh W N: how many times the workers wake per new connection.
# W workers, N sequential close-per-request connections, counted three
# ways: the daemon's own hitcountd_accept_wakeups_total (and the empty
# ones) from /metrics; the voluntary context switches of every thread of
# every worker (/proc/PID/task/*/status: a task that slept and was woken);
# and, in a second pass under strace, the epoll_wait() returns of every
# thread.  Each worker woke for every connection while the exclusive set
# was watched through libevent's epoll (issue 19; issue 22 item 3).  Run
# as root, from the build tree (HITCOUNTD overrides src/hitcountd); needs
# redis-server, curl and strace.
set -eu
W=${1:-2}
N=${2:-300}
bin=${HITCOUNTD:-src/hitcountd}
dir=$(mktemp -d /tmp/hitcountd-wake.XXXXXX)
chmod 755 "$dir"
port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rp=$(port)
hp=$(port)
redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no \
    > "$dir/redis.log" 2>&1 &
rpid=$!
cat > "$dir/h.conf" <<C
listen = {"127.0.0.1:$hp"}
workers = $W
pidfile = "$dir/h.pid"
redis { host = "127.0.0.1" port = $rp }
C
"$bin" -f "$dir/h.conf" -d > "$dir/h.log" 2>&1 &
mpid=$!
trap 'kill $mpid $rpid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do
	[ "$(pgrep -P $mpid | wc -l)" -ge "$W" ] && break
	sleep 0.1
done
sleep 0.5
kids=$(pgrep -P $mpid)
connect() {
	/usr/bin/python3 - "$hp" "$N" <<'P'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while s.recv(4096):
        pass
    s.close()
P
}
ctxsw() {
	local p t sum=0
	for p in $kids; do
		for t in /proc/"$p"/task/*/status; do
			sum=$((sum + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$t")))
		done
	done
	echo $sum
}
metric() {
	curl -s "http://127.0.0.1:$hp/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
per() { echo "scale=2; $1 / $N" | bc; }
m0=$(metric hitcountd_accept_wakeups_total)
e0=$(metric hitcountd_accept_empty_wakeups_total)
c0=$(ctxsw)
connect
c1=$(ctxsw)
m1=$(metric hitcountd_accept_wakeups_total)
e1=$(metric hitcountd_accept_empty_wakeups_total)
pids=$(echo "$kids" | sed 's/^/-p /' | tr '\n' ' ')
# shellcheck disable=SC2086
strace -qq -f $pids -e trace=epoll_wait -o "$dir/st.txt" &
spid=$!
sleep 1
connect
sleep 0.5
kill $spid
wait $spid 2>/dev/null || true
waits=$(grep -c 'epoll_wait(' "$dir/st.txt" || true)
echo "workers=$W connections=$N per connection:" \
    "accept_wakeups=$(per $((m1 - m0))) empty=$(per $((e1 - e0)))" \
    "voluntary_ctxt_switches=$(per $((c1 - c0)))" \
    "epoll_wait_returns=$(per "$waits")"
