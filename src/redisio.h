/*
 * redisio.h - hiredis asynchronous contexts on a worker's libevent loop.
 */
#ifndef HITCOUNTD_REDISIO_H
#define HITCOUNTD_REDISIO_H

#include <stddef.h>

#include <event2/util.h>

struct event_base;
struct redisAsyncContext;

/*
 * Attach ac, fresh from redisAsyncConnect() and without error, to base:
 * replies are read when its socket is readable, and commands queued
 * during a loop turn are written at the end of that turn.  The hooks are
 * freed with ac.  From now on a top-level integer reply on ac is one
 * object shared by every context (see redisio.c): it is valid until its
 * callback returns, and must not be kept (REDIS_OPT_NOAUTOFREEREPLIES is
 * not supported).  Returns 0, or -1 when out of memory (ac is unchanged;
 * the caller frees it).
 */
int redisio_attach(struct redisAsyncContext *ac, struct event_base *base);

/*
 * The address to connect to among res, an evdns answer (not NULL): the
 * first IPv4 one, else the first, written to ip (INET6_ADDRSTRLEN bytes
 * are enough) as text.  IPv4 first: "localhost" resolves to ::1 as well,
 * and Redis is often bound to 127.0.0.1 only.
 */
void redisio_address(const struct evutil_addrinfo *res, char *ip,
    size_t iplen);

#endif
