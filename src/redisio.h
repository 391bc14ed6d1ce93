/*
 * redisio.h - hiredis asynchronous contexts on a worker's libevent loop.
 */
#ifndef HITCOUNTD_REDISIO_H
#define HITCOUNTD_REDISIO_H

#include <stddef.h>

#include <event2/dns.h>
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
 * Connect, without blocking, to ip:port (a numeric address, as
 * redisio_resolved() writes it), or to the Unix socket path when ip is
 * NULL, and attach the context to base (redisio_attach()).  Returns the
 * context, whose connect callback will say whether the connection was
 * made; or NULL with why in why (hiredis's error, or "out of memory"),
 * nothing left to free.  The caller sets ac->data and the callbacks.
 */
struct redisAsyncContext *redisio_connect(struct event_base *base,
    const char *ip, int port, const char *path, char *why, size_t whylen);

/*
 * Queue on ac, a new connection, AUTH with password, and with username
 * too (an ACL user) when it is not "": fn gets the reply, or nothing does
 * for a NULL fn (a refused AUTH then makes the command behind it fail).
 * Nothing is queued for a password "".  Returns 1 if AUTH was queued,
 * else 0: what the caller adds to the replies it waits for.
 */
int redisio_auth(struct redisAsyncContext *ac, const char *username,
    const char *password, void (*fn)(struct redisAsyncContext *, void *,
    void *), void *privdata);

/*
 * Look host up with dns (IPv4 and IPv6 addresses, for TCP), without
 * blocking: as evdns_getaddrinfo(), cb is called once, before this returns
 * when the answer is at hand (an address, a name in /etc/hosts, an error),
 * and then NULL is returned; else with the request returned, which
 * evdns_getaddrinfo_cancel() gives up (cb then gets EVUTIL_EAI_CANCEL).
 */
struct evdns_getaddrinfo_request *redisio_lookup(struct evdns_base *dns,
    const char *host, evdns_getaddrinfo_cb cb, void *arg);

/*
 * Give up the look-up *reqp and the connection *acp of a caller, either
 * NULL: both pointers are cleared first, because the cancel and the free
 * run their callbacks at once, and those must find that the request or
 * the connection is no longer the caller's.
 */
void redisio_drop(struct evdns_getaddrinfo_request **reqp,
    struct redisAsyncContext **acp);

/*
 * What a lookup's cb got (not EVUTIL_EAI_CANCEL): 0 with the address to
 * connect to in ip as text (INET6_ADDRSTRLEN bytes are enough), or -1 if
 * the lookup failed.  The first IPv4 address is chosen, else the first:
 * "localhost" resolves to ::1 as well, and Redis is often bound to
 * 127.0.0.1 only.  res is freed.
 */
int redisio_resolved(int result, struct evutil_addrinfo *res, char *ip,
    size_t iplen);

#endif
