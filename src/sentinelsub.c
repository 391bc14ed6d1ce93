/*
 * sentinelsub.c - the sentinels' announcements, as they are published.
 *
 * A sentinel publishes each step of a failover on a Pub/Sub channel of
 * its own (+switch-master, +promoted-slave, ...).  Asking once a second
 * (sentinel.c) learns of a new primary up to a second late, and a planned
 * failover leaves the old primary writable meanwhile: what the workers
 * write to it then is lost.  So each worker also keeps a subscription on
 * every sentinel, and hears each step as it is taken.  On every one, not
 * one in turn: the steps before the switch are published only by the
 * sentinel that runs the failover, and any of them may.
 *
 * Each subscription is its own connection: the sentinel's name looked up
 * with evdns (never the blocking getaddrinfo()), AUTH with the sentinel
 * password (redisio.c), SUBSCRIBE to the caller's channels, all confirmed
 * within timeout_ms.  One that fails or is lost is made again after a
 * pause that backs off from 100 ms to 1 s; the failure is logged as a
 * warning once, then at debug level until it is subscribed again.  A
 * sentinel that hangs once subscribed is not noticed here: the periodic
 * question still is asked of each in turn.
 *
 * Knows nothing of what the messages mean (sentinel.c does).  Calls
 * redisio.c, addr.c, timer.c, backoff.c and log.c, and reads conf.h;
 * called by sentinel.c only, so it never includes sentinel.h.
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
#include "backoff.h"
#include "conf.h"
#include "log.h"
#include "redisio.h"
#include "sentinelsub.h"
#include "timer.h"

#define SENTINELSUB_BACKOFF_MIN_MS      100
#define SENTINELSUB_BACKOFF_MAX_MS      1000

enum sentinelsub_state {
	SL_IDLE,                /* waiting to try (again) */
	SL_LOOKUP,              /* evdns lookup of the sentinel's name */
	SL_CONNECTING,          /* until every channel is confirmed */
	SL_SUBSCRIBED
};

/* The subscription on one sentinel. */
struct sentinelsub_link {
	struct sentinelsub *sl_sb;
	const char *sl_spec;            /* "host:port", as configured */
	int sl_port;
	enum sentinelsub_state sl_state;
	struct evdns_getaddrinfo_request *sl_dnsreq;
	redisAsyncContext *sl_ac;
	struct event *sl_ev;            /* the deadline, or the next try */
	struct backoff sl_backoff;      /* the pause before the next try */
	struct log_limit sl_failing;    /* warn once, then debug */
	int sl_subscribed_before;       /* a failure now is a loss */
	size_t sl_confirmed;            /* channels confirmed so far */
};

struct sentinelsub {
	struct event_base *sb_base;
	struct evdns_base *sb_dns;
	const struct conf *sb_cf;
	const char **sb_argv;           /* "SUBSCRIBE", the channels */
	size_t sb_nchannels;
	sentinelsub_cb *sb_cb;
	void *sb_arg;
	struct sentinelsub_link *sb_links;      /* one per sentinel */
	size_t sb_nlinks;
	int sb_started;
};

static void sentinelsub_open(struct sentinelsub_link *l);

/* Give up the lookup or connection; not inside a callback of its own. */
static void
sentinelsub_close(struct sentinelsub_link *l)
{
	l->sl_state = SL_IDLE;
	event_del(l->sl_ev);
	redisio_drop(&l->sl_dnsreq, &l->sl_ac); /* callbacks: not ours */
}

/*
 * The subscription failed, or was lost (already closed, or being freed
 * by hiredis): say why, and try again after a pause.
 */
static void LOG_PRINTF(2, 3)
sentinelsub_failed(struct sentinelsub_link *l, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	int level = log_limit_level(&l->sl_failing, LOG_WARNING, 0);

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_at(level, "redis: %s sentinel %s: %s", level == LOG_WARNING &&
	    l->sl_subscribed_before ? "lost the subscription to" :
	    "cannot subscribe to", l->sl_spec, why);
	l->sl_state = SL_IDLE;
	timer_arm_ms(l->sl_ev, backoff_next(&l->sl_backoff));
}

/* The deadline of an attempt, or the end of the pause after a failure. */
static void
sentinelsub_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sentinelsub_link *l = arg;
	int looking_up = l->sl_state == SL_LOOKUP;

	(void)fd;
	(void)what;
	if (l->sl_state == SL_IDLE) {
		sentinelsub_open(l);
		return;
	}
	if (l->sl_state == SL_SUBSCRIBED)
		return;
	sentinelsub_close(l);
	sentinelsub_failed(l, "%s within %d ms", looking_up ? "no address" :
	    "not subscribed", l->sl_sb->sb_cf->cf_redis.timeout_ms);
}

/* A confirmation of SUBSCRIBE, or a message on a channel. */
static void
sentinelsub_on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct sentinelsub_link *l = priv;
	struct sentinelsub *sb = l->sl_sb;
	redisReply *reply = r;

	if (reply == NULL || l->sl_ac != ac)
		return;         /* going: the disconnect callback says why */
	if (reply->type == REDIS_REPLY_ERROR) {
		/* hiredis 1.x hands SUBSCRIBE's error (NOAUTH ...) to us */
		l->sl_ac = NULL;
		event_del(l->sl_ev);
		redisAsyncDisconnect(ac);
		sentinelsub_failed(l, "%s", reply->str);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(reply->element[0]->str, "subscribe") == 0) {
		if (++l->sl_confirmed < sb->sb_nchannels)
			return;
		if (log_limit_reset(&l->sl_failing))
			log_info("redis: subscribed to sentinel %s again",
			    l->sl_spec);
		l->sl_state = SL_SUBSCRIBED;
		l->sl_subscribed_before = 1;
		backoff_reset(&l->sl_backoff);
		event_del(l->sl_ev);
	} else if (strcmp(reply->element[0]->str, "message") == 0 &&
	    reply->element[2]->type == REDIS_REPLY_STRING)
		sb->sb_cb(sb->sb_arg, reply->element[1]->str,
		    reply->element[2]->str);
}

static void
sentinelsub_on_connected(const redisAsyncContext *ac, int status)
{
	struct sentinelsub_link *l = ac->data;

	if (l == NULL || l->sl_ac != ac || status == REDIS_OK)
		return;
	l->sl_ac = NULL;        /* hiredis frees it after we return */
	event_del(l->sl_ev);
	sentinelsub_failed(l, "%s", ac->errstr);
}

static void
sentinelsub_on_disconnected(const redisAsyncContext *ac, int status)
{
	struct sentinelsub_link *l = ac->data;

	(void)status;
	if (l == NULL || l->sl_ac != ac)
		return;         /* closed by us */
	l->sl_ac = NULL;
	event_del(l->sl_ev);
	sentinelsub_failed(l, "%s", ac->err ? ac->errstr :
	    "connection closed");
}

/* Connect to the sentinel looked up, at ip, and subscribe. */
static void
sentinelsub_connect(struct sentinelsub_link *l, const char *ip)
{
	struct sentinelsub *sb = l->sl_sb;
	const struct conf *cf = sb->sb_cf;
	redisAsyncContext *ac;
	char why[256];

	ac = redisio_connect(sb->sb_base, ip, l->sl_port, NULL, why,
	    sizeof(why));
	if (ac == NULL) {
		sentinelsub_close(l);
		sentinelsub_failed(l, "%s", why);
		return;
	}
	ac->data = l;
	redisAsyncSetConnectCallback(ac, sentinelsub_on_connected);
	redisAsyncSetDisconnectCallback(ac, sentinelsub_on_disconnected);
	l->sl_ac = ac;
	l->sl_state = SL_CONNECTING;
	l->sl_confirmed = 0;
	redisio_auth(ac, cf->cf_redis.sentinel_username,
	    cf->cf_redis.sentinel_password, NULL, NULL);
	redisAsyncCommandArgv(ac, sentinelsub_on_reply, l,
	    (int)sb->sb_nchannels + 1, sb->sb_argv, NULL);
}

static void
sentinelsub_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct sentinelsub_link *l = arg;
	char ip[INET6_ADDRSTRLEN];

	if (result == EVUTIL_EAI_CANCEL)
		return;         /* given up on (sentinelsub_close()) */
	l->sl_dnsreq = NULL;
	if (redisio_resolved(result, res, ip, sizeof(ip)) == 0) {
		sentinelsub_connect(l, ip);
		return;
	}
	sentinelsub_close(l);
	sentinelsub_failed(l, "lookup: %s", evutil_gai_strerror(result));
}

/* Look the sentinel up, then connect and subscribe, within timeout_ms. */
static void
sentinelsub_open(struct sentinelsub_link *l)
{
	struct sentinelsub *sb = l->sl_sb;
	struct evdns_getaddrinfo_request *req;
	char host[ADDR_HOST_MAX], why[128];

	if (addr_split(l->sl_spec, strlen(l->sl_spec), 0, host, sizeof(host),
	    &l->sl_port, why, sizeof(why)) == -1) {
		sentinelsub_failed(l, "not HOST:PORT");
		return;
	}
	l->sl_state = SL_LOOKUP;
	timer_arm_ms(l->sl_ev, sb->sb_cf->cf_redis.timeout_ms);
	/* An address, or a name in /etc/hosts, is answered before this returns. */
	req = redisio_lookup(sb->sb_dns, host, sentinelsub_on_resolved, l);
	if (req != NULL)
		l->sl_dnsreq = req;
}

struct sentinelsub *
sentinelsub_new(struct event_base *base, struct evdns_base *dns,
    const struct conf *cf, const char *const *channels, sentinelsub_cb *cb,
    void *arg)
{
	struct sentinelsub *sb = calloc(1, sizeof(*sb));
	size_t i;

	if (sb == NULL)
		return NULL;
	sb->sb_base = base;
	sb->sb_dns = dns;
	sb->sb_cf = cf;
	sb->sb_cb = cb;
	sb->sb_arg = arg;
	while (channels[sb->sb_nchannels] != NULL)
		sb->sb_nchannels++;
	sb->sb_argv = calloc(sb->sb_nchannels + 1, sizeof(*sb->sb_argv));
	sb->sb_links = calloc(cf->cf_redis.nsentinels,
	    sizeof(*sb->sb_links));
	if (sb->sb_argv == NULL || sb->sb_links == NULL) {
		sentinelsub_free(sb);
		return NULL;
	}
	sb->sb_argv[0] = "SUBSCRIBE";
	for (i = 0; i < sb->sb_nchannels; i++)
		sb->sb_argv[i + 1] = channels[i];
	for (i = 0; i < cf->cf_redis.nsentinels; i++) {
		struct sentinelsub_link *l = &sb->sb_links[i];

		l->sl_sb = sb;
		l->sl_spec = cf->cf_redis.sentinels[i];
		backoff_init(&l->sl_backoff, SENTINELSUB_BACKOFF_MIN_MS,
		    SENTINELSUB_BACKOFF_MAX_MS);
		l->sl_ev = evtimer_new(base, sentinelsub_on_timer, l);
		if (l->sl_ev == NULL) {
			sentinelsub_free(sb);
			return NULL;
		}
		sb->sb_nlinks = i + 1;
	}
	return sb;
}

void
sentinelsub_start(struct sentinelsub *sb)
{
	size_t i;

	if (sb->sb_started)
		return;
	sb->sb_started = 1;
	for (i = 0; i < sb->sb_nlinks; i++)
		sentinelsub_open(&sb->sb_links[i]);
}

void
sentinelsub_free(struct sentinelsub *sb)
{
	size_t i;

	if (sb == NULL)
		return;
	for (i = 0; i < sb->sb_nlinks; i++) {
		sentinelsub_close(&sb->sb_links[i]);
		event_free(sb->sb_links[i].sl_ev);
	}
	free(sb->sb_links);
	free(sb->sb_argv);
	free(sb);
}
