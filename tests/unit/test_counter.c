/*
 * test_counter.c - unit tests of the INCRBY queue (counter.c) without
 * Redis: the connection (redisconn.h) is a fake defined here, which
 * records each command sent and lets a test answer it, lose the
 * connection, or see it dropped.  The queue's own timer and end-of-turn
 * WAIT run on a real libevent loop.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "conf.h"
#include "counter.h"
#include "log.h"
#include "redisconn.h"

/* ------------------------------------------------------------------ */
/* The fake connection                                                 */

#define FAKE_MAX        256

struct fake_cmd {
	char fc_text[64];               /* "INCR hits" */
	redisCallbackFn *fc_fn;
	void *fc_priv;
};

struct redisconn {
	int rc_up;                      /* commands may be sent */
	struct fake_cmd rc_sent[FAKE_MAX];      /* every command, in order */
	size_t rc_nsent;
	size_t rc_answered;             /* rc_sent[rc_answered..] are due */
	redisconn_down_cb *rc_down;
	void *rc_arg;
	redisconn_settled_cb *rc_settled;
	void *rc_settled_arg;
	int rc_drops, rc_disconnects, rc_frees;
	redisconn_open_cb *rc_open;
	int rc_redirects;               /* redisconn_redirect() calls */
	int rc_redirecting, rc_asking;
	char rc_to[64];                 /* "HOST:PORT ask" of the last one */
};

static struct redisconn fake;

struct redisconn *
redisconn_new(struct event_base *base, const struct conf *cf,
    redisconn_down_cb *down, void *arg)
{
	(void)base;
	(void)cf;
	memset(&fake, 0, sizeof(fake));
	fake.rc_up = 1;
	fake.rc_down = down;
	fake.rc_arg = arg;
	return &fake;
}

void
redisconn_start(struct redisconn *rc, redisconn_settled_cb *settled,
    void *arg)
{
	rc->rc_settled = settled;
	rc->rc_settled_arg = arg;
}

/* "*2\r\n$4\r\nINCR\r\n$4\r\nhits\r\n" -> "INCR hits" */
static void
fake_decode(const char *cmd, char *out, size_t outlen)
{
	const char *p = strchr(cmd, '\n') + 1;
	int argc = atoi(cmd + 1), i;

	out[0] = '\0';
	for (i = 0; i < argc; i++) {
		int n = atoi(p + 1);

		p = strchr(p, '\n') + 1;
		snprintf(out + strlen(out), outlen - strlen(out), "%s%.*s",
		    i ? " " : "", n, p);
		p += n + 2;
	}
}

int
redisconn_send(struct redisconn *rc, const char *cmd, size_t len,
    redisCallbackFn *fn, void *priv)
{
	struct fake_cmd *fc;

	(void)len;
	assert_int_equal(rc->rc_frees, 0);      /* no use after free */
	if (!rc->rc_up)
		return -1;
	assert_true(rc->rc_nsent < FAKE_MAX);
	fc = &rc->rc_sent[rc->rc_nsent++];
	fake_decode(cmd, fc->fc_text, sizeof(fc->fc_text));
	fc->fc_fn = fn;
	fc->fc_priv = priv;
	return 0;
}

/* Like hiredis: the replies due come as NULL, in order. */
static void
fake_fail_due(struct redisconn *rc)
{
	rc->rc_up = 0;
	while (rc->rc_answered < rc->rc_nsent) {
		struct fake_cmd *fc = &rc->rc_sent[rc->rc_answered++];

		fc->fc_fn(NULL, NULL, fc->fc_priv);
	}
}

/* The connection is lost: NULL for what was due, then down. */
static void
fake_lose(struct redisconn *rc)
{
	fake_fail_due(rc);
	rc->rc_down(rc->rc_arg);
}

void
redisconn_drop(struct redisconn *rc)
{
	rc->rc_drops++;
	fake_lose(rc);
}

void
redisconn_disconnect(struct redisconn *rc)
{
	rc->rc_disconnects++;
}

enum redisconn_sendable
redisconn_sendable(const struct redisconn *rc)
{
	assert_int_equal(rc->rc_frees, 0);
	if (rc->rc_redirecting)
		return REDISCONN_HOLD;
	return rc->rc_up ? REDISCONN_SEND : REDISCONN_FAIL;
}

int
redisconn_ready(const struct redisconn *rc)
{
	assert_int_equal(rc->rc_frees, 0);
	return rc->rc_up;
}

void
redisconn_free(struct redisconn *rc)
{
	if (rc == NULL)
		return;
	fake_fail_due(rc);
	rc->rc_frees++;         /* from now on, rc is gone */
}

void
redisconn_set_open_cb(struct redisconn *rc, redisconn_open_cb *open)
{
	rc->rc_open = open;
}

void
redisconn_redirect(struct redisconn *rc, const char *host, int port,
    int ask)
{
	rc->rc_redirects++;
	rc->rc_redirecting = 1;
	snprintf(rc->rc_to, sizeof(rc->rc_to), "%s:%d%s", host, port,
	    ask ? " ask" : "");
}

int
redisconn_asking(const struct redisconn *rc)
{
	return rc->rc_asking;
}

/*
 * The redirection's old connection closes (its replies all came), and
 * the new one opens, to an ASK target (asking) or not.
 */
static void
fake_redirected(int asking)
{
	assert_int_equal(fake.rc_answered, fake.rc_nsent);
	fake.rc_down(fake.rc_arg);
	fake.rc_redirecting = 0;
	fake.rc_asking = asking;
	fake.rc_open(fake.rc_arg);
}

/* Answer the oldest command due. */
static void
fake_reply(redisReply *reply)
{
	struct fake_cmd *fc;

	assert_true(fake.rc_answered < fake.rc_nsent);
	fc = &fake.rc_sent[fake.rc_answered++];
	fc->fc_fn(NULL, reply, fc->fc_priv);
}

static void
fake_reply_integer(long long v)
{
	redisReply r;

	memset(&r, 0, sizeof(r));
	r.type = REDIS_REPLY_INTEGER;
	r.integer = v;
	fake_reply(&r);
}

static void
fake_reply_str(int type, const char *s)
{
	redisReply r;

	memset(&r, 0, sizeof(r));
	r.type = type;
	r.str = (char *)s;
	r.len = s ? strlen(s) : 0;
	fake_reply(&r);
}

static const char *
sent(size_t i)
{
	assert_true(i < fake.rc_nsent);
	return fake.rc_sent[i].fc_text;
}

/* ------------------------------------------------------------------ */
/* The queue under test                                                */

struct answer {
	int a_id;
	int a_ok;
	long long a_value;
};

struct fixture {
	struct event_base *f_base;
	struct conf f_cf;
	struct counter *f_c;
	struct answer f_answers[FAKE_MAX];
	size_t f_nanswers;
	int f_resend;                   /* callbacks send an INCR again */
	int f_resend_rc;
	int f_settled;
};

static struct fixture *cur;

static void
on_counter(void *arg, int ok, long long value)
{
	struct answer *a;

	assert_true(cur->f_nanswers < FAKE_MAX);
	a = &cur->f_answers[cur->f_nanswers++];
	a->a_id = (int)(intptr_t)arg;
	a->a_ok = ok;
	a->a_value = value;
	/* Like a client's next pipelined request, sent from the callback. */
	if (cur->f_resend && cur->f_c != NULL)
		cur->f_resend_rc = counter_incr(cur->f_c, on_counter,
		    (void *)(intptr_t)99);
}

static void
on_settled(void *arg)
{
	((struct fixture *)arg)->f_settled++;
}

static void
incr(int id)
{
	assert_int_equal(counter_incr(cur->f_c, on_counter,
	    (void *)(intptr_t)id), 0);
}

/* One visit in a loop turn of its own: its INCRBY 1 goes out. */
static void
incr_sent(int id)
{
	incr(id);
	event_base_loop(cur->f_base, EVLOOP_NONBLOCK);
}

static void
expect_answer(size_t i, int id, int ok, long long value)
{
	assert_true(i < cur->f_nanswers);
	assert_int_equal(cur->f_answers[i].a_id, id);
	assert_int_equal(cur->f_answers[i].a_ok, ok);
	if (ok)
		assert_int_equal(cur->f_answers[i].a_value, value);
}

/*
 * counter_free(), with callbacks that try to send again: they must be
 * refused, the connection being gone.
 */
static void
free_counter(void)
{
	cur->f_resend = 1;
	cur->f_resend_rc = 0;
	counter_free(cur->f_c);
	cur->f_c = NULL;
	assert_int_equal(cur->f_resend_rc, -1);
	assert_int_equal(fake.rc_frees, 1);
}

/* One loop turn: what is active runs (the end-of-turn WAIT). */
static void
turn(void)
{
	event_base_loop(cur->f_base, EVLOOP_NONBLOCK);
}

/* Run the loop until ms after t0 (clock_ms()). */
static void
run_until(uint64_t t0, int ms)
{
	uint64_t now = clock_ms();
	struct timeval tv;

	if (now >= t0 + (uint64_t)ms)
		return;
	tv.tv_sec = (long)((t0 + ms - now) / 1000);
	tv.tv_usec = (long)((t0 + ms - now) % 1000) * 1000;
	event_base_loopexit(cur->f_base, &tv);
	event_base_dispatch(cur->f_base);
}

static int
setup_with(void **state, int timeout_ms, int acked)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	log_init(1, LOG_ERR);
	f->f_base = event_base_new();
	assert_non_null(f->f_base);
	f->f_cf.cf_redis.key = (char *)"hits";
	f->f_cf.cf_redis.timeout_ms = timeout_ms;
	f->f_cf.cf_redis.min_replicas_acked = acked;
	cur = f;
	f->f_c = counter_new(f->f_base, &f->f_cf, on_settled, f);
	assert_non_null(f->f_c);
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	return setup_with(state, 1000, 0);
}

static char *seeds[] = { (char *)"127.0.0.1:7000" };

/* With a cluster: redirections are followed, not errors. */
static int
setup_cluster(void **state)
{
	setup_with(state, 300, 0);
	cur->f_cf.cf_redis.cluster = seeds;
	cur->f_cf.cf_redis.ncluster = 1;
	return 0;
}

static int
setup_acked_short(void **state)
{
	return setup_with(state, 300, 1);
}

static int
setup_acked(void **state)
{
	return setup_with(state, 3000, 1);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	counter_free(f->f_c);
	event_base_free(f->f_base);
	free(f);
	cur = NULL;
	return 0;
}

/* ------------------------------------------------------------------ */

/*
 * Replies go to the callers in the order the commands were sent; a GET
 * sends the visits queued before it first.
 */
static void
test_replies_in_order(void **state)
{
	(void)state;
	incr(1);
	incr(2);
	assert_int_equal(fake.rc_nsent, 0);     /* batched for the turn */
	assert_int_equal(counter_get(cur->f_c, on_counter, (void *)3), 0);
	assert_int_equal(counter_get(cur->f_c, on_counter, (void *)4), 0);
	assert_int_equal(fake.rc_nsent, 3);
	assert_string_equal(sent(0), "INCRBY hits 2");
	assert_string_equal(sent(1), "GET hits");
	assert_int_equal(counter_inflight(cur->f_c), 3);
	turn();
	assert_int_equal(fake.rc_nsent, 3);     /* the batch went with GET */
	fake_reply_integer(42);
	fake_reply_str(REDIS_REPLY_NIL, NULL);
	fake_reply_str(REDIS_REPLY_STRING, "42");
	assert_int_equal(cur->f_nanswers, 4);
	expect_answer(0, 1, 1, 41);
	expect_answer(1, 2, 1, 42);
	expect_answer(2, 3, 1, 0);      /* GET of a key never incremented */
	expect_answer(3, 4, 1, 42);
	assert_int_equal(counter_inflight(cur->f_c), 0);
}

/* Replies that are no count fail their caller only. */
static void
test_bad_replies_fail(void **state)
{
	(void)state;
	incr_sent(1);
	incr_sent(2);
	incr_sent(3);
	assert_int_equal(counter_get(cur->f_c, on_counter, (void *)4), 0);
	incr_sent(5);
	fake_reply_str(REDIS_REPLY_ERROR, "ERR wrong kind of value");
	fake_reply_str(REDIS_REPLY_STATUS, "OK");
	fake_reply_integer(7);
	fake_reply_str(REDIS_REPLY_STRING, "7x");
	fake_reply_str(REDIS_REPLY_ERROR, "READONLY You can't write");
	expect_answer(0, 1, 0, 0);
	expect_answer(1, 2, 0, 0);
	expect_answer(2, 3, 1, 7);
	expect_answer(3, 4, 0, 0);
	expect_answer(4, 5, 0, 0);
	/* A replica now: the connection is closed, after the replies due. */
	assert_int_equal(fake.rc_disconnects, 1);
	assert_int_equal(fake.rc_drops, 0);
}

/* Without a connection a command is refused at once, not queued. */
static void
test_no_connection(void **state)
{
	(void)state;
	fake.rc_up = 0;
	assert_int_equal(counter_incr(cur->f_c, on_counter, (void *)1), -1);
	assert_int_equal(counter_get(cur->f_c, on_counter, (void *)2), -1);
	assert_int_equal(counter_ready(cur->f_c), 0);
	assert_int_equal(counter_inflight(cur->f_c), 0);
	assert_int_equal(fake.rc_nsent, 0);
	turn();
	assert_int_equal(cur->f_nanswers, 0);
}

/*
 * MOVED: the command was not executed; it and those sent behind it (and
 * those sent meanwhile) go out again once the new connection is open,
 * each answered once.
 */
static void
test_moved_resent(void **state)
{
	(void)state;
	incr_sent(1);
	incr_sent(2);
	incr_sent(3);
	fake_reply_integer(10);         /* executed before the slot moved */
	fake_reply_str(REDIS_REPLY_ERROR, "MOVED 3 127.0.0.1:7001");
	assert_int_equal(fake.rc_redirects, 1);
	assert_string_equal(fake.rc_to, "127.0.0.1:7001");
	incr_sent(4);                   /* held back while redirecting */
	assert_int_equal(fake.rc_nsent, 3);
	fake_reply_str(REDIS_REPLY_ERROR, "MOVED 3 127.0.0.1:7001");
	assert_int_equal(cur->f_nanswers, 1);
	assert_int_equal(counter_inflight(cur->f_c), 3);
	fake_redirected(0);
	assert_int_equal(cur->f_nanswers, 1);   /* down failed nothing held */
	assert_int_equal(fake.rc_nsent, 6);
	assert_string_equal(sent(3), "INCRBY hits 1");
	assert_string_equal(sent(5), "INCRBY hits 1");
	fake_reply_integer(11);
	fake_reply_integer(12);
	fake_reply_integer(13);
	assert_int_equal(cur->f_nanswers, 4);
	/*
	 * In the order they were first sent, though 4 joined the list before
	 * 3's MOVED came: visits are numbered in the order they came.
	 */
	expect_answer(0, 1, 1, 10);
	expect_answer(1, 2, 1, 11);
	expect_answer(2, 3, 1, 12);
	expect_answer(3, 4, 1, 13);
}

/* A batch MOVED goes to the new node whole: its visits keep their order. */
static void
test_moved_batch_resent(void **state)
{
	(void)state;
	incr(1);
	incr(2);
	turn();
	assert_string_equal(sent(0), "INCRBY hits 2");
	fake_reply_str(REDIS_REPLY_ERROR, "MOVED 3 127.0.0.1:7001");
	incr(3);                        /* a batch gathered meanwhile */
	fake_redirected(0);
	turn();
	assert_int_equal(fake.rc_nsent, 3);
	assert_string_equal(sent(1), "INCRBY hits 2");
	assert_string_equal(sent(2), "INCRBY hits 1");
	fake_reply_integer(7);
	fake_reply_integer(8);
	assert_int_equal(cur->f_nanswers, 3);
	expect_answer(0, 1, 1, 6);
	expect_answer(1, 2, 1, 7);
	expect_answer(2, 3, 1, 8);
}

/* ASK: sent again behind ASKING; other errors are not redirections. */
static void
test_ask_resent(void **state)
{
	(void)state;
	incr_sent(1);
	incr_sent(2);
	fake_reply_str(REDIS_REPLY_ERROR, "ASK 3 127.0.0.1:7002");
	assert_string_equal(fake.rc_to, "127.0.0.1:7002 ask");
	fake_reply_str(REDIS_REPLY_ERROR, "MOVED 3 bad");       /* malformed */
	expect_answer(0, 2, 0, 0);
	fake_redirected(1);
	assert_int_equal(fake.rc_nsent, 4);
	assert_string_equal(sent(2), "ASKING");
	assert_string_equal(sent(3), "INCRBY hits 1");
	incr_sent(3);
	assert_string_equal(sent(4), "ASKING");
	fake_reply_str(REDIS_REPLY_STATUS, "OK");
	fake_reply_integer(5);
	fake_reply_str(REDIS_REPLY_STATUS, "OK");
	fake_reply_integer(6);
	expect_answer(1, 1, 1, 5);
	expect_answer(2, 3, 1, 6);
	assert_int_equal(cur->f_nanswers, 3);
}

/* Held back and no connection opens: 503 within timeout_ms, once. */
static void
test_redirect_times_out(void **state)
{
	uint64_t t0 = clock_ms();

	(void)state;
	incr_sent(1);
	fake_reply_str(REDIS_REPLY_ERROR, "MOVED 3 127.0.0.1:7001");
	fake.rc_down(fake.rc_arg);
	assert_int_equal(cur->f_nanswers, 0);
	run_until(t0, 600);
	assert_int_equal(cur->f_nanswers, 1);
	expect_answer(0, 1, 0, 0);
	assert_int_equal(counter_inflight(cur->f_c), 0);
}

/* Without a cluster, MOVED is an error like any other. */
static void
test_moved_without_cluster(void **state)
{
	(void)state;
	incr_sent(1);
	fake_reply_str(REDIS_REPLY_ERROR, "MOVED 3 127.0.0.1:7001");
	expect_answer(0, 1, 0, 0);
	assert_int_equal(fake.rc_redirects, 0);
}

/*
 * A GET whose turn's visits cannot go out (the connection is closing,
 * after a READONLY): the GET's caller hears -1 at once, but the visits
 * of other clients fail from the loop, never inside this caller's call,
 * where their answers would be written into the caller's output.
 */
static void
test_get_fails_others_from_loop(void **state)
{
	(void)state;
	incr(1);
	incr(2);
	fake.rc_up = 0;                 /* disconnecting: nothing is sent */
	assert_int_equal(counter_get(cur->f_c, on_counter, (void *)3), -1);
	assert_int_equal(cur->f_nanswers, 0);
	assert_int_equal(counter_inflight(cur->f_c), 1);        /* the batch */
	turn();
	assert_int_equal(cur->f_nanswers, 2);
	expect_answer(0, 1, 0, 0);
	expect_answer(1, 2, 0, 0);
	assert_int_equal(counter_inflight(cur->f_c), 0);
}

/* counter_free() answers the visits whose failure was still to come. */
static void
test_free_fails_deferred(void **state)
{
	(void)state;
	incr(1);
	fake.rc_up = 0;
	assert_int_equal(counter_get(cur->f_c, on_counter, (void *)2), -1);
	assert_int_equal(cur->f_nanswers, 0);
	free_counter();
	assert_int_equal(cur->f_nanswers, 1);
	expect_answer(0, 1, 0, 0);
}

/*
 * On a connection to an ASK target every command goes behind ASKING, two
 * in flight from one: the deadline must be armed all the same, also once
 * it has fired with nothing in flight.
 */
static void
test_ask_target_times_out(void **state)
{
	uint64_t t0 = clock_ms();

	(void)state;
	incr_sent(1);
	fake_reply_str(REDIS_REPLY_ERROR, "ASK 3 127.0.0.1:7002");
	fake_redirected(1);
	fake_reply_str(REDIS_REPLY_STATUS, "OK");
	fake_reply_integer(5);
	expect_answer(0, 1, 1, 5);
	run_until(t0, 400);             /* the timer fires, nothing due */
	t0 = clock_ms();
	incr_sent(2);                   /* ASKING, INCRBY: the target hangs */
	assert_string_equal(sent(3), "ASKING");
	run_until(t0, 450);
	assert_int_equal(fake.rc_drops, 1);
	assert_int_equal(cur->f_nanswers, 2);
	expect_answer(1, 2, 0, 0);
}

/*
 * Held back for a redirection, a command keeps the deadline of its first
 * sending: the connection going down gives it no new timeout_ms.
 */
static void
test_redirect_keeps_first_deadline(void **state)
{
	uint64_t t0 = clock_ms();

	(void)state;
	incr_sent(1);
	run_until(t0, 200);
	fake_reply_str(REDIS_REPLY_ERROR, "MOVED 3 127.0.0.1:7001");
	fake.rc_down(fake.rc_arg);
	run_until(t0, 340);             /* timeout_ms 300 after the sending */
	assert_int_equal(cur->f_nanswers, 1);
	expect_answer(0, 1, 0, 0);
}

/*
 * A visit held for WAIT is answered within timeout_ms of its sending all
 * the same, though its WAIT goes out only when the one before returns.
 */
static void
test_held_times_out(void **state)
{
	uint64_t t0 = clock_ms();

	(void)state;
	incr_sent(1);                   /* INCRBY, WAIT */
	run_until(t0, 100);
	incr_sent(2);                   /* INCRBY, its WAIT once 1's is back */
	assert_int_equal(fake.rc_nsent, 3);
	fake_reply_integer(1);          /* 1 held */
	run_until(t0, 250);
	fake_reply_integer(1);          /* 1's WAIT, late: 2's goes out */
	expect_answer(0, 1, 1, 1);
	assert_int_equal(fake.rc_nsent, 4);
	fake_reply_integer(2);          /* 2 held, its WAIT due at 550 */
	run_until(t0, 420);             /* 2 was sent at 100 */
	assert_int_equal(cur->f_nanswers, 2);
	expect_answer(1, 2, 0, 0);
	assert_int_equal(fake.rc_drops, 0);
	fake_reply_integer(1);          /* the WAIT answers nobody twice */
	assert_int_equal(cur->f_nanswers, 2);
}

/* The settled callback is the connection's, passed through. */
static void
test_settled_passed_through(void **state)
{
	(void)state;
	assert_non_null(fake.rc_settled);
	assert_int_equal(cur->f_settled, 0);
	fake.rc_settled(fake.rc_settled_arg);
	assert_int_equal(cur->f_settled, 1);
}

/* The oldest command overdue: the connection is dropped, all fail. */
static void
test_timeout_fails_all(void **state)
{
	uint64_t t0 = clock_ms();

	(void)state;
	incr(1);
	incr(2);
	run_until(t0, 1300);
	assert_int_equal(fake.rc_drops, 1);
	assert_int_equal(cur->f_nanswers, 2);
	expect_answer(0, 1, 0, 0);
	expect_answer(1, 2, 0, 0);
	assert_int_equal(counter_inflight(cur->f_c), 0);
}

/*
 * The deadline is the oldest command's: one answered in time moves it to
 * the next, sent later, which is not failed early.
 */
static void
test_timeout_follows_oldest(void **state)
{
	uint64_t t0 = clock_ms();

	(void)state;
	incr(1);
	run_until(t0, 500);
	incr(2);
	fake_reply_integer(1);
	run_until(t0, 1250);            /* 1's deadline passed, 2's not */
	assert_int_equal(fake.rc_drops, 0);
	fake_reply_integer(2);
	expect_answer(1, 2, 1, 2);
	run_until(t0, 1700);            /* past 2's: nothing left to fail */
	assert_int_equal(fake.rc_drops, 0);
	assert_int_equal(cur->f_nanswers, 2);
}

/* A lost connection fails every command in flight, once, in order. */
static void
test_disconnect_fails_all(void **state)
{
	(void)state;
	incr_sent(1);
	incr(2);
	incr(3);
	turn();
	incr(4);                        /* queued, not sent yet */
	assert_int_equal(fake.rc_nsent, 2);
	fake_reply_integer(10);
	fake_lose(&fake);
	assert_int_equal(cur->f_nanswers, 4);
	expect_answer(0, 1, 1, 10);
	expect_answer(1, 2, 0, 0);
	expect_answer(2, 3, 0, 0);
	expect_answer(3, 4, 0, 0);
	assert_int_equal(counter_inflight(cur->f_c), 0);
	turn();                         /* nothing left to send */
	assert_int_equal(fake.rc_nsent, 2);
	/* Connected again: the queue starts afresh. */
	fake.rc_up = 1;
	incr_sent(5);
	fake_reply_integer(11);
	expect_answer(4, 5, 1, 11);
}

/*
 * The visits of a turn are one INCRBY; its total T gives them T-k+1 .. T
 * in the order they came, and a visit counted from a callback goes into
 * the next turn's batch.
 */
static void
test_batch_numbers(void **state)
{
	(void)state;
	incr(1);
	incr(2);
	incr(3);
	turn();
	assert_int_equal(fake.rc_nsent, 1);
	assert_string_equal(sent(0), "INCRBY hits 3");
	cur->f_resend = 1;
	fake_reply_integer(100);
	cur->f_resend = 0;
	assert_int_equal(cur->f_nanswers, 3);
	expect_answer(0, 1, 1, 98);
	expect_answer(1, 2, 1, 99);
	expect_answer(2, 3, 1, 100);
	assert_int_equal(cur->f_resend_rc, 0);
	assert_int_equal(fake.rc_nsent, 1);
	turn();
	assert_int_equal(fake.rc_nsent, 2);
	assert_string_equal(sent(1), "INCRBY hits 3");
	fake_reply_integer(103);
	expect_answer(5, 99, 1, 103);
}

/* An error reply fails every visit of its batch, and only those. */
static void
test_batch_error(void **state)
{
	(void)state;
	incr(1);
	incr(2);
	turn();
	incr_sent(3);
	fake_reply_str(REDIS_REPLY_ERROR,
	    "ERR increment or decrement would overflow");
	fake_reply_integer(7);
	assert_int_equal(cur->f_nanswers, 3);
	expect_answer(0, 1, 0, 0);
	expect_answer(1, 2, 0, 0);
	expect_answer(2, 3, 1, 7);
}

/* A batch that cannot go out at the end of the turn fails from the loop. */
static void
test_batch_unsendable(void **state)
{
	(void)state;
	incr(1);
	incr(2);
	fake.rc_up = 0;                 /* gone before the turn ends */
	turn();
	assert_int_equal(fake.rc_nsent, 0);
	assert_int_equal(cur->f_nanswers, 2);
	expect_answer(0, 1, 0, 0);
	expect_answer(1, 2, 0, 0);
	assert_int_equal(counter_inflight(cur->f_c), 0);
}

/* Callbacks of failed commands may send again: refused, no crash. */
static void
test_resend_from_failure(void **state)
{
	(void)state;
	incr(1);
	cur->f_resend = 1;
	cur->f_resend_rc = 0;
	fake_lose(&fake);
	assert_int_equal(cur->f_resend_rc, -1);
	expect_answer(0, 1, 0, 0);
	assert_int_equal(cur->f_nanswers, 1);
}

/* counter_free() fails what is in flight, and refuses what follows. */
static void
test_free_fails_inflight(void **state)
{
	(void)state;
	incr(1);
	incr(2);
	free_counter();
	assert_int_equal(cur->f_nanswers, 2);
	expect_answer(0, 1, 0, 0);
	expect_answer(1, 2, 0, 0);
}

/* WAIT goes behind the INCRs of a turn; they are answered when it is. */
static void
test_wait_confirms(void **state)
{
	(void)state;
	incr(1);
	incr(2);
	assert_int_equal(fake.rc_nsent, 0);
	turn();
	assert_int_equal(fake.rc_nsent, 2);
	assert_string_equal(sent(0), "INCRBY hits 2");
	assert_string_equal(sent(1), "WAIT 1 1000");
	fake_reply_integer(2);
	assert_int_equal(cur->f_nanswers, 0);   /* held */
	assert_int_equal(counter_inflight(cur->f_c), 1);        /* the WAIT */
	fake_reply_integer(1);                  /* one replica has them */
	assert_int_equal(cur->f_nanswers, 2);
	expect_answer(0, 1, 1, 1);
	expect_answer(1, 2, 1, 2);
	turn();
	assert_int_equal(fake.rc_nsent, 2);     /* nothing left to confirm */
}

/* Too few replicas: the held INCRs fail (in Redis, but not safe). */
static void
test_wait_too_few(void **state)
{
	(void)state;
	incr(1);
	incr(2);
	turn();
	fake_reply_integer(2);
	fake_reply_integer(0);
	assert_int_equal(cur->f_nanswers, 2);
	expect_answer(0, 1, 0, 0);
	expect_answer(1, 2, 0, 0);
	incr(3);
	turn();
	fake_reply_integer(3);
	fake_reply_str(REDIS_REPLY_ERROR, "ERR WAIT cannot be used");
	expect_answer(2, 3, 0, 0);
}

/*
 * One WAIT out at a time: INCRs sent meanwhile wait for it to return,
 * then get their own.
 */
static void
test_one_wait_at_a_time(void **state)
{
	(void)state;
	incr(1);
	turn();
	incr(2);
	turn();
	assert_int_equal(fake.rc_nsent, 3);
	assert_string_equal(sent(0), "INCRBY hits 1");
	assert_string_equal(sent(1), "WAIT 1 1000");
	assert_string_equal(sent(2), "INCRBY hits 1");
	fake_reply_integer(1);
	fake_reply_integer(1);          /* WAIT: 1 confirmed, next WAIT out */
	assert_int_equal(cur->f_nanswers, 1);
	expect_answer(0, 1, 1, 1);
	assert_int_equal(fake.rc_nsent, 4);
	assert_string_equal(sent(3), "WAIT 1 1000");
	fake_reply_integer(2);
	assert_int_equal(cur->f_nanswers, 1);
	fake_reply_integer(1);
	expect_answer(1, 2, 1, 2);
}

/* An INCR answered but not yet confirmed fails once with the connection. */
static void
test_held_fail_on_disconnect(void **state)
{
	(void)state;
	incr_sent(1);                   /* INCRBY, WAIT */
	incr_sent(2);                   /* INCRBY, behind the WAIT */
	incr(3);                        /* not sent yet */
	fake_reply_integer(1);          /* held */
	fake_lose(&fake);
	turn();
	assert_int_equal(cur->f_nanswers, 3);
	expect_answer(0, 1, 0, 0);      /* its WAIT failed: the held one */
	expect_answer(1, 2, 0, 0);      /* then in flight */
	expect_answer(2, 3, 0, 0);      /* then the batch */
	assert_int_equal(fake.rc_nsent, 3);     /* no WAIT for the dead */
}

/* counter_free(): held INCRs fail too, after the connection is gone. */
static void
test_free_fails_held(void **state)
{
	(void)state;
	incr_sent(1);
	incr_sent(2);
	fake_reply_integer(1);          /* held */
	free_counter();
	assert_int_equal(cur->f_nanswers, 2);
	expect_answer(0, 1, 0, 0);      /* WAIT answered NULL first */
	expect_answer(1, 2, 0, 0);
}

/* GET counts nothing: it is answered at once, without WAIT. */
static void
test_get_not_held(void **state)
{
	(void)state;
	assert_int_equal(counter_get(cur->f_c, on_counter, (void *)1), 0);
	turn();
	assert_int_equal(fake.rc_nsent, 1);
	fake_reply_integer(5);
	expect_answer(0, 1, 1, 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replies_in_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_replies_fail, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_connection, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_settled_passed_through,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_fails_all, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout_follows_oldest,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_fails_all,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_numbers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_batch_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_batch_unsendable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_resend_from_failure,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_fails_inflight,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_confirms,
		    setup_acked, teardown),
		cmocka_unit_test_setup_teardown(test_wait_too_few,
		    setup_acked, teardown),
		cmocka_unit_test_setup_teardown(test_one_wait_at_a_time,
		    setup_acked, teardown),
		cmocka_unit_test_setup_teardown(test_held_fail_on_disconnect,
		    setup_acked, teardown),
		cmocka_unit_test_setup_teardown(test_free_fails_held,
		    setup_acked, teardown),
		cmocka_unit_test_setup_teardown(test_moved_batch_resent,
		    setup_cluster, teardown),
		cmocka_unit_test_setup_teardown(test_moved_resent,
		    setup_cluster, teardown),
		cmocka_unit_test_setup_teardown(test_ask_resent,
		    setup_cluster, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_times_out,
		    setup_cluster, teardown),
		cmocka_unit_test_setup_teardown(test_moved_without_cluster,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_fails_others_from_loop,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_fails_deferred,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ask_target_times_out,
		    setup_cluster, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_keeps_first_deadline,
		    setup_cluster, teardown),
		cmocka_unit_test_setup_teardown(test_held_times_out,
		    setup_acked_short, teardown),
		cmocka_unit_test_setup_teardown(test_get_not_held,
		    setup_acked, teardown),
	};

	return cmocka_run_group_tests_name("counter", tests, NULL, NULL);
}
