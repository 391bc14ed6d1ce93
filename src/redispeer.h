/*
 * redispeer.h - where the Redis primary is: a fixed address, the
 * sentinels' word, or the cluster node serving the key's slot.
 */
#ifndef HITCOUNTD_REDISPEER_H
#define HITCOUNTD_REDISPEER_H

#include <stddef.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

struct event_base;
struct evdns_base;
struct conf;
struct redispeer;

/*
 * The answer to a redispeer_get() that said REDISPEER_LATER: the primary
 * is host:port, or host is NULL and why says, for the log, why it is not
 * known.
 */
typedef void redispeer_found_cb(void *arg, const char *host, int port,
    const char *why);

/*
 * The primary is now host:port (a new answer, unasked), or, host NULL,
 * about to be another not yet known (a failover under way).
 */
typedef void redispeer_moved_cb(void *arg, const char *host, int port);

/* What redispeer_get() says. */
enum redispeer_get {
	REDISPEER_GO,           /* go to *host:*port now */
	REDISPEER_LATER         /* found is called (maybe before return) */
};

/* What the reply to the check of a new connection says. */
enum redispeer_verdict {
	REDISPEER_PASS,         /* the right server: the connection may serve */
	REDISPEER_ELSEWHERE,    /* another is named: go there at once */
	REDISPEER_REJECT,       /* not the primary: ask again after a pause */
	REDISPEER_FAIL          /* no answer to use: an error, then a pause */
};

/*
 * Where the primary of cf->cf_redis is, for one connection: the sentinels
 * with cf_redis.sentinels (looked up with dns), the cluster nodes with
 * cf_redis.cluster, else cf_redis.host.  found and moved are called with
 * arg, never from inside a call that says otherwise.  cf and dns must
 * outlive the peer.  Returns NULL on allocation failure.
 */
struct redispeer *redispeer_new(struct event_base *base,
    struct evdns_base *dns, const struct conf *cf, redispeer_found_cb *found,
    redispeer_moved_cb *moved, void *arg);

/*
 * Where the next attempt goes: REDISPEER_GO with *host (valid until the
 * next call) and *port, or REDISPEER_LATER when the answer comes through
 * found.
 */
enum redispeer_get redispeer_get(struct redispeer *p, const char **host,
    int *port);

/*
 * Queue on ac, a new connection to where redispeer_get() said, the
 * command that checks it is the server to count on (ROLE, CLUSTER SLOTS),
 * with fn(ac, reply, priv) for its reply.  Returns the number of commands
 * queued; *due is 1 when a check is due, whose reply must come before
 * anything may be sent, else 0.
 */
int redispeer_check(struct redispeer *p, redisAsyncContext *ac,
    redisCallbackFn *fn, void *priv, int *due);

/*
 * The check's reply, on a connection to host (as named), ip (as
 * resolved, "" for none) and port.  why gets, for the log, what it says
 * unless it is REDISPEER_PASS.
 */
enum redispeer_verdict redispeer_checked(struct redispeer *p,
    const redisReply *reply, const char *host, const char *ip, int port,
    char *why, size_t whylen);

/* The connection to host:port is ready (the sentinels watch it). */
void redispeer_up(struct redispeer *p, const char *host, int port);

/* The connection is gone, or given up (the watch ends).  Idempotent. */
void redispeer_down(struct redispeer *p);

/*
 * An attempt failed or a connection was lost: 1 when the next attempt
 * goes at once (to a node named by a redirection, a few times a second at
 * most), 0 when it waits for the pause (and the redirection ends).
 */
int redispeer_at_once(struct redispeer *p);

/* A new connection was opened: a redirection under way has arrived. */
void redispeer_opened(struct redispeer *p);

/*
 * Redis Cluster: MOVED (ask 0) or ASK (ask 1) names host:port ("" for the
 * same host) for the key's slot; the next attempt goes there, at once.
 * Returns 0, or -1 when ignored (no cluster, or a redirection is under
 * way already: the commands behind the first redirected one say the
 * same).
 */
int redispeer_redirect(struct redispeer *p, const char *host, int port,
    int ask);

/*
 * 1 while a redirection is under way (named, the connection to it not yet
 * open): commands sent now are held for it.  Else 0.
 */
int redispeer_redirecting(const struct redispeer *p);

/*
 * 1 when the connection goes to the node importing the key's slot, named
 * by ASK: every command on it must follow an ASKING.  Else 0.
 */
int redispeer_asking(const struct redispeer *p);

/* What the log calls an address of this kind: "" or "cluster node ". */
const char *redispeer_noun(const struct redispeer *p);

/* Why the connection goes where it does, for the log: "" or " (...)". */
const char *redispeer_why(const struct redispeer *p);

/* Free p and whatever it has open; no callback is called.  NULL is fine. */
void redispeer_free(struct redispeer *p);

#endif
