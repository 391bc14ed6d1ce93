/*
 * probe.c - a tiny HTTP client for container health checks.
 *
 * `hitcountd -H` asks the daemon's own /healthz, so that a container image
 * needs no curl or wget for its HEALTHCHECK.  It is deliberately small: one
 * connection, one request, the status line of the answer, a hard deadline.
 * Called by main.c only; calls conf.c's listen addresses and clock.c.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conf.h"
#include "clock.h"
#include "probe.h"

/* Wait until fd is ready for events or the deadline passes: 0 or -1. */
static int
probe_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { fd, events, 0 };
	int64_t left = deadline - (int64_t)clock_ms();

	if (left <= 0)
		return -1;
	return poll(&pfd, 1, (int)left) == 1 ? 0 : -1;
}

int
probe_healthz(const struct conf *cf, int timeout_ms)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
	    "User-Agent: hitcountd-probe\r\nConnection: close\r\n\r\n";
	struct sockaddr_storage ss = cf->cf_listen[0].cfl_addr;
	const char *what = cf->cf_listen[0].cfl_text;
	int64_t deadline = (int64_t)clock_ms() + timeout_ms;
	char buf[256];
	size_t got = 0, sent = 0;
	int fd, err = 0, rc = 1;
	socklen_t len = sizeof(err);

	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		printf("unhealthy: socket: %s\n", strerror(errno));
		return 1;
	}
	if (connect(fd, (struct sockaddr *)&ss,
	    cf->cf_listen[0].cfl_addrlen) == -1) {
		if (errno != EINPROGRESS) {
			printf("unhealthy: connect %s: %s\n", what, strerror(errno));
			goto done;
		}
		if (probe_wait(fd, POLLOUT, deadline) == -1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
		    err != 0) {
			printf("unhealthy: connect %s: %s\n", what,
			    err ? strerror(err) : "timed out");
			goto done;
		}
	}
	while (sent < sizeof(req) - 1) {
		ssize_t n = send(fd, req + sent, sizeof(req) - 1 - sent,
		    MSG_NOSIGNAL);

		if (n > 0) {
			sent += n;
			continue;
		}
		if (n == -1 && errno == EAGAIN &&
		    probe_wait(fd, POLLOUT, deadline) == 0)
			continue;
		printf("unhealthy: send to %s failed\n", what);
		goto done;
	}
	while (got < sizeof(buf) - 1 && memchr(buf, '\n', got) == NULL) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (n > 0) {
			got += n;
			continue;
		}
		if (n == -1 && errno == EAGAIN &&
		    probe_wait(fd, POLLIN, deadline) == 0)
			continue;
		break;
	}
	buf[got] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (strncmp(buf, "HTTP/1.1 200 ", 13) == 0) {
		printf("healthy: %s answered \"%s\"\n", what, buf);
		rc = 0;
	} else
		printf("unhealthy: %s answered \"%s\"\n", what,
		    got ? buf : "nothing");
done:
	close(fd);
	return rc;
}
