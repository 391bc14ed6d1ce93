/*
 * channel.c - the command channel between the master and one worker.
 *
 * Every worker shares an AF_UNIX socket pair with the master, as nginx's
 * workers share their ngx_channel.  The worker writes one byte once it is
 * serving; the master writes one byte per command: drain (answer /readyz
 * with 503 but go on serving), stop gracefully, stop now, reopen the log
 * files.  Writing to a socket needs no permission over
 * the process at the other end, so the master commands workers running as
 * another user even without CAP_KILL (as under a systemd unit's bounding
 * set); signals remain only the fallback for a worker whose channel is
 * gone.  A worker also learns from end of file on its channel that the
 * master has died.
 *
 * Common ground: calls only log.c; used by master.c, workertab.c and
 * spawn.c on the master's side, worker.c on the other.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>

#include "channel.h"
#include "log.h"

int
channel_open(int fds[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == -1) {
		log_warn("socketpair");
		return -1;
	}
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1) {
		log_warn("fcntl O_NONBLOCK");
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	return 0;
}

int
channel_send(int fd, enum channel_msg msg)
{
	char byte = (char)msg;
	ssize_t n;

	do
		n = send(fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

int
channel_recv(int fd, char *buf, int len)
{
	ssize_t n;

	do
		n = recv(fd, buf, (size_t)len, MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	return (int)n;
}
