/*
 * sentinel.c - where the Redis primary is, in the sentinels' word.
 *
 * With Redis Sentinel the primary moves: the worker asks a sentinel
 * (SENTINEL get-master-addr-by-name) before each connection, and then
 * once a second while connected.  The periodic question is there because
 * a planned failover (SENTINEL FAILOVER) can leave the old primary
 * writable for seconds without a dropped connection or a READONLY reply;
 * what the workers wrote to it then would be lost when it is demoted.  So
 * the sentinels' word is followed as soon as it changes.
 *
 * The sentinels are asked in turn, one connection at a time, each
 * question within timeout_ms on this file's own timer; one that fails is
 * passed over for the next one next time.  They are given as addresses
 * (they are what is asked when names may be moving), so no lookup is done
 * here.  A question for a new connection replaces a periodic one still
 * out.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "conf.h"
#include "log.h"
#include "redisio.h"
#include "sentinel.h"

#define SENTINEL_CHECK_MS       1000

enum sentinel_doing {
	SN_IDLE,
	SN_ASKING,              /* for sentinel_ask() */
	SN_CHECKING             /* the periodic question, while watching */
};

struct sentinel {
	struct event_base *sn_base;
	const struct conf *sn_cf;
	redisAsyncContext *sn_ac;       /* the sentinel being asked */
	enum sentinel_doing sn_doing;
	size_t sn_next;                 /* which one to ask next */
	char sn_asked[300];             /* its "host:port", for the log */
	struct event *sn_deadline_ev;   /* the question's timeout_ms */
	struct event *sn_check_ev;      /* once a second while watching */
	int sn_watching;
	char sn_host[256];              /* the primary being watched */
	int sn_port;
	int sn_complained;              /* about a check's answer, this watch */
	sentinel_answer_cb *sn_answer;
	sentinel_moved_cb *sn_moved;
	void *sn_arg;
};

/* End the exchange with the sentinel: no more callbacks from it. */
static void
sentinel_close(struct sentinel *s)
{
	redisAsyncContext *ac = s->sn_ac;

	s->sn_ac = NULL;
	s->sn_doing = SN_IDLE;
	event_del(s->sn_deadline_ev);
	if (ac != NULL)
		redisAsyncFree(ac);
}

/*
 * The sentinel asked could not tell: the next one is asked next time.
 * A question is answered; a periodic check fails quietly.
 */
static void LOG_PRINTF(3, 4)
sentinel_failed(struct sentinel *s, enum sentinel_doing doing,
    const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	s->sn_next++;
	if (doing == SN_ASKING)
		s->sn_answer(s->sn_arg, NULL, 0, why);
	else
		log_debug("redis: periodic check: %s", why);
}

/*
 * A port as a sentinel sends it: decimal digits only, 1 to 65535.
 * strtol() would take " 6379", "+6379" and "6379abc" for 6379, and atoi()
 * anything for 0.  Returns the port, or -1.
 */
static int
sentinel_port(const char *text)
{
	const char *p;
	long v = 0;

	if (text[0] == '\0' || strlen(text) > 5)
		return -1;
	for (p = text; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= 65535 ? (int)v : -1;
}

/*
 * The reply to get-master-addr-by-name: ["ip", "port"], or nil for a name
 * the sentinel does not know.  Returns 0 with the address in host and
 * *port, or -1 with why in why (for the log).
 */
static int
sentinel_parse(const struct sentinel *s, const redisReply *reply,
    char *host, size_t hostlen, int *port, char *why, size_t whylen)
{
	const char *name = s->sn_cf->cf_redis.master_name;

	if (reply->type == REDIS_REPLY_ERROR) {
		snprintf(why, whylen, "sentinel %s: %s", s->sn_asked,
		    reply->str);
		return -1;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(why, whylen, "sentinel %s has no primary for '%s'",
		    s->sn_asked, name);
		return -1;
	}
	if (strlen(reply->element[0]->str) >= hostlen) {
		snprintf(why, whylen, "sentinel %s named the primary of '%s' "
		    "with a host name too long", s->sn_asked, name);
		return -1;
	}
	if ((*port = sentinel_port(reply->element[1]->str)) == -1) {
		snprintf(why, whylen, "sentinel %s named the primary of '%s' "
		    "with a bad port '%.16s'", s->sn_asked, name,
		    reply->element[1]->str);
		return -1;
	}
	strcpy(host, reply->element[0]->str);
	return 0;
}

/*
 * The periodic question got an answer: follow it if it changed.  One
 * that cannot be understood changes nothing; it is logged as a warning
 * once per connection.
 */
static void
sentinel_check_reply(struct sentinel *s, const redisReply *reply)
{
	char host[sizeof(s->sn_host)], why[512];
	int port;

	if (!s->sn_watching)
		return;
	if (sentinel_parse(s, reply, host, sizeof(host), &port, why,
	    sizeof(why)) == -1) {
		s->sn_next++;
		if (s->sn_complained)
			log_debug("redis: %s; keeping %s:%d", why, s->sn_host,
			    s->sn_port);
		else
			log_warnx("redis: %s; keeping %s:%d", why, s->sn_host,
			    s->sn_port);
		s->sn_complained = 1;
		return;
	}
	if (strcmp(host, s->sn_host) == 0 && port == s->sn_port)
		return;
	log_warnx("redis: the sentinels moved the primary of '%s' to %s:%d; "
	    "leaving %s:%d", s->sn_cf->cf_redis.master_name, host, port,
	    s->sn_host, s->sn_port);
	sentinel_unwatch(s);
	s->sn_moved(s->sn_arg, host, port);
}

/* The answer to a question for a new connection. */
static void
sentinel_ask_reply(struct sentinel *s, const redisReply *reply)
{
	char host[sizeof(s->sn_host)], why[512];
	int port;

	if (sentinel_parse(s, reply, host, sizeof(host), &port, why,
	    sizeof(why)) == -1) {
		sentinel_failed(s, SN_ASKING, "%s", why);
		return;
	}
	s->sn_answer(s->sn_arg, host, port, NULL);
}

/*
 * The connection to the sentinel went without an answer (refused, or
 * closed before the reply); hiredis frees it after we return.
 */
static void
sentinel_lost(struct sentinel *s, const char *what,
    const redisAsyncContext *ac)
{
	enum sentinel_doing doing = s->sn_doing;

	s->sn_ac = NULL;
	s->sn_doing = SN_IDLE;
	event_del(s->sn_deadline_ev);
	sentinel_failed(s, doing, "%s sentinel %s: %s", what, s->sn_asked,
	    ac->err ? ac->errstr : "connection closed");
}

/* SENTINEL get-master-addr-by-name: ["ip", "port"], or nil if unknown. */
static void
sentinel_on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct sentinel *s = priv;
	enum sentinel_doing doing = s->sn_doing;
	redisReply *reply = r;

	if (s->sn_ac != ac)
		return;         /* given up on already */
	if (reply == NULL) {
		/* Without this the question stayed open, unanswered, for ever. */
		sentinel_lost(s, "no answer from", ac);
		return;
	}
	s->sn_ac = NULL;
	s->sn_doing = SN_IDLE;
	event_del(s->sn_deadline_ev);
	/* Inside a callback hiredis allows only this way out. */
	redisAsyncDisconnect(ac);
	if (doing == SN_CHECKING)
		sentinel_check_reply(s, reply);
	else
		sentinel_ask_reply(s, reply);
}

static void
sentinel_on_connected(const redisAsyncContext *ac, int status)
{
	struct sentinel *s = ac->data;

	if (s != NULL && s->sn_ac == ac && status != REDIS_OK)
		sentinel_lost(s, "cannot reach", ac);
}

static void
sentinel_on_disconnected(const redisAsyncContext *ac, int status)
{
	struct sentinel *s = ac->data;

	(void)status;
	if (s != NULL && s->sn_ac == ac)
		sentinel_lost(s, "no answer from", ac);
}

static void
sentinel_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct sentinel *s = arg;
	enum sentinel_doing doing = s->sn_doing;

	(void)fd;
	(void)what;
	if (doing == SN_IDLE)
		return;
	sentinel_close(s);
	sentinel_failed(s, doing, "no answer from sentinel %s within %d ms",
	    s->sn_asked, s->sn_cf->cf_redis.timeout_ms);
}

/*
 * Connect to the next sentinel and put the question.  Returns 0, or -1
 * after sentinel_failed().
 */
static int
sentinel_put(struct sentinel *s, enum sentinel_doing doing)
{
	const struct conf *cf = s->sn_cf;
	const char *spec = cf->cf_redis.sentinels[s->sn_next %
	    cf->cf_redis.nsentinels];
	int ms = cf->cf_redis.timeout_ms, port;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	redisAsyncContext *ac;
	char host[256];

	snprintf(s->sn_asked, sizeof(s->sn_asked), "%s", spec);
	if (conf_split_hostport(spec, host, sizeof(host), &port) == -1) {
		sentinel_failed(s, doing, "bad sentinel '%s'", spec);
		return -1;
	}
	ac = redisAsyncConnect(host, port);
	if (ac == NULL || ac->err || redisio_attach(ac, s->sn_base) == -1) {
		sentinel_failed(s, doing, "cannot reach sentinel %s: %s", spec,
		    ac && ac->err ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		return -1;
	}
	ac->data = s;
	redisAsyncSetConnectCallback(ac, sentinel_on_connected);
	redisAsyncSetDisconnectCallback(ac, sentinel_on_disconnected);
	s->sn_ac = ac;
	s->sn_doing = doing;
	if (cf->cf_redis.sentinel_password[0] &&
	    cf->cf_redis.sentinel_username[0])
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s",
		    cf->cf_redis.sentinel_username,
		    cf->cf_redis.sentinel_password);
	else if (cf->cf_redis.sentinel_password[0])
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s",
		    cf->cf_redis.sentinel_password);
	redisAsyncCommand(ac, sentinel_on_reply, s,
	    "SENTINEL get-master-addr-by-name %s", cf->cf_redis.master_name);
	event_add(s->sn_deadline_ev, &tv);
	return 0;
}

static void
sentinel_on_check(evutil_socket_t fd, short what, void *arg)
{
	struct sentinel *s = arg;

	(void)fd;
	(void)what;
	if (s->sn_watching && s->sn_ac == NULL)
		sentinel_put(s, SN_CHECKING);
}

struct sentinel *
sentinel_new(struct event_base *base, const struct conf *cf,
    sentinel_answer_cb *answer, sentinel_moved_cb *moved, void *arg)
{
	struct sentinel *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->sn_base = base;
	s->sn_cf = cf;
	s->sn_answer = answer;
	s->sn_moved = moved;
	s->sn_arg = arg;
	s->sn_deadline_ev = evtimer_new(base, sentinel_on_deadline, s);
	s->sn_check_ev = event_new(base, -1, EV_PERSIST, sentinel_on_check, s);
	if (s->sn_deadline_ev == NULL || s->sn_check_ev == NULL) {
		sentinel_free(s);
		return NULL;
	}
	return s;
}

void
sentinel_ask(struct sentinel *s)
{
	sentinel_unwatch(s);
	sentinel_close(s);      /* a question still out: this one replaces it */
	sentinel_put(s, SN_ASKING);
}

void
sentinel_watch(struct sentinel *s, const char *host, int port)
{
	struct timeval tv = { SENTINEL_CHECK_MS / 1000, 0 };

	snprintf(s->sn_host, sizeof(s->sn_host), "%s", host);
	s->sn_port = port;
	s->sn_watching = 1;
	s->sn_complained = 0;
	event_add(s->sn_check_ev, &tv);
}

void
sentinel_unwatch(struct sentinel *s)
{
	s->sn_watching = 0;
	event_del(s->sn_check_ev);
	if (s->sn_doing == SN_CHECKING)
		sentinel_close(s);
}

void
sentinel_free(struct sentinel *s)
{
	if (s == NULL)
		return;
	sentinel_close(s);
	if (s->sn_deadline_ev)
		event_free(s->sn_deadline_ev);
	if (s->sn_check_ev)
		event_free(s->sn_check_ev);
	free(s);
}
