/*
 * redisio.c - hiredis asynchronous contexts on a worker's libevent loop,
 * at the least cost per request.
 *
 * hiredis leaves the event loop to an adapter: four hooks that start and
 * stop watching its socket.  The stock libevent adapter waits for the
 * socket to report writable before it writes, which costs an epoll_ctl
 * pair and a wakeup per loop turn.  This one writes the commands queued
 * while a loop turn handles its clients together, by one send() at the
 * end of the turn; only when the socket is full, or while connecting,
 * does it wait for EV_WRITE.
 *
 * It also spares hiredis an allocation per reply: replies to INCR are
 * top-level integers, and hiredis hands each to its callback and frees it
 * through the reader's freeObject() before it parses the next (0.14 and
 * 1.2 alike; tests/unit/test_redisio.c pins it for both, and .ci/run runs
 * it against each).  So every top-level integer is the same static object,
 * which freeObject() leaves alone.  Integers inside arrays (ROLE,
 * SENTINEL) are hiredis's own.  A worker reads all its contexts on one
 * thread, one reply at a time, so one object serves them all.
 *
 * The steps every connection to a Redis server or a sentinel takes are
 * here once: the name looked up with evdns (never the blocking
 * getaddrinfo()), the connection opened and attached, AUTH queued.  Calls
 * hiredis and libevent only; called by redisconn.c, sentinel.c and
 * sentinelsub.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "redisio.h"

/* The event hooks of one hiredis context. */
struct redisio {
	redisAsyncContext *rio_ac;
	struct event *rio_read;         /* EV_READ | EV_PERSIST */
	struct event *rio_write;        /* EV_WRITE: socket full, or connecting */
	struct event *rio_flush;        /* activated: write at the end of the turn */
	int rio_flushing;               /* inside a write hiredis asked for */
};

static void
redisio_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct redisio *io = arg;

	(void)fd;
	(void)what;
	redisAsyncHandleRead(io->rio_ac);
}

/* The socket is writable, or the loop turn ends with commands queued. */
static void
redisio_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct redisio *io = arg;

	(void)fd;
	(void)what;
	io->rio_flushing = 1;
	redisAsyncHandleWrite(io->rio_ac);
	/* io may be gone: hiredis frees the context on a write error. */
}

static void
redisio_add_read(void *arg)
{
	struct redisio *io = arg;

	event_add(io->rio_read, NULL);
}

static void
redisio_del_read(void *arg)
{
	struct redisio *io = arg;

	event_del(io->rio_read);
}

static void
redisio_add_write(void *arg)
{
	struct redisio *io = arg;

	/*
	 * While connecting, writable means connected: wait for it.  Inside a
	 * write that could not finish, the socket is full: wait for room.
	 * Otherwise write at the end of this loop turn.
	 */
	if (!(io->rio_ac->c.flags & REDIS_CONNECTED) || io->rio_flushing) {
		io->rio_flushing = 0;
		event_add(io->rio_write, NULL);
	} else if (!event_pending(io->rio_write, EV_WRITE, NULL))
		event_active(io->rio_flush, EV_WRITE, 1);
}

static void
redisio_del_write(void *arg)
{
	struct redisio *io = arg;

	io->rio_flushing = 0;
	event_del(io->rio_write);
	event_del(io->rio_flush);
}

static void
redisio_cleanup(void *arg)
{
	struct redisio *io = arg;

	if (io->rio_read)
		event_free(io->rio_read);
	if (io->rio_write)
		event_free(io->rio_write);
	if (io->rio_flush)
		event_free(io->rio_flush);
	free(io);
}

static redisReplyObjectFunctions redisio_default_fns, redisio_fns;
static redisReply redisio_int_reply;

static void *
redisio_create_integer(const redisReadTask *task, long long v)
{
	if (task->parent != NULL)
		return redisio_default_fns.createInteger(task, v);
	memset(&redisio_int_reply, 0, sizeof(redisio_int_reply));
	redisio_int_reply.type = REDIS_REPLY_INTEGER;
	redisio_int_reply.integer = v;
	return &redisio_int_reply;
}

static void
redisio_free_object(void *obj)
{
	if (obj != &redisio_int_reply)
		redisio_default_fns.freeObject(obj);
}

/* Give ac's reader the reused integer (see the top of the file). */
static void
redisio_reuse_integers(redisAsyncContext *ac)
{
	if (ac->c.reader == NULL || ac->c.reader->fn == NULL)
		return;
	if (redisio_fns.freeObject == NULL) {
		redisio_default_fns = *ac->c.reader->fn;
		redisio_fns = redisio_default_fns;
		redisio_fns.createInteger = redisio_create_integer;
		redisio_fns.freeObject = redisio_free_object;
	}
	ac->c.reader->fn = &redisio_fns;
}

int
redisio_attach(redisAsyncContext *ac, struct event_base *base)
{
	struct redisio *io;
	int fd = ac->c.fd;

	io = calloc(1, sizeof(*io));
	if (io == NULL)
		return -1;
	io->rio_ac = ac;
	io->rio_read = event_new(base, fd, EV_READ | EV_PERSIST,
	    redisio_on_read, io);
	io->rio_write = event_new(base, fd, EV_WRITE, redisio_on_write, io);
	io->rio_flush = event_new(base, -1, 0, redisio_on_write, io);
	if (io->rio_read == NULL || io->rio_write == NULL ||
	    io->rio_flush == NULL) {
		redisio_cleanup(io);
		return -1;
	}
	redisio_reuse_integers(ac);
	ac->ev.data = io;
	ac->ev.addRead = redisio_add_read;
	ac->ev.delRead = redisio_del_read;
	ac->ev.addWrite = redisio_add_write;
	ac->ev.delWrite = redisio_del_write;
	ac->ev.cleanup = redisio_cleanup;
	return 0;
}

redisAsyncContext *
redisio_connect(struct event_base *base, const char *ip, int port,
    const char *path, char *why, size_t whylen)
{
	redisAsyncContext *ac;

	ac = ip != NULL ? redisAsyncConnect(ip, port) :
	    redisAsyncConnectUnix(path);
	if (ac != NULL && !ac->err && redisio_attach(ac, base) == 0)
		return ac;
	snprintf(why, whylen, "%s", ac != NULL && ac->err ? ac->errstr :
	    "out of memory");
	if (ac != NULL)
		redisAsyncFree(ac);
	return NULL;
}

int
redisio_auth(redisAsyncContext *ac, const char *username,
    const char *password, redisCallbackFn *fn, void *privdata)
{
	int r;

	if (password[0] == '\0')
		return 0;
	if (username[0] != '\0')
		r = redisAsyncCommand(ac, fn, privdata, "AUTH %s %s", username,
		    password);
	else
		r = redisAsyncCommand(ac, fn, privdata, "AUTH %s", password);
	return r == REDIS_OK;
}

void
redisio_drop(struct evdns_getaddrinfo_request **reqp, redisAsyncContext **acp)
{
	struct evdns_getaddrinfo_request *req = *reqp;
	redisAsyncContext *ac = *acp;

	*reqp = NULL;
	*acp = NULL;
	if (req != NULL)
		evdns_getaddrinfo_cancel(req);
	if (ac != NULL)
		redisAsyncFree(ac);
}

struct evdns_getaddrinfo_request *
redisio_lookup(struct evdns_base *dns, const char *host,
    evdns_getaddrinfo_cb cb, void *arg)
{
	struct evutil_addrinfo hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	return evdns_getaddrinfo(dns, host, NULL, &hints, cb, arg);
}

int
redisio_resolved(int result, struct evutil_addrinfo *res, char *ip,
    size_t iplen)
{
	const struct evutil_addrinfo *ai;
	const void *addr;

	if (result != 0 || res == NULL) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if (ai->ai_family == AF_INET)
			break;
	if (ai == NULL)
		ai = res;
	if (ai->ai_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
	else
		addr = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
	evutil_inet_ntop(ai->ai_family, addr, ip, iplen);
	evutil_freeaddrinfo(res);
	return 0;
}
