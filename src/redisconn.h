/*
 * redisconn.h - a worker's connection to the Redis primary.
 */
#ifndef HITCOUNTD_REDISCONN_H
#define HITCOUNTD_REDISCONN_H

#include <stddef.h>

#include <hiredis/async.h>

struct event_base;
struct conf;
struct redisconn;

/*
 * The connection is gone (lost, dropped, or never completed).  Every
 * command sent on it has had its reply callback already, with NULL where
 * no reply came.  A new attempt follows on its own.
 */
typedef void redisconn_down_cb(void *arg);

/* See redisconn_start(). */
typedef void redisconn_settled_cb(void *arg);

/* See redisconn_set_open_cb(). */
typedef void redisconn_open_cb(void *arg);

/*
 * A connection to the primary of cf->cf_redis, on base: cf_redis.host,
 * or where the sentinels say it is.  cf must outlive it.  Nothing
 * happens before redisconn_start().  Returns NULL on allocation failure.
 */
struct redisconn *redisconn_new(struct event_base *base, const struct conf *cf,
    redisconn_down_cb *down, void *arg);

/*
 * Start connecting, and keep connecting again whenever the connection is
 * lost or an attempt fails (each step within timeout_ms; pauses of 50 to
 * 500 ms between attempts).  settled, if not NULL, is called once, from
 * the loop or before this returns, when the first attempt has ended:
 * connected, or failed.
 */
void redisconn_start(struct redisconn *rc, redisconn_settled_cb *settled,
    void *arg);

/*
 * Send a command formatted by redisFormatCommand(); fn gets its reply, or
 * NULL if the connection goes first.  Allowed while connecting: it then
 * goes out once connected.  Returns 0, or -1 when there is no connection
 * to send on (fn will not be called).
 */
int redisconn_send(struct redisconn *rc, const char *cmd, size_t len,
    redisCallbackFn *fn, void *priv);

/*
 * Give up on the connection now, as failed: every command in flight gets
 * NULL, then down is called.  The socket is reset, so that no command
 * still queued in it reaches Redis later.  Not from inside a reply
 * callback.
 */
void redisconn_drop(struct redisconn *rc);

/*
 * Close the connection once the replies due on it have come, then down;
 * allowed inside a reply callback (for a reply that says this is no
 * primary to talk to).
 */
void redisconn_disconnect(struct redisconn *rc);

/* 1 when connected to the primary, else 0. */
int redisconn_ready(const struct redisconn *rc);

/*
 * The three answers to a command the queue wants to send: send it now
 * (connected, or connecting: hiredis keeps it until then); hold it until
 * the open callback (a redirection is under way, or a new connection
 * waits for ROLE or CLUSTER SLOTS to say it goes to the right server); or
 * fail it (no connection to send on now).
 */
enum redisconn_sendable {
	REDISCONN_SEND,
	REDISCONN_HOLD,
	REDISCONN_FAIL
};

/* Which of the three answers holds now.  The queue asks before sending. */
enum redisconn_sendable redisconn_sendable(const struct redisconn *rc);

/*
 * Close and free rc.  Commands in flight get NULL; down is not called.
 * NULL is allowed.
 */
void redisconn_free(struct redisconn *rc);

/*
 * Have open called (with down's arg) each time a new connection starts to
 * take commands: from inside the attempt, or once its ROLE or CLUSTER
 * SLOTS check has passed.  Commands held back meanwhile may go out then.
 */
void redisconn_set_open_cb(struct redisconn *rc, redisconn_open_cb *open);

/*
 * Redis Cluster: a reply said MOVED (ask 0) or ASK (ask 1) to host:port
 * ("" for the node that answered).  The connection is closed once the
 * replies due on it have come (down follows), and the next one goes to
 * host:port at once, behind ASKING for ASK.  Until it is open,
 * redisconn_sendable() says REDISCONN_HOLD.  Later calls before then are
 * ignored: the commands behind the first redirected one say the same.  Allowed inside
 * a reply callback; nothing without a cluster.
 */
void redisconn_redirect(struct redisconn *rc, const char *host, int port,
    int ask);

/*
 * 1 when the connection goes to the node importing the key's slot, named
 * by ASK: every command on it must follow an ASKING.  Else 0.
 */
int redisconn_asking(const struct redisconn *rc);

#endif
