/*
 * counter.c - every conversation with Redis: the worker's one hiredis
 * connection, pipelined INCRs, timeouts and reconnection.
 *
 * Each worker owns one asynchronous hiredis connection, attached to its
 * libevent loop.  Requests from all the worker's clients are written to it
 * back to back (pipelined) and Redis answers in order, so a FIFO of
 * pending operations matches each reply to its client without any
 * allocation per request.  hiredis 0.14 has no command timeout, so the
 * FIFO also carries the time each command was sent: when the oldest one is
 * overdue the connection is dropped, which fails every pending command at
 * once (the client gets 503).  A command that may have reached Redis is
 * never sent again, so a visit is never counted twice.  Reconnection backs
 * off from 50 ms to 500 ms, so service resumes within a second of Redis
 * coming back.  The host name is resolved with evdns, because a blocking
 * getaddrinfo() would stall every client of the worker.
 *
 * hiredis is tied to the loop by redisio.c, which writes at the end of
 * the loop turn.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "clock.h"
#include "conf.h"
#include "counter.h"
#include "log.h"
#include "metrics.h"
#include "redisio.h"

#define COUNTER_BACKOFF_MIN_MS  50
#define COUNTER_BACKOFF_MAX_MS  500

enum counter_state {
	CS_IDLE,        /* waiting to retry */
	CS_ASKING,      /* asking a sentinel where the primary is */
	CS_RESOLVING,   /* evdns lookup of the host */
	CS_CONNECTING,  /* TCP connect in progress */
	CS_READY,       /* connected */
	CS_CLOSED       /* counter_free() under way */
};

struct counter_op {
	counter_cb *op_cb;              /* NULL: a WAIT, confirming the held */
	void *op_arg;
	uint64_t op_sent_us;
	int op_hold;                    /* an INCR to confirm with WAIT */
};

/* An INCR answered, waiting for WAIT to say replicas have it. */
struct counter_held {
	counter_cb *h_cb;
	void *h_arg;
	long long h_value;
};

struct counter {
	struct event_base *c_base;
	struct evdns_base *c_dns;
	struct evdns_getaddrinfo_request *c_dnsreq;
	const struct conf *c_cf;
	redisAsyncContext *c_ac;
	enum counter_state c_state;
	struct event *c_retry_ev;       /* reconnect after a pause */
	struct event *c_connect_ev;     /* connect deadline */
	struct event *c_timeout_ev;     /* oldest command's deadline */
	int c_backoff_ms;
	int c_failing;                  /* the last attempt failed (log once) */
	char *c_incr_cmd;               /* "INCR key", formatted once */
	int c_incr_len;
	char *c_get_cmd;
	int c_get_len;
	struct counter_op *c_ring;      /* FIFO of commands in flight */
	size_t c_ring_cap, c_ring_head, c_ring_count;
	uint64_t c_last_errlog_ms;
	int c_connected_before;         /* a later connect is a reconnect */
	char c_host[256];               /* where the primary is now */
	int c_port;
	redisAsyncContext *c_sac;       /* the sentinel being asked */
	size_t c_sentinel;              /* which one */
	struct event *c_wait_ev;        /* append WAIT at the end of the turn */
	int c_wait_pending;             /* INCRs sent since the last WAIT */
	int c_wait_inflight;            /* a WAIT is out: the next one waits */
	struct event *c_check_ev;       /* re-ask the sentinels once a second */
	int c_checking;                 /* c_sac is a check, not a connect */
	struct counter_held *c_held;
	size_t c_nheld, c_heldcap;
	char *c_wait_cmd;
	int c_wait_len;
	counter_settled_cb *c_settled;  /* until the first attempt ends */
	void *c_settled_arg;
};

static void counter_connect(struct counter *c);

/* The first attempt to reach Redis ended, one way or the other. */
static void
counter_settle(struct counter *c)
{
	counter_settled_cb *cb = c->c_settled;

	if (cb != NULL) {
		c->c_settled = NULL;
		cb(c->c_settled_arg);
	}
}

static void counter_on_wait_ev(evutil_socket_t fd, short what, void *arg);
static void counter_send_wait(struct counter *c);
static void counter_ask_sentinel(struct counter *c, int check);
static void counter_resolve(struct counter *c);
static int counter_hold(struct counter *c, const struct counter_op *op,
    long long v);
static void counter_on_wait_reply(struct counter *c, redisReply *reply);
static void counter_on_role_reply(redisAsyncContext *ac, void *r,
    void *priv);
static void counter_release_held(struct counter *c, int ok);

static void
counter_ms_to_tv(int ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

static int
counter_ring_push(struct counter *c, counter_cb *cb, void *arg)
{
	struct counter_op *op;

	if (c->c_ring_count == c->c_ring_cap) {
		size_t ncap = c->c_ring_cap ? c->c_ring_cap * 2 : 64, i;
		struct counter_op *n = malloc(ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		for (i = 0; i < c->c_ring_count; i++)
			n[i] = c->c_ring[(c->c_ring_head + i) % c->c_ring_cap];
		free(c->c_ring);
		c->c_ring = n;
		c->c_ring_cap = ncap;
		c->c_ring_head = 0;
	}
	op = &c->c_ring[(c->c_ring_head + c->c_ring_count) % c->c_ring_cap];
	op->op_cb = cb;
	op->op_arg = arg;
	op->op_sent_us = clock_us();
	c->c_ring_count++;
	return 0;
}

static struct counter_op
counter_ring_pop(struct counter *c)
{
	struct counter_op op = c->c_ring[c->c_ring_head];

	c->c_ring_head = (c->c_ring_head + 1) % c->c_ring_cap;
	c->c_ring_count--;
	return op;
}

/* Log Redis trouble at most once a second: under load it repeats per request. */
static int
counter_may_log(struct counter *c)
{
	uint64_t now = clock_ms();

	if (now - c->c_last_errlog_ms < 1000)
		return 0;
	c->c_last_errlog_ms = now;
	return 1;
}

static void
counter_schedule_retry(struct counter *c)
{
	struct timeval tv;

	if (c->c_state == CS_CLOSED)
		return;
	c->c_state = CS_IDLE;
	if (c->c_backoff_ms == 0)
		c->c_backoff_ms = COUNTER_BACKOFF_MIN_MS;
	else if (c->c_backoff_ms < COUNTER_BACKOFF_MAX_MS)
		c->c_backoff_ms *= 2;
	if (c->c_backoff_ms > COUNTER_BACKOFF_MAX_MS)
		c->c_backoff_ms = COUNTER_BACKOFF_MAX_MS;
	counter_ms_to_tv(c->c_backoff_ms, &tv);
	event_add(c->c_retry_ev, &tv);
}

static void
counter_failed(struct counter *c, const char *what, const char *why)
{
	counter_settle(c);
	if (!c->c_failing)
		log_warnx("redis: %s %s:%d: %s", what, c->c_host, c->c_port,
		    why);
	else
		log_debug("redis: %s %s:%d: %s", what, c->c_host, c->c_port,
		    why);
	c->c_failing = 1;
}

/* Fail whatever is still in flight or held back (the connection is gone). */
static void
counter_fail_all(struct counter *c)
{
	while (c->c_ring_count > 0) {
		struct counter_op op = counter_ring_pop(c);

		if (op.op_cb == NULL)
			continue;       /* a WAIT */
		METRICS_ADD(mw_redis_errors, 1);
		op.op_cb(op.op_arg, 0, 0);
	}
	counter_release_held(c, 0);
	c->c_wait_pending = 0;
	c->c_wait_inflight = 0;
}

/*
 * Give up on the current connection: every command in flight fails (its
 * client gets 503) and a reconnect is scheduled.  Not for use inside a
 * hiredis callback, where hiredis itself owns the context.
 */
static void
counter_drop(struct counter *c)
{
	redisAsyncContext *ac = c->c_ac;

	c->c_ac = NULL;
	event_del(c->c_connect_ev);
	event_del(c->c_timeout_ev);
	if (ac)
		redisAsyncFree(ac);     /* runs the pending callbacks with NULL */
	counter_fail_all(c);
	counter_schedule_retry(c);
}

static void
counter_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	counter_connect(arg);
}

static void
counter_on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct counter *c = arg;

	(void)fd;
	(void)what;
	if (c->c_checking && c->c_sac) {
		redisAsyncContext *sac = c->c_sac;

		c->c_sac = NULL;
		c->c_checking = 0;
		redisAsyncFree(sac);
		c->c_sentinel++;        /* ask another one next time */
	} else if (c->c_state == CS_ASKING && c->c_sac) {
		redisAsyncContext *sac = c->c_sac;

		c->c_sac = NULL;
		redisAsyncFree(sac);
		counter_failed(c, "no answer from sentinel", "timed out");
		c->c_sentinel++;
		counter_schedule_retry(c);
	} else if (c->c_state == CS_RESOLVING && c->c_dnsreq) {
		struct evdns_getaddrinfo_request *req = c->c_dnsreq;

		c->c_dnsreq = NULL;
		evdns_getaddrinfo_cancel(req);
		counter_failed(c, "cannot resolve", "timed out");
		counter_schedule_retry(c);
	} else if (c->c_state == CS_CONNECTING) {
		counter_failed(c, "cannot connect to", "timed out");
		counter_drop(c);
	}
}

static void
counter_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct counter *c = arg;
	uint64_t now = clock_us(), deadline;
	struct timeval tv;

	(void)fd;
	(void)what;
	if (c->c_ring_count == 0 || c->c_ac == NULL)
		return;
	deadline = c->c_ring[c->c_ring_head].op_sent_us +
	    (uint64_t)c->c_cf->cf_redis.timeout_ms * 1000;
	if (now < deadline) {
		counter_ms_to_tv((int)((deadline - now + 999) / 1000), &tv);
		event_add(c->c_timeout_ev, &tv);
		return;
	}
	log_warnx("redis: no reply within %d ms, dropping the connection "
	    "(%zu commands in flight fail)", c->c_cf->cf_redis.timeout_ms,
	    c->c_ring_count);
	c->c_failing = 1;
	counter_drop(c);
}

static void
counter_on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct counter *c = priv;
	redisReply *reply = r;
	struct counter_op op;
	long long v = 0;
	int ok = 0;

	if (c->c_ring_count == 0)
		return;         /* cannot happen: one op per command sent */
	op = counter_ring_pop(c);
	if (reply != NULL)
		metrics_observe_rtt(clock_us() - op.op_sent_us);
	if (op.op_cb == NULL) {
		counter_on_wait_reply(c, reply);
		return;
	}
	if (reply == NULL) {
		/* Connection gone; hiredis reports why in the disconnect callback. */
	} else if (reply->type == REDIS_REPLY_INTEGER) {
		v = reply->integer;
		ok = 1;
	} else if (reply->type == REDIS_REPLY_NIL) {
		ok = 1;         /* GET of a key never incremented */
	} else if (reply->type == REDIS_REPLY_STRING) {
		char *end;

		errno = 0;
		v = strtoll(reply->str, &end, 10);
		ok = errno == 0 && end != reply->str && *end == '\0';
		if (!ok && counter_may_log(c))
			log_warnx("redis: key '%s' does not hold an integer",
			    c->c_cf->cf_redis.key);
	} else if (reply->type == REDIS_REPLY_ERROR) {
		if (counter_may_log(c))
			log_warnx("redis: %s", reply->str);
		/*
		 * A replica now (a failover happened): find the primary again.
		 * Inside a callback hiredis allows only this way out.
		 */
		if (strncmp(reply->str, "READONLY", 8) == 0 && c->c_ac == ac)
			redisAsyncDisconnect(ac);
	} else if (counter_may_log(c))
		log_warnx("redis: unexpected reply type %d", reply->type);
	if (!ok)
		METRICS_ADD(mw_redis_errors, 1);
	if (ok && op.op_hold && counter_hold(c, &op, v) == 0)
		return;         /* answered when WAIT confirms it */
	op.op_cb(op.op_arg, ok, v);
}

/* Keep an INCR's answer until the WAIT behind it returns. */
static int
counter_hold(struct counter *c, const struct counter_op *op, long long v)
{
	struct counter_held *h;

	if (c->c_nheld == c->c_heldcap) {
		size_t ncap = c->c_heldcap ? c->c_heldcap * 2 : 64;

		h = realloc(c->c_held, ncap * sizeof(*h));
		if (h == NULL)
			return -1;
		c->c_held = h;
		c->c_heldcap = ncap;
	}
	h = &c->c_held[c->c_nheld++];
	h->h_cb = op->op_cb;
	h->h_arg = op->op_arg;
	h->h_value = v;
	return 0;
}

/* Answer the held INCRs: confirmed (ok) or not. */
static void
counter_release_held(struct counter *c, int ok)
{
	size_t i, n = c->c_nheld;

	c->c_nheld = 0;         /* callbacks may send new INCRs */
	for (i = 0; i < n; i++) {
		struct counter_held h = c->c_held[i];

		if (!ok)
			METRICS_ADD(mw_redis_errors, 1);
		h.h_cb(h.h_arg, ok, h.h_value);
	}
}

/*
 * The reply to WAIT: how many replicas have every write sent before it.
 * Too few, and the visits held back are not acknowledged (503): they are
 * in the primary, but would not survive its loss.
 */
static void
counter_on_wait_reply(struct counter *c, redisReply *reply)
{
	int need = c->c_cf->cf_redis.min_replicas_acked;

	c->c_wait_inflight = 0;
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

/* What a sentinel named must really be the primary (it may be stale). */
static void
counter_on_role_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct counter *c = priv;
	redisReply *reply = r;

	if (reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
	    reply->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(reply->element[0]->str, "master") == 0)
		return;
	log_warnx("redis: %s:%d is not the primary; asking the sentinels "
	    "again", c->c_host, c->c_port);
	redisAsyncDisconnect(ac);
}

/* Replies to AUTH and SELECT: an error makes the connection useless. */
static void
counter_on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;

	(void)priv;
	if (reply && reply->type == REDIS_REPLY_ERROR) {
		log_warnx("redis: connection setup failed: %s", reply->str);
		/* Inside a callback hiredis allows only this way out. */
		redisAsyncDisconnect(ac);
	}
}

static void
counter_on_connected(const redisAsyncContext *ac, int status)
{
	struct counter *c = ac->data;

	if (c == NULL || c->c_ac != ac)
		return;
	event_del(c->c_connect_ev);
	if (status != REDIS_OK) {
		counter_failed(c, "cannot connect to", ac->errstr);
		c->c_ac = NULL;         /* hiredis frees it after we return */
		counter_schedule_retry(c);
		return;
	}
	c->c_state = CS_READY;
	c->c_backoff_ms = 0;
	counter_settle(c);
	if (c->c_connected_before)
		METRICS_ADD(mw_redis_reconnects, 1);
	c->c_connected_before = 1;
	log_info("redis: connected to %s:%d%s", c->c_host, c->c_port,
	    c->c_cf->cf_redis.nsentinels ? " (the primary, says the sentinel)" :
	    "");
	c->c_failing = 0;
}

static void
counter_on_disconnected(const redisAsyncContext *ac, int status)
{
	struct counter *c = ac->data;

	if (c == NULL || c->c_ac != ac)
		return;         /* we dropped it ourselves */
	c->c_ac = NULL;
	event_del(c->c_timeout_ev);
	counter_fail_all(c);
	if (status != REDIS_OK)
		counter_failed(c, "lost connection to", ac->errstr);
	else
		c->c_failing = 1;
	counter_schedule_retry(c);
}

static void
counter_start_connect(struct counter *c, const char *ip)
{
	const struct conf *cf = c->c_cf;
	redisAsyncContext *ac;
	struct timeval tv;

	ac = redisAsyncConnect(ip, c->c_port);
	if (ac == NULL) {
		counter_failed(c, "cannot connect to", "out of memory");
		counter_schedule_retry(c);
		return;
	}
	if (ac->err) {
		counter_failed(c, "cannot connect to", ac->errstr);
		redisAsyncFree(ac);
		counter_schedule_retry(c);
		return;
	}
	ac->data = c;
	if (redisio_attach(ac, c->c_base) == -1) {
		counter_failed(c, "cannot connect to", "event attach failed");
		redisAsyncFree(ac);
		counter_schedule_retry(c);
		return;
	}
	redisAsyncSetConnectCallback(ac, counter_on_connected);
	redisAsyncSetDisconnectCallback(ac, counter_on_disconnected);
	c->c_ac = ac;
	c->c_state = CS_CONNECTING;
	/* Queued now, these go out first once the connection is up. */
	if (cf->cf_redis.password[0])
		redisAsyncCommand(ac, counter_on_setup_reply, c, "AUTH %s",
		    cf->cf_redis.password);
	if (cf->cf_redis.db != 0)
		redisAsyncCommand(ac, counter_on_setup_reply, c, "SELECT %d",
		    cf->cf_redis.db);
	if (cf->cf_redis.nsentinels > 0)
		redisAsyncCommand(ac, counter_on_role_reply, c, "ROLE");
	counter_ms_to_tv(cf->cf_redis.timeout_ms, &tv);
	event_add(c->c_connect_ev, &tv);
}

static void
counter_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct counter *c = arg;
	char ip[INET6_ADDRSTRLEN];
	struct evutil_addrinfo *ai;
	const void *addr;

	if (result == EVUTIL_EAI_CANCEL)
		return;         /* timed out or closing; already handled */
	c->c_dnsreq = NULL;
	if (c->c_state != CS_RESOLVING) {
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	event_del(c->c_connect_ev);
	if (result != 0 || res == NULL) {
		counter_failed(c, "cannot resolve", evutil_gai_strerror(result));
		if (res)
			evutil_freeaddrinfo(res);
		counter_schedule_retry(c);
		return;
	}
	/*
	 * Prefer IPv4: "localhost" resolves to ::1 as well, and Redis is often
	 * bound to 127.0.0.1 only.
	 */
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if (ai->ai_family == AF_INET)
			break;
	if (ai == NULL)
		ai = res;
	if (ai->ai_family == AF_INET6)
		addr = &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
	else
		addr = &((struct sockaddr_in *)ai->ai_addr)->sin_addr;
	evutil_inet_ntop(ai->ai_family, addr, ip, sizeof(ip));
	evutil_freeaddrinfo(res);
	counter_start_connect(c, ip);
}

static void
counter_resolve(struct counter *c)
{
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *req;
	struct timeval tv;

	if (c->c_state == CS_CLOSED)
		return;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	c->c_state = CS_RESOLVING;
	counter_ms_to_tv(c->c_cf->cf_redis.timeout_ms, &tv);
	event_add(c->c_connect_ev, &tv);
	/* May call counter_on_resolved() before it returns (numeric hosts). */
	req = evdns_getaddrinfo(c->c_dns, c->c_host, NULL, &hints,
	    counter_on_resolved, c);
	if (req && c->c_state == CS_RESOLVING)
		c->c_dnsreq = req;
}

static void
counter_on_sentinel_disconnected(const redisAsyncContext *ac, int status)
{
	struct counter *c = ac->data;

	(void)status;
	if (c != NULL && c->c_sac == ac)
		c->c_sac = NULL;
}

static void
counter_on_sentinel_connected(const redisAsyncContext *ac, int status)
{
	struct counter *c = ac->data;

	if (c == NULL || c->c_sac != ac || status == REDIS_OK)
		return;
	c->c_sac = NULL;        /* hiredis frees it */
	event_del(c->c_connect_ev);
	if (c->c_checking) {
		c->c_checking = 0;
		c->c_sentinel++;
		return;
	}
	counter_failed(c, "cannot reach sentinel", ac->errstr);
	c->c_sentinel++;
	counter_schedule_retry(c);
}

/*
 * The periodic question got an answer.  A planned failover (SENTINEL
 * FAILOVER) can leave the old primary writable for seconds without a
 * dropped connection or a READONLY reply; what the workers write to it
 * then is lost when it is demoted.  So follow the sentinels' word.
 */
static void
counter_check_reply(struct counter *c, redisReply *reply)
{
	if (c->c_state != CS_READY || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(reply->element[0]->str, c->c_host) == 0 &&
	    atoi(reply->element[1]->str) == c->c_port)
		return;
	log_warnx("redis: the sentinels moved the primary of '%s' to %s:%s; "
	    "leaving %s:%d", c->c_cf->cf_redis.master_name,
	    reply->element[0]->str, reply->element[1]->str, c->c_host,
	    c->c_port);
	c->c_failing = 1;
	counter_drop(c);        /* a different connection than the sentinel's */
}

static void
counter_on_check(evutil_socket_t fd, short what, void *arg)
{
	struct counter *c = arg;

	(void)fd;
	(void)what;
	if (c->c_state == CS_READY && c->c_sac == NULL)
		counter_ask_sentinel(c, 1);
}

/* SENTINEL get-master-addr-by-name: ["ip", "port"], or nil if unknown. */
static void
counter_on_sentinel_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct counter *c = priv;
	redisReply *reply = r;
	long port;

	if (reply == NULL || c->c_sac != ac)
		return;
	c->c_sac = NULL;
	redisAsyncDisconnect(ac);
	event_del(c->c_connect_ev);
	if (c->c_checking) {
		c->c_checking = 0;
		counter_check_reply(c, reply);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING ||
	    strlen(reply->element[0]->str) >= sizeof(c->c_host) ||
	    (port = strtol(reply->element[1]->str, NULL, 10)) < 1 ||
	    port > 65535) {
		counter_failed(c, "sentinel has no primary for",
		    reply->type == REDIS_REPLY_ERROR ? reply->str :
		    c->c_cf->cf_redis.master_name);
		c->c_sentinel++;
		counter_schedule_retry(c);
		return;
	}
	if (strcmp(c->c_host, reply->element[0]->str) != 0 ||
	    c->c_port != (int)port)
		log_info("redis: the sentinels say the primary of '%s' is "
		    "%s:%ld", c->c_cf->cf_redis.master_name,
		    reply->element[0]->str, port);
	strcpy(c->c_host, reply->element[0]->str);
	c->c_port = (int)port;
	counter_resolve(c);
}

/*
 * Ask the next sentinel where the primary is.  Sentinels are given as
 * addresses (they are what is asked when names may be moving), so no
 * lookup is done here.
 */
static void
counter_ask_sentinel(struct counter *c, int check)
{
	const struct conf *cf = c->c_cf;
	const char *spec = cf->cf_redis.sentinels[c->c_sentinel %
	    cf->cf_redis.nsentinels];
	redisAsyncContext *ac;
	struct timeval tv;
	char host[256];
	int port;

	if (conf_split_hostport(spec, host, sizeof(host), &port) == -1) {
		c->c_sentinel++;
		if (check)
			return;
		counter_failed(c, "bad sentinel", spec);
		counter_schedule_retry(c);
		return;
	}
	if (!check) {
		c->c_state = CS_ASKING;
		if (c->c_sac) {
			/* A periodic check still out: this question replaces it. */
			redisAsyncContext *old = c->c_sac;

			c->c_sac = NULL;
			c->c_checking = 0;
			redisAsyncFree(old);
		}
	}
	ac = redisAsyncConnect(host, port);
	if (ac == NULL || ac->err || redisio_attach(ac, c->c_base) == -1) {
		if (!check)
			counter_failed(c, "cannot reach sentinel", ac && ac->err ?
			    ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		c->c_sentinel++;
		if (!check)
			counter_schedule_retry(c);
		return;
	}
	c->c_checking = check;
	ac->data = c;
	redisAsyncSetConnectCallback(ac, counter_on_sentinel_connected);
	redisAsyncSetDisconnectCallback(ac, counter_on_sentinel_disconnected);
	c->c_sac = ac;
	if (cf->cf_redis.sentinel_password[0])
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s",
		    cf->cf_redis.sentinel_password);
	redisAsyncCommand(ac, counter_on_sentinel_reply, c,
	    "SENTINEL get-master-addr-by-name %s", cf->cf_redis.master_name);
	counter_ms_to_tv(cf->cf_redis.timeout_ms, &tv);
	event_add(c->c_connect_ev, &tv);
}

static void
counter_connect(struct counter *c)
{
	if (c->c_state == CS_CLOSED)
		return;
	if (c->c_cf->cf_redis.nsentinels > 0)
		counter_ask_sentinel(c, 0);
	else
		counter_resolve(c);
}

struct counter *
counter_new(struct event_base *base, const struct conf *cf,
    counter_settled_cb *settled, void *arg)
{
	struct counter *c;
	size_t keylen = strlen(cf->cf_redis.key);

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->c_base = base;
	c->c_cf = cf;
	c->c_state = CS_IDLE;
	c->c_settled = settled;
	c->c_settled_arg = arg;
	snprintf(c->c_host, sizeof(c->c_host), "%s", cf->cf_redis.host);
	c->c_port = cf->cf_redis.port;
	if (cf->cf_redis.nsentinels > 0)
		snprintf(c->c_host, sizeof(c->c_host), "(%s)",
		    cf->cf_redis.master_name);
	c->c_wait_ev = event_new(base, -1, 0, counter_on_wait_ev, c);
	if (cf->cf_redis.nsentinels > 0) {
		struct timeval one = { 1, 0 };

		c->c_check_ev = event_new(base, -1, EV_PERSIST, counter_on_check,
		    c);
		if (c->c_check_ev)
			event_add(c->c_check_ev, &one);
	}
	/*
	 * A third of timeout_ms: INCRs sent while a WAIT is out wait for it,
	 * then for their own WAIT, and must still be answered in timeout_ms.
	 */
	c->c_wait_len = redisFormatCommand(&c->c_wait_cmd, "WAIT %d %d",
	    cf->cf_redis.min_replicas_acked,
	    cf->cf_redis.timeout_ms / 3 > 0 ? cf->cf_redis.timeout_ms / 3 : 1);
	c->c_dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	c->c_retry_ev = evtimer_new(base, counter_on_retry, c);
	c->c_connect_ev = evtimer_new(base, counter_on_connect_timeout, c);
	c->c_timeout_ev = evtimer_new(base, counter_on_timeout, c);
	c->c_incr_len = redisFormatCommand(&c->c_incr_cmd, "INCR %b",
	    cf->cf_redis.key, keylen);
	c->c_get_len = redisFormatCommand(&c->c_get_cmd, "GET %b",
	    cf->cf_redis.key, keylen);
	if (c->c_dns == NULL || c->c_retry_ev == NULL ||
	    c->c_connect_ev == NULL || c->c_timeout_ev == NULL ||
	    c->c_wait_ev == NULL || c->c_wait_len <= 0 ||
	    c->c_incr_len <= 0 || c->c_get_len <= 0) {
		counter_free(c);
		return NULL;
	}
	counter_connect(c);
	return c;
}

/*
 * End of a loop turn with INCRs to confirm (min_replicas_acked): one WAIT
 * behind them all.  Scheduled before the turn's writes are flushed, so it
 * goes out in the same send().
 */
static void
counter_send_wait(struct counter *c)
{
	/*
	 * One WAIT at a time: the server holds everything behind a WAIT until
	 * it returns, so WAITs queued back to back would add up past
	 * timeout_ms.  INCRs sent meanwhile get the next one.
	 */
	if (!c->c_wait_pending || c->c_wait_inflight)
		return;
	c->c_wait_pending = 0;
	if (c->c_ac == NULL || counter_ring_push(c, NULL, NULL) == -1)
		return;         /* the held INCRs fail with the connection */
	if (redisAsyncFormattedCommand(c->c_ac, counter_on_reply, c,
	    c->c_wait_cmd, (size_t)c->c_wait_len) != REDIS_OK) {
		c->c_ring_count--;
		return;
	}
	c->c_wait_inflight = 1;
}

static void
counter_on_wait_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	counter_send_wait(arg);
}

static int
counter_send(struct counter *c, const char *cmd, int len, counter_cb *cb,
    void *arg, int hold)
{
	struct timeval tv;

	if (c->c_ac == NULL ||
	    (c->c_state != CS_READY && c->c_state != CS_CONNECTING))
		return -1;
	if (counter_ring_push(c, cb, arg) == -1)
		return -1;
	c->c_ring[(c->c_ring_head + c->c_ring_count - 1) % c->c_ring_cap].op_hold =
	    hold;
	if (hold && !c->c_wait_pending) {
		c->c_wait_pending = 1;
		event_active(c->c_wait_ev, 0, 1);
	}
	if (redisAsyncFormattedCommand(c->c_ac, counter_on_reply, c, cmd,
	    (size_t)len) != REDIS_OK) {
		/* Disconnecting: the op was never sent; take it back. */
		c->c_ring_count--;
		return -1;
	}
	if (c->c_ring_count == 1 && !evtimer_pending(c->c_timeout_ev, NULL)) {
		counter_ms_to_tv(c->c_cf->cf_redis.timeout_ms, &tv);
		event_add(c->c_timeout_ev, &tv);
	}
	return 0;
}

int
counter_incr(struct counter *c, counter_cb *cb, void *arg)
{
	return counter_send(c, c->c_incr_cmd, c->c_incr_len, cb, arg,
	    c->c_cf->cf_redis.min_replicas_acked > 0);
}

int
counter_get(struct counter *c, counter_cb *cb, void *arg)
{
	return counter_send(c, c->c_get_cmd, c->c_get_len, cb, arg, 0);
}

int
counter_ready(const struct counter *c)
{
	return c->c_state == CS_READY;
}

size_t
counter_inflight(const struct counter *c)
{
	return c->c_ring_count;
}

void
counter_free(struct counter *c)
{
	if (c == NULL)
		return;
	if (c->c_dnsreq) {
		struct evdns_getaddrinfo_request *req = c->c_dnsreq;

		c->c_dnsreq = NULL;
		c->c_state = CS_CLOSED;
		evdns_getaddrinfo_cancel(req);
	}
	c->c_state = CS_CLOSED;
	if (c->c_sac) {
		redisAsyncContext *sac = c->c_sac;

		c->c_sac = NULL;
		redisAsyncFree(sac);
	}
	if (c->c_ac) {
		redisAsyncContext *ac = c->c_ac;

		c->c_ac = NULL;
		redisAsyncFree(ac);
	}
	counter_fail_all(c);
	if (c->c_wait_ev)
		event_free(c->c_wait_ev);
	if (c->c_check_ev)
		event_free(c->c_check_ev);
	if (c->c_wait_cmd)
		redisFreeCommand(c->c_wait_cmd);
	free(c->c_held);
	if (c->c_retry_ev)
		event_free(c->c_retry_ev);
	if (c->c_connect_ev)
		event_free(c->c_connect_ev);
	if (c->c_timeout_ev)
		event_free(c->c_timeout_ev);
	if (c->c_dns)
		evdns_base_free(c->c_dns, 0);
	if (c->c_incr_cmd)
		redisFreeCommand(c->c_incr_cmd);
	if (c->c_get_cmd)
		redisFreeCommand(c->c_get_cmd);
	free(c->c_ring);
	free(c);
}
