/*
 * counter.c - the visit counter: INCR (and GET) of the key, pipelined on
 * the worker's Redis connection, each answered or failed in time.
 *
 * The visits of one loop turn, from all the worker's clients, become one
 * INCRBY of their number, sent at the end of the turn: Redis adds them
 * atomically and answers the new total T, so the k visits of the batch
 * are T-k+1 .. T, each its own number, in the order they came, exactly as
 * k INCRs would have been, for a k-th of Redis's work and hiredis's.
 * Commands are written back to back on the one connection (redisconn.c)
 * and Redis answers in order, so two FIFOs, the commands in flight and
 * the clients waiting for them, match each reply to its clients without
 * any allocation per request.  hiredis 0.14 has no command timeout, so the
 * FIFO also carries the time each command was sent: when the oldest one
 * is overdue (this file's timer) the connection is dropped, which fails
 * every pending command at once (the client gets 503).  A command that
 * may have reached Redis is never sent again, so a visit is never counted
 * twice.
 *
 * With min_replicas_acked, a visit is answered only once a WAIT behind its
 * INCRBY says that many replicas have it: one WAIT at the end of a loop
 * turn for the INCRBY of the turn, and one WAIT out at a time.
 */
#include "config.h"


#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "conf.h"
#include "counter.h"
#include "log.h"
#include "metrics.h"
#include "redisconn.h"

/* A ring of fixed-size elements that doubles when full. */
struct counter_fifo {
	char *fi_buf;
	size_t fi_size;                 /* of an element */
	size_t fi_cap;                  /* a power of two, or 0 */
	size_t fi_head, fi_count;
};

enum counter_kind { COUNTER_INCRBY, COUNTER_GET, COUNTER_WAIT };

/* A command in flight. */
struct counter_op {
	uint64_t op_sent_us;
	enum counter_kind op_kind;      /* WAIT: confirming the held */
	unsigned op_nwait;              /* clients it answers: k, 1 (GET), 0 */
	int op_hold;                    /* visits to confirm with WAIT */
};

/* A client waiting for its visit's number (or the GET's value). */
struct counter_waiter {
	counter_cb *w_cb;
	void *w_arg;
};

/* A visit counted, waiting for WAIT to say replicas have it. */
struct counter_held {
	counter_cb *h_cb;
	void *h_arg;
	long long h_value;
};

struct counter {
	const struct conf *ct_cf;
	struct redisconn *ct_conn;
	struct event *ct_timeout_ev;    /* the oldest command's deadline */
	struct event *ct_wait_ev;       /* append WAIT at the end of the turn */
	struct event *ct_batch_ev;      /* send the turn's INCRBY at its end */
	char *ct_incrby_cmd;            /* "INCRBY key " formatted, + room */
	size_t ct_incrby_len;           /* of the part before the count */
	char *ct_get_cmd;
	int ct_get_len;
	char *ct_wait_cmd;
	int ct_wait_len;
	struct counter_fifo ct_ops;     /* commands in flight */
	struct counter_fifo ct_waiters; /* their clients, then the batch's */
	unsigned ct_batch;              /* visits of this turn, not yet sent */
	struct counter_held *ct_held;
	size_t ct_nheld, ct_heldcap;
	int ct_wait_pending;            /* INCRBYs sent since the last WAIT */
	int ct_wait_inflight;           /* a WAIT is out: the next one waits */
	uint64_t ct_last_errlog_ms;
};

/* Room for "$<count>\r\n<count>\r\n" after the INCRBY prefix. */
#define COUNTER_COUNT_ROOM      32

static void counter_send_wait(struct counter *c);

static void
counter_arm(struct event *ev, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_add(ev, &tv);
}

static void *
counter_fifo_at(const struct counter_fifo *f, size_t i)
{
	return f->fi_buf + ((f->fi_head + i) & (f->fi_cap - 1)) * f->fi_size;
}

/* Room for one more element at the tail, or NULL (out of memory). */
static void *
counter_fifo_push(struct counter_fifo *f)
{
	if (f->fi_count == f->fi_cap) {
		size_t ncap = f->fi_cap ? f->fi_cap * 2 : 64, i;
		char *n = malloc(ncap * f->fi_size);

		if (n == NULL)
			return NULL;
		for (i = 0; i < f->fi_count; i++)
			memcpy(n + i * f->fi_size, counter_fifo_at(f, i),
			    f->fi_size);
		free(f->fi_buf);
		f->fi_buf = n;
		f->fi_cap = ncap;
		f->fi_head = 0;
	}
	return counter_fifo_at(f, f->fi_count++);
}

/* Take the oldest element off: copied to out. */
static void
counter_fifo_pop(struct counter_fifo *f, void *out)
{
	memcpy(out, counter_fifo_at(f, 0), f->fi_size);
	f->fi_head = (f->fi_head + 1) & (f->fi_cap - 1);
	f->fi_count--;
}

/* Log Redis trouble at most once a second: under load it repeats per request. */
static int
counter_may_log(struct counter *c)
{
	uint64_t now = clock_ms();

	if (now - c->ct_last_errlog_ms < 1000)
		return 0;
	c->ct_last_errlog_ms = now;
	return 1;
}

/* Keep a visit's number until the WAIT behind it returns. */
static int
counter_hold(struct counter *c, const struct counter_waiter *w, long long v)
{
	struct counter_held *h;

	if (c->ct_nheld == c->ct_heldcap) {
		size_t ncap = c->ct_heldcap ? c->ct_heldcap * 2 : 64;

		h = realloc(c->ct_held, ncap * sizeof(*h));
		if (h == NULL)
			return -1;
		c->ct_held = h;
		c->ct_heldcap = ncap;
	}
	h = &c->ct_held[c->ct_nheld++];
	h->h_cb = w->w_cb;
	h->h_arg = w->w_arg;
	h->h_value = v;
	return 0;
}

/* Answer the held visits: confirmed (ok) or not. */
static void
counter_release_held(struct counter *c, int ok)
{
	size_t i, n = c->ct_nheld;

	c->ct_nheld = 0;        /* callbacks may count new visits */
	for (i = 0; i < n; i++) {
		struct counter_held h = c->ct_held[i];

		if (!ok)
			METRICS_ADD(mw_redis_errors, 1);
		h.h_cb(h.h_arg, ok, h.h_value);
	}
}

/* Fail the n oldest waiters (their command failed, or never went out). */
static void
counter_fail_waiters(struct counter *c, size_t n)
{
	struct counter_waiter w;

	while (n-- > 0 && c->ct_waiters.fi_count > 0) {
		counter_fifo_pop(&c->ct_waiters, &w);
		METRICS_ADD(mw_redis_errors, 1);
		w.w_cb(w.w_arg, 0, 0);
	}
}

/* Fail whatever is in flight, batched or held back (the connection is gone). */
static void
counter_fail_all(struct counter *c)
{
	/* Callbacks may queue anew (refused while down): fail only these. */
	size_t n = c->ct_waiters.fi_count;

	c->ct_ops.fi_count = 0;
	c->ct_batch = 0;
	if (c->ct_batch_ev)
		event_del(c->ct_batch_ev);
	counter_fail_waiters(c, n);
	counter_release_held(c, 0);
	c->ct_wait_pending = 0;
	c->ct_wait_inflight = 0;
}

static void
counter_on_down(void *arg)
{
	struct counter *c = arg;

	event_del(c->ct_timeout_ev);
	counter_fail_all(c);
}

static void
counter_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct counter *c = arg;
	const struct counter_op *oldest;
	uint64_t now = clock_us(), deadline;
	int ms = c->ct_cf->cf_redis.timeout_ms;

	(void)fd;
	(void)what;
	if (c->ct_ops.fi_count == 0)
		return;
	oldest = counter_fifo_at(&c->ct_ops, 0);
	deadline = oldest->op_sent_us + (uint64_t)ms * 1000;
	if (now < deadline) {
		counter_arm(c->ct_timeout_ev, (int)((deadline - now + 999) /
		    1000));
		return;
	}
	log_warnx("redis: no reply within %d ms, dropping the connection "
	    "(%zu commands in flight fail)", ms, c->ct_ops.fi_count);
	redisconn_drop(c->ct_conn);
}
/*
 * The reply to WAIT: how many replicas have every write sent before it.
 * Too few, and the visits held back are not acknowledged (503): they are
 * in the primary, but would not survive its loss.
 */
static void
counter_on_wait_reply(struct counter *c, redisReply *reply)
{
	int need = c->ct_cf->cf_redis.min_replicas_acked;

	c->ct_wait_inflight = 0;
	if (reply && reply->type == REDIS_REPLY_INTEGER &&
	    reply->integer >= need) {
		counter_release_held(c, 1);
		counter_send_wait(c);
		return;
	}
	if (counter_may_log(c)) {
		if (reply && reply->type == REDIS_REPLY_INTEGER)
			log_warnx("redis: WAIT: %lld of %d replicas acknowledged "
			    "in time", reply->integer, need);
		else if (reply && reply->type == REDIS_REPLY_ERROR)
			log_warnx("redis: WAIT: %s", reply->str);
	}
	counter_release_held(c, 0);
	if (reply != NULL)
		counter_send_wait(c);
}

/* The value of a reply to INCRBY or GET: 1 with *v, or 0 (logged). */
static int
counter_value(struct counter *c, const redisReply *reply, int get,
    long long *v)
{
	char *end;

	switch (reply->type) {
	case REDIS_REPLY_INTEGER:
		*v = reply->integer;
		return 1;
	case REDIS_REPLY_STRING:
		errno = 0;
		*v = strtoll(reply->str, &end, 10);
		if (errno == 0 && end != reply->str && *end == '\0')
			return 1;
		if (counter_may_log(c))
			log_warnx("redis: key '%s' does not hold an integer",
			    c->ct_cf->cf_redis.key);
		return 0;
	case REDIS_REPLY_ERROR:
		if (counter_may_log(c))
			log_warnx("redis: %s", reply->str);
		/* A replica now (a failover happened): find the primary again. */
		if (strncmp(reply->str, "READONLY", 8) == 0)
			redisconn_disconnect(c->ct_conn);
		return 0;
	case REDIS_REPLY_NIL:
		if (get)
			return 1;       /* a key never incremented */
		/* FALLTHROUGH */
	default:
		if (counter_may_log(c))
			log_warnx("redis: unexpected reply type %d",
			    reply->type);
		return 0;
	}
}


/*
 * The reply to the oldest command in flight.  Its clients are the oldest
 * waiters: an INCRBY k's get T-k+1 .. T of the total T it returns.
 */
static void
counter_on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct counter *c = priv;
	redisReply *reply = r;
	struct counter_op op;
	struct counter_waiter w;
	long long v = 0;
	unsigned i;
	int ok = 0;

	(void)ac;
	if (c->ct_ops.fi_count == 0)
		return;         /* cannot happen: one op per command sent */
	counter_fifo_pop(&c->ct_ops, &op);
	if (reply != NULL)
		metrics_observe_rtt(clock_us() - op.op_sent_us);
	if (op.op_kind == COUNTER_WAIT) {
		counter_on_wait_reply(c, reply);
		return;
	}
	/* NULL: the connection is gone; redisconn.c says why. */
	if (reply != NULL)
		ok = counter_value(c, reply, op.op_kind == COUNTER_GET, &v);
	if (!ok) {
		counter_fail_waiters(c, op.op_nwait);
		return;
	}
	for (i = 0; i < op.op_nwait && c->ct_waiters.fi_count > 0; i++) {
		long long mine = v - (long long)(op.op_nwait - 1 - i);

		/* Popped first: the callback may count a new visit. */
		counter_fifo_pop(&c->ct_waiters, &w);
		if (op.op_hold && counter_hold(c, &w, mine) == 0)
			continue;       /* answered when WAIT confirms it */
		w.w_cb(w.w_arg, 1, mine);
	}
}

/* Put a formatted command in flight, answering nwait waiters. */
static int
counter_send(struct counter *c, const char *cmd, size_t len,
    enum counter_kind kind, unsigned nwait, int hold)
{
	struct counter_op *op;

	if (c->ct_conn == NULL ||
	    (op = counter_fifo_push(&c->ct_ops)) == NULL)
		return -1;
	op->op_sent_us = clock_us();
	op->op_nwait = nwait;
	op->op_hold = hold;
	op->op_kind = kind;
	/*
	 * Activated before the command reaches hiredis, whose first command
	 * of the turn activates the write at the end of it: so the WAIT runs
	 * first and goes out in the same send().
	 */
	if (hold && !c->ct_wait_pending) {
		c->ct_wait_pending = 1;
		event_active(c->ct_wait_ev, 0, 1);
	}
	if (redisconn_send(c->ct_conn, cmd, len, counter_on_reply, c) == -1) {
		/* Not connected, or disconnecting: never sent; take it back. */
		c->ct_ops.fi_count--;
		return -1;
	}
	if (c->ct_ops.fi_count == 1 && !evtimer_pending(c->ct_timeout_ev, NULL))
		counter_arm(c->ct_timeout_ev, c->ct_cf->cf_redis.timeout_ms);
	return 0;
}

/*
 * End of a loop turn with visits to confirm (min_replicas_acked): one WAIT
 * behind them all.  Scheduled before the turn's writes are flushed, so it
 * goes out in the same send().
 */
static void
counter_send_wait(struct counter *c)
{
	/*
	 * One WAIT at a time: the server holds everything behind a WAIT until
	 * it returns, so WAITs queued back to back would add up past
	 * timeout_ms.  Visits sent meanwhile get the next one.
	 */
	if (!c->ct_wait_pending || c->ct_wait_inflight)
		return;
	c->ct_wait_pending = 0;
	if (counter_send(c, c->ct_wait_cmd, (size_t)c->ct_wait_len,
	    COUNTER_WAIT, 0, 0) == -1)
		return;         /* the held visits fail with the connection */
	c->ct_wait_inflight = 1;
}

static void
counter_on_wait_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	counter_send_wait(arg);
}

/*
 * Send the visits counted since the last batch as one INCRBY.  If it
 * cannot go out, they fail now (from the loop: their clients get 503).
 */
static void
counter_flush_batch(struct counter *c)
{
	unsigned k = c->ct_batch;
	char *p = c->ct_incrby_cmd + c->ct_incrby_len;
	char num[16];
	int n;

	if (k == 0)
		return;
	c->ct_batch = 0;
	event_del(c->ct_batch_ev);
	n = snprintf(num, sizeof(num), "%u", k);
	n = snprintf(p, COUNTER_COUNT_ROOM, "$%d\r\n%s\r\n", n, num);
	if (counter_send(c, c->ct_incrby_cmd, c->ct_incrby_len + (size_t)n,
	    COUNTER_INCRBY, k, c->ct_cf->cf_redis.min_replicas_acked > 0) ==
	    -1) {
		/* They are the newest waiters: fail them, keep the rest. */
		struct counter_waiter *ws = malloc(k * sizeof(*ws));
		unsigned i;

		c->ct_waiters.fi_count -= k;
		for (i = 0; ws != NULL && i < k; i++)
			ws[i] = *(struct counter_waiter *)counter_fifo_at(
			    &c->ct_waiters, c->ct_waiters.fi_count + i);
		for (i = 0; ws != NULL && i < k; i++) {
			METRICS_ADD(mw_redis_errors, 1);
			ws[i].w_cb(ws[i].w_arg, 0, 0);
		}
		if (ws == NULL)
			log_warnx("redis: out of memory: %u clients not "
			    "answered", k);
		free(ws);
	}
}

static void
counter_on_batch_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	counter_flush_batch(arg);
}

/* Format "INCRBY key " once: a batch appends its count. */
static int
counter_format_incrby(struct counter *c, const char *key)
{
	size_t keylen = strlen(key);
	int n;

	c->ct_incrby_cmd = malloc(keylen + 64 + COUNTER_COUNT_ROOM);
	if (c->ct_incrby_cmd == NULL)
		return -1;
	n = snprintf(c->ct_incrby_cmd, keylen + 64,
	    "*3\r\n$6\r\nINCRBY\r\n$%zu\r\n", keylen);
	memcpy(c->ct_incrby_cmd + n, key, keylen);
	memcpy(c->ct_incrby_cmd + n + keylen, "\r\n", 2);
	c->ct_incrby_len = (size_t)n + keylen + 2;
	return 0;
}

struct counter *
counter_new(struct event_base *base, const struct conf *cf,
    counter_settled_cb *settled, void *arg)
{
	struct counter *c;
	size_t keylen = strlen(cf->cf_redis.key);
	int ms = cf->cf_redis.timeout_ms;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->ct_cf = cf;
	c->ct_ops.fi_size = sizeof(struct counter_op);
	c->ct_waiters.fi_size = sizeof(struct counter_waiter);
	c->ct_conn = redisconn_new(base, cf, counter_on_down, c);
	c->ct_timeout_ev = evtimer_new(base, counter_on_timeout, c);
	c->ct_wait_ev = event_new(base, -1, 0, counter_on_wait_ev, c);
	c->ct_batch_ev = event_new(base, -1, 0, counter_on_batch_ev, c);
	c->ct_get_len = redisFormatCommand(&c->ct_get_cmd, "GET %b",
	    cf->cf_redis.key, keylen);
	/*
	 * A third of timeout_ms: visits sent while a WAIT is out wait for it,
	 * then for their own WAIT, and must still be answered in timeout_ms.
	 */
	c->ct_wait_len = redisFormatCommand(&c->ct_wait_cmd, "WAIT %d %d",
	    cf->cf_redis.min_replicas_acked, ms / 3 > 0 ? ms / 3 : 1);
	if (c->ct_conn == NULL || c->ct_timeout_ev == NULL ||
	    c->ct_wait_ev == NULL || c->ct_batch_ev == NULL ||
	    counter_format_incrby(c, cf->cf_redis.key) == -1 ||
	    c->ct_get_len <= 0 || c->ct_wait_len <= 0) {
		counter_free(c);
		return NULL;
	}
	redisconn_start(c->ct_conn, settled, arg);
	return c;
}

int
counter_incr(struct counter *c, counter_cb *cb, void *arg)
{
	struct counter_waiter *w;

	if (c->ct_conn == NULL || !redisconn_can_send(c->ct_conn) ||
	    (w = counter_fifo_push(&c->ct_waiters)) == NULL)
		return -1;
	w->w_cb = cb;
	w->w_arg = arg;
	/* The first visit of the turn: send them all when the turn ends. */
	if (c->ct_batch++ == 0)
		event_active(c->ct_batch_ev, 0, 1);
	return 0;
}

int
counter_get(struct counter *c, counter_cb *cb, void *arg)
{
	struct counter_waiter *w;

	/* Replies come in order: the visits before this GET go first. */
	counter_flush_batch(c);
	if (c->ct_conn == NULL ||
	    (w = counter_fifo_push(&c->ct_waiters)) == NULL)
		return -1;
	w->w_cb = cb;
	w->w_arg = arg;
	if (counter_send(c, c->ct_get_cmd, (size_t)c->ct_get_len,
	    COUNTER_GET, 1, 0) == -1) {
		c->ct_waiters.fi_count--;
		return -1;
	}
	return 0;
}

int
counter_ready(const struct counter *c)
{
	return c->ct_conn != NULL && redisconn_ready(c->ct_conn);
}

size_t
counter_inflight(const struct counter *c)
{
	return c->ct_waiters.fi_count + c->ct_nheld;
}

void
counter_free(struct counter *c)
{
	struct redisconn *conn;

	if (c == NULL)
		return;
	conn = c->ct_conn;
	c->ct_conn = NULL;      /* callbacks that send again get -1 */
	redisconn_free(conn);   /* replies due come as NULL */
	counter_fail_all(c);
	if (c->ct_timeout_ev)
		event_free(c->ct_timeout_ev);
	if (c->ct_wait_ev)
		event_free(c->ct_wait_ev);
	if (c->ct_batch_ev)
		event_free(c->ct_batch_ev);
	free(c->ct_incrby_cmd);
	if (c->ct_get_cmd)
		redisFreeCommand(c->ct_get_cmd);
	if (c->ct_wait_cmd)
		redisFreeCommand(c->ct_wait_cmd);
	free(c->ct_ops.fi_buf);
	free(c->ct_waiters.fi_buf);
	free(c->ct_held);
	free(c);
}
