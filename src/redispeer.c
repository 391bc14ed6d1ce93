/*
 * redispeer.c - where the Redis primary is, for a worker's connection
 * (redisconn.c): one interface, three implementations, picked once from
 * the configuration, as an nginx upstream picks its peer.get.
 *
 * - fixed: cf_redis.host (or the socket, which redisconn.c opens itself);
 *   nothing to check, nothing to watch.
 * - sentinel: the sentinels are asked (sentinel.c), their answer comes
 *   later through the found callback; a new connection must say ROLE
 *   master itself, since a sentinel's word may be stale; a ready one is
 *   watched, and the moved callback says when the sentinels name another.
 * - cluster: the primary serving the key's slot (cluster.c).  An attempt
 *   goes to the next of the seeds and the nodes learned since, in turn,
 *   and checks it with CLUSTER SLOTS: the node that serves the slot
 *   passes, another named is gone to at once, trusted without asking
 *   again (a wrong one answers MOVED).  MOVED and ASK name a node the
 *   same way (redispeer_redirect()); while the redirection is under way,
 *   commands are held for it.  Once a redirection is followed through a
 *   pause (too many in a second, or the node cannot be reached) it is
 *   over: what is sent meanwhile fails at once, as without a cluster.
 *
 * This file owns no connection to the primary and no timer: redisconn.c
 * calls it at each step of a connection's life.  It calls sentinel.c,
 * cluster.c and addr.c (for the seeds), and up only through found and
 * moved, given by redisconn.c.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "clock.h"
#include "cluster.h"
#include "conf.h"
#include "redispeer.h"
#include "sentinel.h"

/*
 * Redirections followed without a pause, in a second: nodes that disagree
 * about the slot would otherwise send us back and forth as fast as they
 * answer.  Past this the usual pause applies.
 */
#define REDISPEER_HOPS_MAX      8

/* One implementation; a NULL member does nothing (or says 0, or ""). */
struct redispeer_ops {
	enum redispeer_get (*po_get)(struct redispeer *, const char **,
	    int *);
	int (*po_check)(struct redispeer *, redisAsyncContext *,
	    redisCallbackFn *, void *);
	enum redispeer_verdict (*po_checked)(struct redispeer *,
	    const redisReply *, const char *, const char *, int, char *,
	    size_t);
	void (*po_up)(struct redispeer *, const char *, int);
	void (*po_down)(struct redispeer *);
	int (*po_at_once)(struct redispeer *);
	const char *po_noun;
	const char *(*po_why)(const struct redispeer *);
};

/* A cluster node to connect to: a seed to ask, or the slot's node. */
enum redispeer_node {
	RP_SEED,        /* the next address in turn: CLUSTER SLOTS due */
	RP_NAMED,       /* named by CLUSTER SLOTS or MOVED: trusted */
	RP_NAMED_ASK    /* named by ASK: trusted, every command behind ASKING */
};

struct redispeer {
	const struct redispeer_ops *rp_ops;
	const struct conf *rp_cf;
	char rp_host[256];              /* where the last attempt went */
	int rp_port;
	struct sentinel *rp_sentinel;   /* sentinel: the sentinels */
	struct cluster *rp_cluster;     /* cluster: the nodes to ask */
	unsigned int rp_slot;           /* the key's slot */
	enum redispeer_node rp_next;    /* where the next attempt goes */
	enum redispeer_node rp_this;    /* where this one went */
	int rp_redirecting;             /* named, at once, not yet opened:
					 * set by a name, cleared by the
					 * opening or a pause */
	int rp_hops;                    /* redirections in this second */
	uint64_t rp_hop_ms;
};

/* ------------------------------------------------------------------ */
/* fixed: cf_redis.host                                                */

static enum redispeer_get
redispeer_fixed_get(struct redispeer *p, const char **host, int *port)
{
	*host = p->rp_cf->cf_redis.host;
	*port = p->rp_cf->cf_redis.port;
	return REDISPEER_GO;
}

static const struct redispeer_ops redispeer_fixed = {
	.po_get = redispeer_fixed_get,
	.po_noun = "",
};

/* ------------------------------------------------------------------ */
/* sentinel: the sentinels' word, checked with ROLE                    */

static enum redispeer_get
redispeer_sentinel_get(struct redispeer *p, const char **host, int *port)
{
	(void)host;
	(void)port;
	sentinel_ask(p->rp_sentinel);
	return REDISPEER_LATER;
}

static int
redispeer_sentinel_check(struct redispeer *p, redisAsyncContext *ac,
    redisCallbackFn *fn, void *priv)
{
	(void)p;
	return redisAsyncCommand(ac, fn, priv, "ROLE") == REDIS_OK;
}

/* What a sentinel named must really be the primary (it may be stale). */
static enum redispeer_verdict
redispeer_sentinel_checked(struct redispeer *p, const redisReply *reply,
    const char *host, const char *ip, int port, char *why, size_t whylen)
{
	(void)p;
	(void)ip;
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
	    reply->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(reply->element[0]->str, "master") == 0)
		return REDISPEER_PASS;
	snprintf(why, whylen, "%s:%d is not the primary; asking the "
	    "sentinels again", host, port);
	return REDISPEER_REJECT;
}

static void
redispeer_sentinel_up(struct redispeer *p, const char *host, int port)
{
	sentinel_watch(p->rp_sentinel, host, port);
}

static void
redispeer_sentinel_down(struct redispeer *p)
{
	sentinel_unwatch(p->rp_sentinel);
}

static const char *
redispeer_sentinel_why(const struct redispeer *p)
{
	(void)p;
	return " (the primary, says the sentinel)";
}

static const struct redispeer_ops redispeer_sentinel = {
	.po_get = redispeer_sentinel_get,
	.po_check = redispeer_sentinel_check,
	.po_checked = redispeer_sentinel_checked,
	.po_up = redispeer_sentinel_up,
	.po_down = redispeer_sentinel_down,
	.po_noun = "",
	.po_why = redispeer_sentinel_why,
};

/* ------------------------------------------------------------------ */
/* cluster: the node serving the key's slot                            */

/*
 * The slot's node is named (by CLUSTER SLOTS, MOVED or ASK): the next
 * attempt goes there, at once.  "" for host is the node that answered.
 */
static void
redispeer_cluster_name(struct redispeer *p, const char *host, int port,
    int ask)
{
	if (host[0] != '\0')
		snprintf(p->rp_host, sizeof(p->rp_host), "%s", host);
	p->rp_port = port;
	p->rp_next = ask ? RP_NAMED_ASK : RP_NAMED;
	p->rp_redirecting = 1;
}

/*
 * The next attempt: to the node named for the slot, trusted; or to the
 * next address in turn, to ask it CLUSTER SLOTS.
 */
static enum redispeer_get
redispeer_cluster_get(struct redispeer *p, const char **host, int *port)
{
	const char *next;

	p->rp_this = p->rp_next;
	p->rp_next = RP_SEED;
	/* No redirection is under way: a pause came since the last name. */
	if (p->rp_this == RP_SEED) {
		next = cluster_next(p->rp_cluster, &p->rp_port);
		snprintf(p->rp_host, sizeof(p->rp_host), "%s", next);
	}
	*host = p->rp_host;
	*port = p->rp_port;
	return REDISPEER_GO;
}

static int
redispeer_cluster_check(struct redispeer *p, redisAsyncContext *ac,
    redisCallbackFn *fn, void *priv)
{
	if (p->rp_this != RP_SEED)
		return -1;
	return redisAsyncCommand(ac, fn, priv, "CLUSTER SLOTS") == REDIS_OK;
}

/*
 * The reply to CLUSTER SLOTS on a connection to a seed or a node learned:
 * this node serves the key's slot, or another does (gone to at once), or
 * none does.  host:port of the reply is this node when it is "" or names
 * it.
 */
static enum redispeer_verdict
redispeer_cluster_checked(struct redispeer *p, const redisReply *reply,
    const char *host, const char *ip, int port, char *why, size_t whylen)
{
	const char *key = p->rp_cf->cf_redis.key;
	char owner[256], err[200];
	int n, oport = 0;

	n = cluster_slots_owner(reply, p->rp_slot, owner, sizeof(owner),
	    &oport, p->rp_cluster, err, sizeof(err));
	if (n == 0 && oport == port && (owner[0] == '\0' ||
	    strcmp(owner, host) == 0 || strcmp(owner, ip) == 0))
		return REDISPEER_PASS;
	if (n == 0) {
		snprintf(why, whylen, "says slot %u of key '%s' is served by "
		    "%s:%d", p->rp_slot, key, owner, oport);
		redispeer_cluster_name(p, owner, oport, 0);
		return REDISPEER_ELSEWHERE;
	}
	if (n == 1)
		snprintf(why, whylen, "no node serves slot %u of key '%s' (is "
		    "the cluster complete?)", p->rp_slot, key);
	else
		snprintf(why, whylen, "bad reply to CLUSTER SLOTS: %s", err);
	return REDISPEER_FAIL;
}

/* Whether one more redirection may be followed at once (see HOPS_MAX). */
static int
redispeer_cluster_at_once(struct redispeer *p)
{
	uint64_t now;

	if (p->rp_next != RP_SEED) {
		now = clock_ms();
		if (now - p->rp_hop_ms >= 1000) {
			p->rp_hop_ms = now;
			p->rp_hops = 0;
		}
		if (++p->rp_hops <= REDISPEER_HOPS_MAX)
			return 1;
	}
	/* A pause: commands sent meanwhile fail at once, as without cluster. */
	p->rp_redirecting = 0;
	return 0;
}

static const char *
redispeer_cluster_why(const struct redispeer *p)
{
	return p->rp_this == RP_NAMED_ASK ?
	    " (for the slot it imports, says ASK)" :
	    " (serving the key's slot)";
}

static const struct redispeer_ops redispeer_cluster = {
	.po_get = redispeer_cluster_get,
	.po_check = redispeer_cluster_check,
	.po_checked = redispeer_cluster_checked,
	.po_at_once = redispeer_cluster_at_once,
	.po_noun = "cluster node ",
	.po_why = redispeer_cluster_why,
};

/* The seeds, and the key's slot.  Returns 0 or -1. */
static int
redispeer_cluster_init(struct redispeer *p)
{
	const struct conf *cf = p->rp_cf;
	char host[ADDR_HOST_MAX], why[128];
	const char *seed;
	size_t i;
	int port;

	p->rp_cluster = cluster_new();
	if (p->rp_cluster == NULL)
		return -1;
	for (i = 0; i < cf->cf_redis.ncluster; i++) {
		seed = cf->cf_redis.cluster[i];
		if (addr_split(seed, strlen(seed), 0, host, sizeof(host),
		    &port, why, sizeof(why)) == 0)
			cluster_add(p->rp_cluster, host, port);
	}
	p->rp_slot = cluster_keyslot(cf->cf_redis.key,
	    strlen(cf->cf_redis.key));
	/* conf.c checked every seed: none left is a bug, not bad input. */
	return cluster_count(p->rp_cluster) > 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* The interface                                                       */

struct redispeer *
redispeer_new(struct event_base *base, struct evdns_base *dns,
    const struct conf *cf, redispeer_found_cb *found,
    redispeer_moved_cb *moved, void *arg)
{
	struct redispeer *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->rp_cf = cf;
	p->rp_ops = &redispeer_fixed;
	if (cf->cf_redis.ncluster > 0) {
		p->rp_ops = &redispeer_cluster;
		if (redispeer_cluster_init(p) == -1)
			goto fail;
	} else if (cf->cf_redis.nsentinels > 0) {
		p->rp_ops = &redispeer_sentinel;
		p->rp_sentinel = sentinel_new(base, dns, cf, found, moved, arg);
		if (p->rp_sentinel == NULL)
			goto fail;
	}
	return p;
fail:
	redispeer_free(p);
	return NULL;
}

enum redispeer_get
redispeer_get(struct redispeer *p, const char **host, int *port)
{
	return p->rp_ops->po_get(p, host, port);
}

int
redispeer_check(struct redispeer *p, redisAsyncContext *ac,
    redisCallbackFn *fn, void *priv, int *due)
{
	int n = p->rp_ops->po_check ? p->rp_ops->po_check(p, ac, fn, priv) :
	    -1;

	*due = n != -1;
	return n == -1 ? 0 : n;
}

enum redispeer_verdict
redispeer_checked(struct redispeer *p, const redisReply *reply,
    const char *host, const char *ip, int port, char *why, size_t whylen)
{
	if (p->rp_ops->po_checked == NULL)
		return REDISPEER_PASS;
	return p->rp_ops->po_checked(p, reply, host, ip, port, why, whylen);
}

void
redispeer_up(struct redispeer *p, const char *host, int port)
{
	if (p->rp_ops->po_up)
		p->rp_ops->po_up(p, host, port);
}

void
redispeer_down(struct redispeer *p)
{
	if (p->rp_ops->po_down)
		p->rp_ops->po_down(p);
}

int
redispeer_at_once(struct redispeer *p)
{
	return p->rp_ops->po_at_once ? p->rp_ops->po_at_once(p) : 0;
}

void
redispeer_opened(struct redispeer *p)
{
	p->rp_redirecting = 0;
}

int
redispeer_redirect(struct redispeer *p, const char *host, int port,
    int ask)
{
	if (p->rp_ops != &redispeer_cluster || p->rp_redirecting)
		return -1;      /* the first of a pipeline's redirections wins */
	redispeer_cluster_name(p, host, port, ask);
	return 0;
}

int
redispeer_redirecting(const struct redispeer *p)
{
	return p->rp_redirecting;
}

int
redispeer_asking(const struct redispeer *p)
{
	return p->rp_ops == &redispeer_cluster && p->rp_this == RP_NAMED_ASK;
}

const char *
redispeer_noun(const struct redispeer *p)
{
	return p->rp_ops->po_noun;
}

const char *
redispeer_why(const struct redispeer *p)
{
	return p->rp_ops->po_why ? p->rp_ops->po_why(p) : "";
}

void
redispeer_free(struct redispeer *p)
{
	if (p == NULL)
		return;
	sentinel_free(p->rp_sentinel);
	cluster_free(p->rp_cluster);
	free(p);
}
