/*
 * counter.c - the visit counter: INCRBY (and GET) of the key, pipelined
 * on the worker's Redis connection, each answered or failed in time.
 *
 * The visits of one loop turn, from all the worker's clients, become one
 * INCRBY of their number, sent at the end of the turn: Redis adds them
 * atomically and answers the new total T, so the k visits of the batch
 * are T-k+1 .. T, each its own number, in the order they came, exactly as
 * k INCRs would have been, for a k-th of Redis's work and hiredis's.
 * Commands are written back to back on the one connection (redisconn.c),
 * and Redis answers in order, so a FIFO of pending commands matches each
 * reply to its clients (a batch carries its own).  hiredis 0.14 has no
 * command timeout, so the
 * FIFO also carries the time each command was first sent: every wait of
 * a client (in flight, held back for a redirection, held for WAIT) ends
 * timeout_ms after that, on this file's one timer; when the oldest
 * command in flight is overdue the connection is dropped, which fails
 * every pending command at once (the client gets 503).  A command that
 * may have reached Redis is never sent again, so a visit is never counted
 * twice.  Callbacks run from the loop, never inside counter_incr() or
 * counter_get(): the caller is in the middle of one client's request,
 * and another client's answer written then would reach the wrong client.
 *
 * With min_replicas_acked, a visit is answered only once a WAIT behind its
 * INCRBY says that many replicas have it: one WAIT at the end of a loop
 * turn for the INCRBY of the turn, and one WAIT out at a time; the
 * visits wait in waitlist.c meanwhile.
 *
 * With a Redis Cluster, a MOVED or ASK reply means the command was not
 * executed: it goes to the redo list instead of being answered, and the
 * connection is told where to go (redisconn_redirect()).  Commands sent
 * while it gets there join the list; all go out once the next connection
 * is open (behind ASKING for an ASK target), each still within timeout_ms
 * of its first sending, or fail (503) -- safely, since none was executed.
 * Any other error, or a lost connection, still fails a command for good:
 * it may have been executed.
 *
 * Calls redisconn.c (the connection), cluster.c (reading MOVED and ASK),
 * countercmd.c (the commands), waitlist.c, vec.c and the common ground
 * (log, clock, timer, metrics);
 * called by worker.c (which makes it) and route.c.
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
#include "cluster.h"
#include "conf.h"
#include "counter.h"
#include "countercmd.h"
#include "log.h"
#include "metrics.h"
#include "redisconn.h"
#include "timer.h"
#include "vec.h"
#include "waitlist.h"

/* A client waiting for its visit's number. */
struct counter_waiter {
	counter_cb *w_cb;
	void *w_arg;
};

/* The visits of one loop turn: one INCRBY of their number. */
struct counter_batch {
	struct counter_batch *b_next;   /* on the list to fail from the loop */
	struct vec b_w;                 /* of struct counter_waiter */
};

/* A command in flight. */
struct counter_op {
	counter_cb *op_cb;              /* NULL: a WAIT, or op_batch's INCRBY */
	void *op_arg;
	uint64_t op_sent_us;            /* first sent, for a redone one */
	int op_hold;                    /* visits to confirm with WAIT */
	int op_get;                     /* GET, not INCRBY */
	int op_asking;                  /* an ASKING (op_cb NULL): no answer */
	struct counter_batch *op_batch; /* INCRBY: the clients it answers */
	uint64_t op_seq;                /* order of first sending, from 1 */
};

struct counter {
	const struct conf *ct_cf;
	struct redisconn *ct_conn;
	struct event *ct_timeout_ev;    /* the oldest command's deadline */
	struct event *ct_wait_ev;       /* append WAIT at the end of the turn */
	struct event *ct_batch_ev;      /* send the turn's INCRBY at its end */
	struct counter_batch *ct_batch; /* visits of this turn, not yet sent */
	struct counter_batch *ct_spare; /* an answered batch, for reuse */
	struct countercmd ct_cmd;       /* INCRBY, GET, WAIT, ASKING */
	struct vec ct_ring;             /* counter_op FIFO: in flight */
	struct waitlist ct_held;        /* visits waiting for WAIT */
	int ct_wait_pending;            /* INCRs sent since the last WAIT */
	int ct_wait_inflight;           /* a WAIT is out: the next one waits */
	struct log_limit ct_errlog;     /* Redis trouble: once a second */
	struct log_limit ct_redirlog;   /* MOVED and ASK: once a second */
	struct vec ct_redo;             /* counter_op, MOVED or ASK: again */
	uint64_t ct_seq;                /* the last op_seq given */
	struct event *ct_fail_ev;       /* fail ct_failed's visits */
	struct counter_batch *ct_failed; /* unsendable, failing from the loop */
};

static void counter_send_wait(struct counter *ct);
static int counter_redo_push(struct counter *ct, const struct counter_op *op);

/* The oldest command in flight; the ring is not empty. */
static struct counter_op *
counter_ring_first(const struct counter *ct)
{
	return vec_at(&ct->ct_ring, 0);
}

/*
 * When the oldest wait of a client is due: timeout_ms after the first
 * sending of the oldest command in flight (the ring is in the order of
 * sending; a resend keeps its first time, ASKING in front of it too), held
 * back for a redirection, or answered but held for WAIT.  0 for none.
 */
static uint64_t
counter_next_deadline(const struct counter *ct)
{
	uint64_t first = UINT64_MAX;
	const struct counter_op *op;
	size_t i;

	if (ct->ct_ring.v_n > 0)
		first = counter_ring_first(ct)->op_sent_us;
	for (i = 0; i < ct->ct_redo.v_n; i++) {
		op = vec_at(&ct->ct_redo, i);
		if (op->op_sent_us < first)
			first = op->op_sent_us;
	}
	if (waitlist_oldest(&ct->ct_held) < first)
		first = waitlist_oldest(&ct->ct_held);
	if (first == UINT64_MAX)
		return 0;
	return first + (uint64_t)ct->ct_cf->cf_redis.timeout_ms * 1000;
}

/* Arm the timer for counter_next_deadline(), or stop it for none. */
static void
counter_arm_deadline(struct counter *ct)
{
	uint64_t due = counter_next_deadline(ct), now;

	if (due == 0) {
		event_del(ct->ct_timeout_ev);
		return;
	}
	now = clock_us();
	timer_arm_us(ct->ct_timeout_ev, due > now ? due - now : 0);
}

static int
counter_ring_push(struct counter *ct, const struct counter_op *o)
{
	struct counter_op *op = vec_push(&ct->ct_ring);

	if (op == NULL)
		return -1;
	*op = *o;
	return 0;
}

static struct counter_op
counter_ring_pop(struct counter *ct)
{
	struct counter_op op = *counter_ring_first(ct);

	vec_shift(&ct->ct_ring, 1);
	return op;
}

/* Log Redis trouble once a second at most: under load it repeats. */
static int
counter_may_log(struct counter *ct)
{
	return log_limit_pass(&ct->ct_errlog, clock_ms());
}

static void
counter_batch_free(struct counter_batch *b)
{
	if (b != NULL)
		vec_free(&b->b_w);
	free(b);
}

/* A batch answered: kept for the next turn, or freed. */
static void
counter_batch_done(struct counter *ct, struct counter_batch *b)
{
	if (ct->ct_spare == NULL) {
		vec_shift(&b->b_w, b->b_w.v_n);
		ct->ct_spare = b;
	} else
		counter_batch_free(b);
}

/* Fail the clients of op (none for a WAIT or ASKING). */
static void
counter_op_fail(struct counter *ct, const struct counter_op *op)
{
	struct counter_batch *b = op->op_batch;
	struct counter_waiter *w;
	size_t i;

	if (b != NULL) {
		for (i = 0; i < b->b_w.v_n; i++) {
			METRICS_ADD(mw_redis_errors, 1);
			w = vec_at(&b->b_w, i);
			w->w_cb(w->w_arg, 0, 0);
		}
		counter_batch_done(ct, b);
	} else if (op->op_cb != NULL) {
		METRICS_ADD(mw_redis_errors, 1);
		op->op_cb(op->op_arg, 0, 0);
	}
}

/*
 * Answer the clients of op with v, the value Redis returned: for a batch
 * of n, the total, so its visits are v-n+1 .. v.  With hold, they wait
 * for WAIT.
 */
static void
counter_op_answer(struct counter *ct, const struct counter_op *op,
    long long v)
{
	struct counter_batch *b = op->op_batch;
	struct counter_waiter *w;
	size_t i, n;

	if (b == NULL) {
		if (!op->op_hold || waitlist_add(&ct->ct_held, op->op_cb,
		    op->op_arg, v, op->op_sent_us) != 0)
			op->op_cb(op->op_arg, 1, v);
		return;
	}
	n = b->b_w.v_n;
	for (i = 0; i < n; i++) {
		long long mine = v - (long long)(n - 1 - i);

		w = vec_at(&b->b_w, i);
		if (!op->op_hold || waitlist_add(&ct->ct_held, w->w_cb,
		    w->w_arg, mine, op->op_sent_us) != 0)
			w->w_cb(w->w_arg, 1, mine);
	}
	counter_batch_done(ct, b);
}

/*
 * Fail b's visits from the loop, not now: the caller is handling one
 * client's request, and the other clients' answers must not be written
 * while it does (conn.c gathers a pass's output in one buffer, for the
 * client of the pass).
 */
static void
counter_batch_fail_later(struct counter *ct, struct counter_batch *b)
{
	b->b_next = ct->ct_failed;
	ct->ct_failed = b;
	event_active(ct->ct_fail_ev, 0, 1);
}

/* Fail the batches counter_batch_fail_later() set aside. */
static void
counter_fail_deferred(struct counter *ct)
{
	struct counter_op op;

	memset(&op, 0, sizeof(op));
	while ((op.op_batch = ct->ct_failed) != NULL) {
		ct->ct_failed = op.op_batch->b_next;
		counter_op_fail(ct, &op);
	}
}

static void
counter_on_fail_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	counter_fail_deferred(arg);
}

/* Fail the visits of this turn not yet sent. */
static void
counter_batch_fail(struct counter *ct)
{
	struct counter_op op;

	memset(&op, 0, sizeof(op));
	op.op_batch = ct->ct_batch;
	ct->ct_batch = NULL;     /* callbacks may count new visits */
	if (ct->ct_batch_ev)
		event_del(ct->ct_batch_ev);
	if (op.op_batch != NULL)
		counter_op_fail(ct, &op);
}

/* Fail whatever is still in flight or held back (the connection is gone). */
static void
counter_fail_all(struct counter *ct)
{
	while (ct->ct_ring.v_n > 0) {
		struct counter_op op = counter_ring_pop(ct);

		counter_op_fail(ct, &op);
	}
	/* Not sent yet: on the way to another node, it goes there. */
	if (ct->ct_conn == NULL ||
	    redisconn_sendable(ct->ct_conn) != REDISCONN_HOLD)
		counter_batch_fail(ct);
	waitlist_release(&ct->ct_held, 0);
	ct->ct_wait_pending = 0;
	ct->ct_wait_inflight = 0;
}

/*
 * Fail the commands held back for a redirection whose time is up (all of
 * them with all set).
 */
static void
counter_redo_expire(struct counter *ct, uint64_t now, int all)
{
	uint64_t ms = (uint64_t)ct->ct_cf->cf_redis.timeout_ms * 1000;
	struct vec ops;
	size_t i, failed = 0;

	/* Callbacks may send new commands, held back too: a fresh list. */
	vec_init(&ops, sizeof(struct counter_op), 1);
	vec_move(&ct->ct_redo, &ops);
	for (i = 0; i < ops.v_n; i++) {
		struct counter_op op = *(struct counter_op *)vec_at(&ops, i);

		if (!all && now < op.op_sent_us + ms &&
		    counter_redo_push(ct, &op) == 0)
			continue;
		failed++;
		counter_op_fail(ct, &op);
	}
	vec_free(&ops);
	if (failed > 0 && !all && counter_may_log(ct))
		log_warnx("redis: %zu commands held back for a redirection or "
		    "a new connection's check went out nowhere within %d ms",
		    failed, ct->ct_cf->cf_redis.timeout_ms);
}

/*
 * Fail the visits held for a WAIT that cannot come in time: one WAIT is
 * out at a time, so theirs may not even be sent yet.  They are in Redis,
 * unconfirmed: a 503, as for too few replicas.
 */
static void
counter_held_expire(struct counter *ct, uint64_t now)
{
	int ms = ct->ct_cf->cf_redis.timeout_ms;
	size_t n = waitlist_late(&ct->ct_held, now, (uint64_t)ms * 1000);

	if (n == 0)
		return;
	if (counter_may_log(ct))
		log_warnx("redis: WAIT: %zu visits not acknowledged by %d "
		    "replicas within %d ms", n,
		    ct->ct_cf->cf_redis.min_replicas_acked, ms);
	waitlist_fail_oldest(&ct->ct_held, n);
}

static void
counter_on_down(void *arg)
{
	struct counter *ct = arg;

	counter_fail_all(ct);
	/*
	 * What is held back was never executed: it waits for the next
	 * connection, until timeout_ms after its first sending.
	 */
	counter_arm_deadline(ct);
}

static void
counter_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct counter *ct = arg;
	uint64_t now = clock_us();
	int ms = ct->ct_cf->cf_redis.timeout_ms;

	(void)fd;
	(void)what;
	counter_redo_expire(ct, now, 0);
	counter_held_expire(ct, now);
	if (ct->ct_ring.v_n == 0 ||
	    now < counter_ring_first(ct)->op_sent_us + (uint64_t)ms * 1000) {
		counter_arm_deadline(ct);
		return;
	}
	log_warnx("redis: no reply within %d ms, dropping the connection "
	    "(%zu commands in flight fail)", ms, ct->ct_ring.v_n);
	redisconn_drop(ct->ct_conn);
}

/*
 * The reply to WAIT: how many replicas have every write sent before it.
 * Too few, and the visits held back are not acknowledged (503): they are
 * in the primary, but would not survive its loss.
 */
static void
counter_on_wait_reply(struct counter *ct, redisReply *reply)
{
	int need = ct->ct_cf->cf_redis.min_replicas_acked;

	ct->ct_wait_inflight = 0;
	if (reply && reply->type == REDIS_REPLY_INTEGER &&
	    reply->integer >= need) {
		waitlist_release(&ct->ct_held, 1);
		counter_send_wait(ct);
		return;
	}
	if (counter_may_log(ct)) {
		if (reply && reply->type == REDIS_REPLY_INTEGER)
			log_warnx("redis: WAIT: %lld of %d replicas acknowledged "
			    "in time", reply->integer, need);
		else if (reply && reply->type == REDIS_REPLY_ERROR)
			log_warnx("redis: WAIT: %s", reply->str);
	}
	waitlist_release(&ct->ct_held, 0);
	if (reply != NULL)
		counter_send_wait(ct);
}

/* The value of a reply to INCRBY or GET: 1 with *v, or 0 (logged). */
static int
counter_value(struct counter *ct, const redisReply *reply, int get,
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
		if (counter_may_log(ct))
			log_warnx("redis: key '%s' does not hold an integer",
			    ct->ct_cf->cf_redis.key);
		return 0;
	case REDIS_REPLY_ERROR:
		if (counter_may_log(ct))
			log_warnx("redis: %s", reply->str);
		/* A replica now (a failover happened): find the primary again. */
		if (strncmp(reply->str, "READONLY", 8) == 0)
			redisconn_disconnect(ct->ct_conn);
		return 0;
	case REDIS_REPLY_NIL:
		if (get)
			return 1;       /* a key never incremented */
		/* FALLTHROUGH */
	default:
		if (counter_may_log(ct))
			log_warnx("redis: unexpected reply type %d",
			    reply->type);
		return 0;
	}
}

/*
 * A cluster's MOVED or ASK reply to op: the command was not executed, so
 * it is held back to go where the reply says.  Returns 1 when it is,
 * else 0 (any other reply, or a malformed redirection: an error).
 */
static int
counter_redirected(struct counter *ct, const struct counter_op *op,
    const redisReply *reply)
{
	char host[256];
	unsigned int slot;
	int ask, port;

	if (ct->ct_cf->cf_redis.ncluster == 0 ||
	    cluster_redirect(reply, &ask, &slot, host, sizeof(host),
	    &port) == -1 || counter_redo_push(ct, op) == -1)
		return 0;
	if (ask)
		METRICS_ADD(mw_redis_ask, 1);
	else
		METRICS_ADD(mw_redis_moved, 1);
	/* A pipeline's worth of them come at once: log one a second. */
	if (log_limit_pass(&ct->ct_redirlog, clock_ms()))
		log_info("redis: slot %u %s %s:%d (%s); sending there", slot,
		    ask ? "is migrating to" : "moved to",
		    host[0] ? host : "the same host, port", port,
		    ask ? "ASK" : "MOVED");
	redisconn_redirect(ct->ct_conn, host, port, ask);
	return 1;
}

static void
counter_on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct counter *ct = priv;
	redisReply *reply = r;
	struct counter_op op;
	long long v = 0;
	int ok = 0;

	(void)ac;
	if (ct->ct_ring.v_n == 0)
		return;         /* cannot happen: one op per command sent */
	op = counter_ring_pop(ct);
	if (op.op_asking)
		return;         /* the command behind it tells */
	if (reply != NULL)
		metrics_observe_rtt(clock_us() - op.op_sent_us);
	if (op.op_cb == NULL && op.op_batch == NULL) {
		counter_on_wait_reply(ct, reply);
		return;
	}
	if (reply != NULL && counter_redirected(ct, &op, reply))
		return;
	/* NULL: the connection is gone; redisconn.c says why. */
	if (reply != NULL)
		ok = counter_value(ct, reply, op.op_get, &v);
	if (ok)
		counter_op_answer(ct, &op, v);
	else
		counter_op_fail(ct, &op);
}

/*
 * End of a loop turn with INCRs to confirm (min_replicas_acked): one WAIT
 * behind them all.  Scheduled before the turn's writes are flushed, so it
 * goes out in the same send().
 */
static void
counter_send_wait(struct counter *ct)
{
	/*
	 * One WAIT at a time: the server holds everything behind a WAIT until
	 * it returns, so WAITs queued back to back would add up past
	 * timeout_ms.  Visits sent meanwhile get the next one.
	 */
	struct counter_op wait = { .op_sent_us = clock_us() };

	if (!ct->ct_wait_pending || ct->ct_wait_inflight)
		return;
	ct->ct_wait_pending = 0;
	if (ct->ct_conn == NULL || counter_ring_push(ct, &wait) == -1)
		return;         /* the held visits fail with the connection */
	if (redisconn_send(ct->ct_conn, ct->ct_cmd.cc_wait,
	    ct->ct_cmd.cc_wait_len, counter_on_reply, ct) == -1) {
		vec_pop(&ct->ct_ring);
		return;
	}
	ct->ct_wait_inflight = 1;
}

static void
counter_on_wait_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	counter_send_wait(arg);
}

/* Hold op back until the next connection is open (counter_on_open()). */
static int
counter_redo_push(struct counter *ct, const struct counter_op *op)
{
	struct counter_op *at;
	size_t i = ct->ct_redo.v_n;

	/*
	 * In the order of first sending: a batch held back while the MOVED
	 * replies of older commands are still coming goes behind them, so
	 * visits keep the numbers of the order they came in.
	 */
	while (i > 0 && ((struct counter_op *)vec_at(&ct->ct_redo, i - 1))->
	    op_seq > op->op_seq)
		i--;
	if ((at = vec_insert(&ct->ct_redo, i)) == NULL)
		return -1;
	*at = *op;
	if (!evtimer_pending(ct->ct_timeout_ev, NULL))
		counter_arm_deadline(ct);
	return 0;
}

/*
 * ASKING ahead of the next command, on a connection to an ASK target,
 * with that command's time of first sending: its deadline is the one
 * that counts.
 */
static int
counter_send_asking(struct counter *ct, uint64_t sent_us)
{
	struct counter_op asking = { .op_sent_us = sent_us, .op_asking = 1 };

	if (counter_ring_push(ct, &asking) == -1)
		return -1;
	if (redisconn_send(ct->ct_conn, ct->ct_cmd.cc_asking,
	    ct->ct_cmd.cc_asking_len, counter_on_reply, ct) == -1) {
		vec_pop(&ct->ct_ring);
		return -1;
	}
	return 0;
}

/*
 * Send op's command (INCRBY of a batch, or GET), or hold it back while a
 * redirection is under way.  Returns 0, or -1 when it was neither (op's
 * callbacks are not called).
 */
static int
counter_send_op(struct counter *ct, struct counter_op *op)
{
	const char *cmd = ct->ct_cmd.cc_get;
	size_t len = ct->ct_cmd.cc_get_len;

	if (op->op_seq == 0)
		op->op_seq = ++ct->ct_seq;
	if (op->op_batch != NULL) {
		cmd = ct->ct_cmd.cc_incrby;
		len = countercmd_incrby(&ct->ct_cmd,
		    (unsigned)op->op_batch->b_w.v_n);
	}

	if (ct->ct_conn == NULL)
		return -1;
	switch (redisconn_sendable(ct->ct_conn)) {
	case REDISCONN_HOLD:
		return counter_redo_push(ct, op);
	case REDISCONN_FAIL:
		return -1;
	case REDISCONN_SEND:
		break;
	}
	if (redisconn_asking(ct->ct_conn) &&
	    counter_send_asking(ct, op->op_sent_us) == -1)
		return -1;
	if (counter_ring_push(ct, op) == -1)
		return -1;
	/*
	 * Activated before the command reaches hiredis, whose first command
	 * of the turn activates the write at the end of it: so the WAIT runs
	 * first and goes out in the same send().
	 */
	if (op->op_hold && !ct->ct_wait_pending) {
		ct->ct_wait_pending = 1;
		event_active(ct->ct_wait_ev, 0, 1);
	}
	if (redisconn_send(ct->ct_conn, cmd, (size_t)len, counter_on_reply,
	    ct) == -1) {
		/* Disconnecting after all: never sent; take it back. */
		vec_pop(&ct->ct_ring);
		return -1;
	}
	/* Not only at 1: behind ASKING the first command makes it 2. */
	if (!evtimer_pending(ct->ct_timeout_ev, NULL))
		counter_arm_deadline(ct);
	return 0;
}

/*
 * Send the visits counted since the last batch as one INCRBY.  If it
 * cannot go out, they fail (their clients get 503): now, from the loop,
 * or with later set, from the loop's next pass (see
 * counter_batch_fail_later()).
 */
static void
counter_flush_batch(struct counter *ct, int later)
{
	struct counter_op op = { .op_sent_us = clock_us(),
	    .op_hold = ct->ct_cf->cf_redis.min_replicas_acked > 0,
	    .op_batch = ct->ct_batch };

	if (op.op_batch == NULL)
		return;
	ct->ct_batch = NULL;
	event_del(ct->ct_batch_ev);
	if (counter_send_op(ct, &op) == -1) {
		if (later)
			counter_batch_fail_later(ct, op.op_batch);
		else
			counter_op_fail(ct, &op);
	}
}

static void
counter_on_batch_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	counter_flush_batch(arg, 0);
}

/* A new connection takes commands: send those held back. */
static void
counter_on_open(void *arg)
{
	struct counter *ct = arg;
	struct counter_op *op;
	struct vec ops;
	size_t i;

	if (ct->ct_redo.v_n == 0)
		return;
	/* Sending may hold some back again: into a fresh list. */
	vec_init(&ops, sizeof(struct counter_op), 1);
	vec_move(&ct->ct_redo, &ops);
	for (i = 0; i < ops.v_n; i++) {
		op = vec_at(&ops, i);
		if (counter_send_op(ct, op) == -1)
			counter_op_fail(ct, op);
	}
	vec_free(&ops);
}

struct counter *
counter_new(struct event_base *base, const struct conf *cf,
    counter_settled_cb *settled, void *arg)
{
	struct counter *ct;
	int ms = cf->cf_redis.timeout_ms;

	ct = calloc(1, sizeof(*ct));
	if (ct == NULL)
		return NULL;
	ct->ct_cf = cf;
	log_limit_init(&ct->ct_errlog, 1000);
	log_limit_init(&ct->ct_redirlog, 1000);
	vec_init(&ct->ct_ring, sizeof(struct counter_op), 64);
	waitlist_init(&ct->ct_held);
	vec_init(&ct->ct_redo, sizeof(struct counter_op), 64);
	ct->ct_conn = redisconn_new(base, cf, counter_on_down, ct);
	ct->ct_timeout_ev = evtimer_new(base, counter_on_timeout, ct);
	ct->ct_wait_ev = event_new(base, -1, 0, counter_on_wait_ev, ct);
	ct->ct_batch_ev = event_new(base, -1, 0, counter_on_batch_ev, ct);
	ct->ct_fail_ev = event_new(base, -1, 0, counter_on_fail_ev, ct);
	/*
	 * WAIT for a third of timeout_ms: visits sent while a WAIT is out
	 * wait for it, then for their own WAIT, and must still be answered
	 * in timeout_ms.
	 */
	if (ct->ct_conn == NULL || ct->ct_timeout_ev == NULL ||
	    ct->ct_wait_ev == NULL || ct->ct_batch_ev == NULL ||
	    ct->ct_fail_ev == NULL || countercmd_init(&ct->ct_cmd,
	    cf->cf_redis.key, cf->cf_redis.min_replicas_acked,
	    ms / 3 > 0 ? ms / 3 : 1) == -1) {
		counter_free(ct);
		return NULL;
	}
	redisconn_set_open_cb(ct->ct_conn, counter_on_open);
	redisconn_start(ct->ct_conn, settled, arg);
	return ct;
}

/* Room for one more visit in this turn's batch, or NULL. */
static struct counter_waiter *
counter_batch_slot(struct counter *ct)
{
	struct counter_batch *b = ct->ct_batch;

	if (b == NULL) {
		b = ct->ct_spare;
		ct->ct_spare = NULL;
		if (b == NULL && (b = malloc(sizeof(*b))) != NULL)
			vec_init(&b->b_w, sizeof(struct counter_waiter), 16);
		if (b == NULL)
			return NULL;
		ct->ct_batch = b;
	}
	return vec_push(&b->b_w);
}

int
counter_incr(struct counter *ct, counter_cb *cb, void *arg)
{
	struct counter_waiter *w;

	if (ct->ct_conn == NULL ||
	    redisconn_sendable(ct->ct_conn) == REDISCONN_FAIL ||
	    (w = counter_batch_slot(ct)) == NULL)
		return -1;
	w->w_cb = cb;
	w->w_arg = arg;
	/* The first visit of the turn: send them all when the turn ends. */
	if (ct->ct_batch->b_w.v_n == 1)
		event_active(ct->ct_batch_ev, 0, 1);
	return 0;
}

int
counter_get(struct counter *ct, counter_cb *cb, void *arg)
{
	struct counter_op op = { .op_cb = cb, .op_arg = arg,
	    .op_sent_us = clock_us(), .op_get = 1 };

	/*
	 * Replies come in order: the visits before this GET go first.  This
	 * runs inside a client's request: other clients' failures must wait.
	 */
	counter_flush_batch(ct, 1);
	return counter_send_op(ct, &op);
}

int
counter_ready(const struct counter *ct)
{
	return ct->ct_conn != NULL && redisconn_ready(ct->ct_conn);
}

size_t
counter_inflight(const struct counter *ct)
{
	struct counter_batch *b;
	size_t n = ct->ct_ring.v_n + ct->ct_redo.v_n + (ct->ct_batch != NULL);

	for (b = ct->ct_failed; b != NULL; b = b->b_next)
		n++;
	return n;
}

void
counter_free(struct counter *ct)
{
	struct redisconn *conn;

	if (ct == NULL)
		return;
	conn = ct->ct_conn;
	ct->ct_conn = NULL;      /* callbacks that send again get -1 */
	redisconn_free(conn);   /* replies due come as NULL */
	counter_fail_all(ct);
	counter_redo_expire(ct, clock_us(), 1);
	counter_fail_deferred(ct);
	if (ct->ct_timeout_ev)
		event_free(ct->ct_timeout_ev);
	if (ct->ct_wait_ev)
		event_free(ct->ct_wait_ev);
	if (ct->ct_batch_ev)
		event_free(ct->ct_batch_ev);
	if (ct->ct_fail_ev)
		event_free(ct->ct_fail_ev);
	counter_batch_free(ct->ct_spare);
	countercmd_free(&ct->ct_cmd);
	vec_free(&ct->ct_redo);
	vec_free(&ct->ct_ring);
	waitlist_free(&ct->ct_held);
	free(ct);
}
