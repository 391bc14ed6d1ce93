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
 * Sooner still, by what the sentinels publish (sentinelsub.c): the switch
 * (+switch-master, from every sentinel) and the promoted replica's new
 * role (+promoted-slave) name the new primary at once; and the start of
 * the promotion (+failover-state-send-slaveof-noone, a moment before the
 * replica is told) says that the old primary is about to be left behind,
 * and that what it takes from then on may be lost.  The question remains
 * for what a subscription misses.
 *
 * The sentinels are asked in turn, one connection at a time, each
 * question within timeout_ms on this file's own timer; one that fails is
 * passed over for the next one next time.  A sentinel given by name is
 * looked up first, with the worker's evdns (as redisconn.c does for the
 * primary), within the same timeout_ms: hiredis would call the blocking
 * getaddrinfo(), and stall every client of the worker, once a second.  A
 * question for a new connection replaces a periodic one still out.
 *
 * Owns the questions and the watch; the subscriptions are sentinelsub.c's.
 * Calls redisio.c (look up, connect, AUTH), addr.c (the addresses in the
 * configuration and in the answers), timer.c, log.c, and reads conf.h;
 * called by redisconn.c only.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "addr.h"
#include "conf.h"
#include "log.h"
#include "redisio.h"
#include "sentinel.h"
#include "sentinelsub.h"
#include "timer.h"
#include "util.h"

#define SENTINEL_CHECK_MS       1000

/* What the sentinels publish that is followed here. */
static const char *const sentinel_channels[] = {
	"+switch-master",       /* NAME OLD-IP OLD-PORT NEW-IP NEW-PORT */
	"+promoted-slave",      /* slave IP:PORT IP PORT @ NAME IP PORT */
	"+failover-state-send-slaveof-noone",           /* the same */
	NULL
};

enum sentinel_doing {
	SN_IDLE,
	SN_ASKING,              /* for sentinel_ask() */
	SN_CHECKING             /* the periodic question, while watching */
};

struct sentinel {
	struct event_base *sn_base;
	struct evdns_base *sn_dns;
	const struct conf *sn_cf;
	struct evdns_getaddrinfo_request *sn_dnsreq;   /* looking it up */
	redisAsyncContext *sn_ac;       /* the sentinel being asked */
	enum sentinel_doing sn_doing;
	size_t sn_next;                 /* which one to ask next */
	char sn_asked[300];             /* its "host:port", for the log */
	int sn_asked_port;
	struct event *sn_deadline_ev;   /* the question's timeout_ms */
	struct event *sn_check_ev;      /* once a second while watching */
	int sn_watching;
	char sn_host[256];              /* the primary being watched */
	int sn_port;
	struct log_limit sn_complained; /* about a check's answer, this watch */
	struct sentinelsub *sn_sub;     /* the announcements */
	sentinel_answer_cb *sn_answer;
	sentinel_moved_cb *sn_moved;
	void *sn_arg;
};

/* End the exchange with the sentinel: no more callbacks from it. */
static void
sentinel_close(struct sentinel *s)
{
	s->sn_doing = SN_IDLE;
	event_del(s->sn_deadline_ev);
	redisio_drop(&s->sn_dnsreq, &s->sn_ac);
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
	/* strtol() would take " 6379", "+6379" and "6379abc" for 6379. */
	if ((*port = addr_port(reply->element[1]->str,
	    strlen(reply->element[1]->str))) == -1) {
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
		log_at(log_limit_level(&s->sn_complained, LOG_WARNING, 0),
		    "redis: %s; keeping %s:%d", why, s->sn_host, s->sn_port);
		return;
	}
	if (strcmp(host, s->sn_host) == 0 && port == s->sn_port)
		return;
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
	int looking_up;

	(void)fd;
	(void)what;
	if (doing == SN_IDLE)
		return;
	looking_up = s->sn_dnsreq != NULL;
	sentinel_close(s);
	if (looking_up)
		sentinel_failed(s, doing, "cannot look up sentinel %s: no "
		    "answer within %d ms", s->sn_asked,
		    s->sn_cf->cf_redis.timeout_ms);
	else
		sentinel_failed(s, doing, "no answer from sentinel %s within "
		    "%d ms", s->sn_asked, s->sn_cf->cf_redis.timeout_ms);
}

/* Connect to the sentinel looked up, at ip, and put the question. */
static void
sentinel_connect(struct sentinel *s, const char *ip)
{
	const struct conf *cf = s->sn_cf;
	enum sentinel_doing doing = s->sn_doing;
	redisAsyncContext *ac;
	char why[256];

	ac = redisio_connect(s->sn_base, ip, s->sn_asked_port, NULL, why,
	    sizeof(why));
	if (ac == NULL) {
		sentinel_close(s);
		sentinel_failed(s, doing, "cannot reach sentinel %s: %s",
		    s->sn_asked, why);
		return;
	}
	ac->data = s;
	redisAsyncSetConnectCallback(ac, sentinel_on_connected);
	redisAsyncSetDisconnectCallback(ac, sentinel_on_disconnected);
	s->sn_ac = ac;
	redisio_auth(ac, cf->cf_redis.sentinel_username,
	    cf->cf_redis.sentinel_password, NULL, NULL);
	redisAsyncCommand(ac, sentinel_on_reply, s,
	    "SENTINEL get-master-addr-by-name %s", cf->cf_redis.master_name);
}

static void
sentinel_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct sentinel *s = arg;
	enum sentinel_doing doing;
	char ip[INET6_ADDRSTRLEN];

	if (result == EVUTIL_EAI_CANCEL)
		return;         /* given up on (sentinel_close()): s may be gone */
	doing = s->sn_doing;
	s->sn_dnsreq = NULL;
	if (redisio_resolved(result, res, ip, sizeof(ip)) == 0) {
		sentinel_connect(s, ip);
		return;
	}
	sentinel_close(s);
	sentinel_failed(s, doing, "cannot look up sentinel %s: %s",
	    s->sn_asked, evutil_gai_strerror(result));
}

/*
 * Look up the next sentinel, then connect to it and put the question;
 * all within timeout_ms.  A failure is reported by sentinel_failed(),
 * possibly before this returns.
 */
static void
sentinel_put(struct sentinel *s, enum sentinel_doing doing)
{
	const struct conf *cf = s->sn_cf;
	const char *spec = cf->cf_redis.sentinels[s->sn_next %
	    cf->cf_redis.nsentinels];
	struct evdns_getaddrinfo_request *req;
	char host[ADDR_HOST_MAX], why[128];

	snprintf(s->sn_asked, sizeof(s->sn_asked), "%s", spec);
	if (addr_split(spec, strlen(spec), 0, host, sizeof(host),
	    &s->sn_asked_port, why, sizeof(why)) == -1) {
		sentinel_failed(s, doing, "bad sentinel '%s'", spec);
		return;
	}
	s->sn_doing = doing;
	timer_arm_ms(s->sn_deadline_ev, cf->cf_redis.timeout_ms);
	/* An address, or a name in /etc/hosts, is answered before this returns. */
	req = redisio_lookup(s->sn_dns, host, sentinel_on_resolved, s);
	if (req != NULL)
		s->sn_dnsreq = req;
}

static void
sentinel_on_check(evutil_socket_t fd, short what, void *arg)
{
	struct sentinel *s = arg;

	(void)fd;
	(void)what;
	if (s->sn_watching && s->sn_doing == SN_IDLE)
		sentinel_put(s, SN_CHECKING);
}

/*
 * A sentinel announced that the primary is now host:port (a string from
 * the message), or, host NULL, that a replica is being promoted.
 */
static void
sentinel_announced(struct sentinel *s, const char *channel, const char *host,
    const char *port_text)
{
	int port = 0;

	if (host != NULL) {
		port = addr_port(port_text, strlen(port_text));
		if (port == -1 || strlen(host) >= sizeof(s->sn_host)) {
			log_warnx("redis: a sentinel announced %s for '%s' with "
			    "a bad address '%.64s:%.16s'; ignored", channel,
			    s->sn_cf->cf_redis.master_name, host, port_text);
			return;
		}
		if (s->sn_watching && strcmp(host, s->sn_host) == 0 &&
		    port == s->sn_port)
			return;         /* where we are (one per sentinel) */
	}
	log_debug("redis: a sentinel announced %s for '%s'", channel,
	    s->sn_cf->cf_redis.master_name);
	sentinel_unwatch(s);
	s->sn_moved(s->sn_arg, host, port);
}

/* Split text, in place, into at most n words; returns how many, or -1. */
static int
sentinel_words(char *text, char **word, int n)
{
	char *save = NULL, *w;
	int i = 0;

	for (w = strtok_r(text, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save)) {
		if (i == n)
			return -1;
		word[i++] = w;
	}
	return i;
}

/* A message on one of sentinel_channels[]: is it about our primary? */
static void
sentinel_on_announcement(void *arg, const char *channel, const char *message)
{
	struct sentinel *s = arg;
	const char *name = s->sn_cf->cf_redis.master_name;
	char text[1024], *w[8];
	int n;

	if (strlen(message) >= sizeof(text))
		return;
	strcpy(text, message);
	n = sentinel_words(text, w, (int)nitems(w));
	if (strcmp(channel, "+switch-master") == 0) {
		if (n == 5 && strcmp(w[0], name) == 0)
			sentinel_announced(s, channel, w[3], w[4]);
		return;
	}
	if (n != 8 || strcmp(w[4], "@") != 0 || strcmp(w[5], name) != 0)
		return;
	if (strcmp(channel, "+promoted-slave") == 0)
		sentinel_announced(s, channel, w[2], w[3]);
	else
		sentinel_announced(s, channel, NULL, NULL);
}

struct sentinel *
sentinel_new(struct event_base *base, struct evdns_base *dns,
    const struct conf *cf, sentinel_answer_cb *answer,
    sentinel_moved_cb *moved, void *arg)
{
	struct sentinel *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->sn_base = base;
	s->sn_dns = dns;
	s->sn_cf = cf;
	s->sn_answer = answer;
	s->sn_moved = moved;
	s->sn_arg = arg;
	s->sn_deadline_ev = evtimer_new(base, sentinel_on_deadline, s);
	s->sn_check_ev = event_new(base, -1, EV_PERSIST, sentinel_on_check, s);
	s->sn_sub = sentinelsub_new(base, dns, cf, sentinel_channels,
	    sentinel_on_announcement, s);
	if (s->sn_deadline_ev == NULL || s->sn_check_ev == NULL ||
	    s->sn_sub == NULL) {
		sentinel_free(s);
		return NULL;
	}
	return s;
}

void
sentinel_ask(struct sentinel *s)
{
	sentinelsub_start(s->sn_sub);
	sentinel_unwatch(s);
	sentinel_close(s);      /* a question still out: this one replaces it */
	sentinel_put(s, SN_ASKING);
}

void
sentinel_watch(struct sentinel *s, const char *host, int port)
{
	snprintf(s->sn_host, sizeof(s->sn_host), "%s", host);
	s->sn_port = port;
	s->sn_watching = 1;
	log_limit_reset(&s->sn_complained);
	timer_arm_ms(s->sn_check_ev, SENTINEL_CHECK_MS);
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
	sentinelsub_free(s->sn_sub);
	sentinel_close(s);
	if (s->sn_deadline_ev)
		event_free(s->sn_deadline_ev);
	if (s->sn_check_ev)
		event_free(s->sn_check_ev);
	free(s);
}
