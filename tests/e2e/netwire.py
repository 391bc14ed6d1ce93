#!/usr/bin/python3
"""netwire.py - a faulty network link between this host and a network
namespace, for the e2e tests of hitcountd (stdlib only, run as root).

What `tc qdisc ... netem delay D loss P` does on a veth pair, done in user
space, because the kernels the tests run on may be built without netem
(CONFIG_NET_SCH_NETEM unset, and no modules to load): the link is two TUN
devices, HOSTDEV in this process's namespace and NSDEV in namespace NS,
and this process carries every IP packet from one to the other.  Each
packet may be dropped at random (loss, in each direction) and is held
back for the delay of its direction, order kept, as netem does.  A
partition is the namespace's end of the link set down by the caller (`ip
link set NSDEV down`): packets written to it are dropped by the kernel.

Usage: netwire.py HOSTDEV NS NSDEV.  Both devices are created here, not
persistent: they disappear when this process exits, which it does when
its standard input reaches end of file (so when the test goes away).
Once both exist it prints "ready".  Commands on standard input, one a
line, each answered by one line:

    set TO_NS_MS TO_HOST_MS LOSS_PERCENT   -> "ok"
    stats                                  -> "carried N dropped N"

The caller gives the devices their addresses and routes; nothing here
sends a packet anywhere but into the other device.
"""

import collections
import ctypes
import fcntl
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454ca
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000


def open_tun(name):
    """A new TUN device called name, in this thread's network namespace."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF,
                struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def enter_netns(name):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns %s: %s" % (name, os.strerror(err)))
    finally:
        os.close(fd)


class Direction:
    """Packets read from src, written to dst after the delay."""

    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.delay = 0.0
        self.queue = collections.deque()      # (due, packet), due ascending

    def read(self, loss, stats):
        while True:
            try:
                pkt = os.read(self.src, 65536)
            except BlockingIOError:
                return
            except OSError:
                return                        # the device is down
            if loss and random.random() < loss:
                stats["dropped"] += 1
                continue
            due = time.monotonic() + self.delay
            if self.queue and self.queue[-1][0] > due:
                due = self.queue[-1][0]       # the delay shrank: keep order
            self.queue.append((due, pkt))

    def flush(self, now, stats):
        while self.queue and self.queue[0][0] <= now:
            _, pkt = self.queue.popleft()
            try:
                os.write(self.dst, pkt)
                stats["carried"] += 1
            except OSError:                   # down (a partition), or full
                stats["dropped"] += 1

    def next_due(self):
        return self.queue[0][0] if self.queue else None


def command(line, dirs, state, stats):
    words = line.split()
    if words[:1] == ["set"] and len(words) == 4:
        dirs[0].delay = float(words[1]) / 1000.0
        dirs[1].delay = float(words[2]) / 1000.0
        state["loss"] = float(words[3]) / 100.0
        return "ok"
    if words == ["stats"]:
        return "carried %d dropped %d" % (stats["carried"], stats["dropped"])
    return "error: unknown command %r" % line


def main():
    hostdev, ns, nsdev = sys.argv[1:4]
    host_fd = open_tun(hostdev)
    enter_netns(ns)
    ns_fd = open_tun(nsdev)
    dirs = (Direction(host_fd, ns_fd), Direction(ns_fd, host_fd))
    state = {"loss": 0.0}
    stats = {"carried": 0, "dropped": 0}
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    pending = b""
    print("ready", flush=True)
    while True:
        dues = [d.next_due() for d in dirs if d.next_due() is not None]
        wait = max(0.0, min(dues) - time.monotonic()) if dues else 1.0
        readable, _, _ = select.select([host_fd, ns_fd, stdin], [], [], wait)
        if stdin in readable:
            data = os.read(stdin, 4096)
            if not data:
                return 0
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                print(command(line.decode(), dirs, state, stats), flush=True)
        for d in dirs:
            if d.src in readable:
                d.read(state["loss"], stats)
        now = time.monotonic()
        for d in dirs:
            d.flush(now, stats)


if __name__ == "__main__":
    sys.exit(main())
