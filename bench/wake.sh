#!/bin/bash
# bench/wake.sh W N: how many times the workers wake per new connection.
# W workers, N sequential close-per-request connections; strace counts
# the epoll_wait() returns of every worker.  Each worker wakes for every
# connection while the exclusive set is watched through libevent's epoll
# (issue 19; issue 22 item 3).  Run as root, from the build tree
# (HITCOUNTD overrides src/hitcountd); needs redis-server and strace.
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
pids=$(pgrep -P $mpid | sed 's/^/-p /' | tr '\n' ' ')
# shellcheck disable=SC2086
strace -qq -f $pids -e trace=epoll_wait -o "$dir/st.txt" &
spid=$!
sleep 1
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
sleep 0.5
kill $spid
wait $spid 2>/dev/null || true
waits=$(grep -c 'epoll_wait(' "$dir/st.txt" || true)
echo "workers=$W connections=$N epoll_wait_returns=$waits per_connection=$(echo "scale=2; $waits / $N" | bc)"
