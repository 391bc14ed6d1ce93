/*
 * test_redispeer.c - unit tests of redispeer.c, where the primary is:
 * the fixed address, and the cluster implementation's walk through the
 * seeds, the node CLUSTER SLOTS names, MOVED and ASK, and the limit on
 * redirections followed at once.  No I/O: the sentinels (sentinel.h) are
 * a fake defined here that records what it is asked.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "conf.h"
#include "redispeer.h"
#include "sentinel.h"

/* ------------------------------------------------------------------ */
/* The fake sentinels                                                  */

static int asked, watched, unwatched;
static char watched_host[64];

struct sentinel *
sentinel_new(struct event_base *base, struct evdns_base *dns,
    const struct conf *cf, sentinel_answer_cb *answer,
    sentinel_moved_cb *moved, void *arg)
{
	static int token;

	(void)base;
	(void)dns;
	(void)cf;
	(void)answer;
	(void)moved;
	(void)arg;
	return (struct sentinel *)&token;
}

void
sentinel_ask(struct sentinel *s)
{
	(void)s;
	asked++;
}

void
sentinel_watch(struct sentinel *s, const char *host, int port)
{
	(void)s;
	watched++;
	snprintf(watched_host, sizeof(watched_host), "%s:%d", host, port);
}

void
sentinel_unwatch(struct sentinel *s)
{
	(void)s;
	unwatched++;
}

void
sentinel_free(struct sentinel *s)
{
	(void)s;
}

/* ------------------------------------------------------------------ */

static struct conf cf;
static char *seeds[] = { "10.0.0.1:7000", "10.0.0.2:7000" };

/* A CLUSTER SLOTS reply: every slot served by host:port. */
static redisReply *
slots_reply(const char *host, int port)
{
	redisReply *r, *range, *node;

	r = calloc(1, sizeof(*r));
	range = calloc(1, sizeof(*range));
	node = calloc(1, sizeof(*node));
	assert_true(r && range && node);
	r->type = range->type = node->type = REDIS_REPLY_ARRAY;
	r->elements = 1;
	r->element = calloc(1, sizeof(redisReply *));
	r->element[0] = range;
	range->elements = 3;
	range->element = calloc(3, sizeof(redisReply *));
	range->element[0] = calloc(1, sizeof(redisReply));
	range->element[1] = calloc(1, sizeof(redisReply));
	range->element[0]->type = range->element[1]->type =
	    REDIS_REPLY_INTEGER;
	range->element[1]->integer = CLUSTER_SLOTS - 1;
	range->element[2] = node;
	node->elements = 2;
	node->element = calloc(2, sizeof(redisReply *));
	node->element[0] = calloc(1, sizeof(redisReply));
	node->element[0]->type = REDIS_REPLY_STRING;
	node->element[0]->str = strdup(host);
	node->element[0]->len = strlen(host);
	node->element[1] = calloc(1, sizeof(redisReply));
	node->element[1]->type = REDIS_REPLY_INTEGER;
	node->element[1]->integer = port;
	return r;
}

/* A cluster peer on the two seeds. */
static struct redispeer *
cluster_peer(void)
{
	struct redispeer *p;

	cf.cf_redis.cluster = seeds;
	cf.cf_redis.ncluster = 2;
	p = redispeer_new(NULL, NULL, &cf, NULL, NULL, NULL);
	assert_non_null(p);
	return p;
}

static int
setup(void **state)
{
	(void)state;
	memset(&cf, 0, sizeof(cf));
	cf.cf_redis.host = "redis.example";
	cf.cf_redis.port = 6380;
	cf.cf_redis.key = "visits";
	asked = watched = unwatched = 0;
	return 0;
}

/* A fixed address: always there, no check, no redirection. */
static void
test_fixed(void **state)
{
	struct redispeer *p = redispeer_new(NULL, NULL, &cf, NULL, NULL, NULL);
	const char *host;
	int port, due = -1;

	(void)state;
	assert_non_null(p);
	assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_GO);
	assert_string_equal(host, "redis.example");
	assert_int_equal(port, 6380);
	assert_int_equal(redispeer_check(p, NULL, NULL, NULL, &due), 0);
	assert_int_equal(due, 0);
	assert_int_equal(redispeer_redirect(p, "h", 1, 0), -1);
	assert_int_equal(redispeer_redirecting(p), 0);
	assert_int_equal(redispeer_at_once(p), 0);
	assert_string_equal(redispeer_noun(p), "");
	assert_string_equal(redispeer_why(p), "");
	redispeer_free(p);
}

/* Sentinels: the answer comes later; ROLE must say master. */
static void
test_sentinel(void **state)
{
	static char *sentinels[] = { "10.0.0.9:26379" };
	struct redispeer *p;
	redisReply role, master, *elems[1] = { &master };
	const char *host;
	char why[200];
	int port;

	(void)state;
	cf.cf_redis.sentinels = sentinels;
	cf.cf_redis.nsentinels = 1;
	p = redispeer_new(NULL, NULL, &cf, NULL, NULL, NULL);
	assert_non_null(p);
	assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_LATER);
	assert_int_equal(asked, 1);
	memset(&role, 0, sizeof(role));
	memset(&master, 0, sizeof(master));
	role.type = REDIS_REPLY_ARRAY;
	role.elements = 1;
	role.element = elems;
	master.type = REDIS_REPLY_STRING;
	master.str = "slave";
	assert_int_equal(redispeer_checked(p, &role, "10.0.0.5", "10.0.0.5",
	    6379, why, sizeof(why)), REDISPEER_REJECT);
	assert_string_equal(why, "10.0.0.5:6379 is not the primary; asking "
	    "the sentinels again");
	master.str = "master";
	assert_int_equal(redispeer_checked(p, &role, "10.0.0.5", "10.0.0.5",
	    6379, why, sizeof(why)), REDISPEER_PASS);
	redispeer_up(p, "10.0.0.5", 6379);
	assert_string_equal(watched_host, "10.0.0.5:6379");
	redispeer_down(p);
	assert_int_equal(unwatched, 1);
	redispeer_free(p);
}

/*
 * Cluster: a seed is asked CLUSTER SLOTS; the node it names is gone to at
 * once, trusted; MOVED and ASK name one the same way, the first of a
 * pipeline's redirections only.
 */
static void
test_cluster_walk(void **state)
{
	struct redispeer *p;
	redisReply *r;
	const char *host;
	char why[300];
	int port;

	(void)state;
	p = cluster_peer();
	assert_string_equal(redispeer_noun(p), "cluster node ");
	assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_GO);
	assert_string_equal(host, "10.0.0.1");
	assert_int_equal(redispeer_asking(p), 0);
	/* The seed names another node: elsewhere, and held for it. */
	r = slots_reply("10.0.0.3", 7001);
	assert_int_equal(redispeer_checked(p, r, "10.0.0.1", "10.0.0.1", 7000,
	    why, sizeof(why)), REDISPEER_ELSEWHERE);
	assert_non_null(strstr(why, "is served by 10.0.0.3:7001"));
	assert_int_equal(redispeer_redirecting(p), 1);
	assert_int_equal(redispeer_at_once(p), 1);
	assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_GO);
	assert_string_equal(host, "10.0.0.3");
	assert_int_equal(port, 7001);
	/* Trusted: no check on the way; this node passes one anyway. */
	assert_int_equal(redispeer_redirecting(p), 1);
	redispeer_opened(p);
	assert_int_equal(redispeer_redirecting(p), 0);
	assert_int_equal(redispeer_checked(p, r, "10.0.0.3", "10.0.0.3", 7001,
	    why, sizeof(why)), REDISPEER_PASS);
	freeReplyObject(r);
	assert_string_equal(redispeer_why(p), " (serving the key's slot)");
	/* ASK to the same host, another port; a second one is ignored. */
	assert_int_equal(redispeer_redirect(p, "", 7002, 1), 0);
	assert_int_equal(redispeer_redirect(p, "10.0.0.4", 7003, 0), -1);
	assert_int_equal(redispeer_at_once(p), 1);
	assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_GO);
	assert_string_equal(host, "10.0.0.3");
	assert_int_equal(port, 7002);
	assert_int_equal(redispeer_asking(p), 1);
	assert_string_equal(redispeer_why(p),
	    " (for the slot it imports, says ASK)");
	/* Lost, with nothing named: the pause, then the next seed. */
	redispeer_opened(p);
	assert_int_equal(redispeer_at_once(p), 0);
	assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_GO);
	assert_string_equal(host, "10.0.0.2");
	assert_int_equal(redispeer_asking(p), 0);
	redispeer_free(p);
}

/*
 * Nodes that keep naming each other are followed at once 8 times in a
 * second; then the pause comes, and the redirection is over (commands
 * are no longer held) though the node named is still where it goes.
 */
static void
test_cluster_hops(void **state)
{
	struct redispeer *p;
	const char *host;
	int i, port;

	(void)state;
	p = cluster_peer();
	assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_GO);
	for (i = 0; i < 8; i++) {
		assert_int_equal(redispeer_redirect(p, "10.0.0.5",
		    7000 + i % 2, 0), 0);
		assert_int_equal(redispeer_at_once(p), 1);
		assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_GO);
		redispeer_opened(p);
	}
	assert_int_equal(redispeer_redirect(p, "10.0.0.6", 7009, 0), 0);
	assert_int_equal(redispeer_at_once(p), 0);
	assert_int_equal(redispeer_redirecting(p), 0);
	assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_GO);
	assert_string_equal(host, "10.0.0.6");
	assert_int_equal(port, 7009);
	redispeer_free(p);
}

/* A seed that says no node serves the slot, or answers nonsense. */
static void
test_cluster_fail(void **state)
{
	struct redispeer *p;
	redisReply err;
	const char *host;
	char why[300];
	int port;

	(void)state;
	p = cluster_peer();
	assert_int_equal(redispeer_get(p, &host, &port), REDISPEER_GO);
	memset(&err, 0, sizeof(err));
	err.type = REDIS_REPLY_ERROR;
	err.str = "ERR This instance has cluster support disabled";
	assert_int_equal(redispeer_checked(p, &err, host, "", port, why,
	    sizeof(why)), REDISPEER_FAIL);
	assert_string_equal(why, "bad reply to CLUSTER SLOTS: ERR This "
	    "instance has cluster support disabled");
	assert_int_equal(redispeer_redirecting(p), 0);
	assert_int_equal(redispeer_at_once(p), 0);
	redispeer_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_fixed, setup),
		cmocka_unit_test_setup(test_sentinel, setup),
		cmocka_unit_test_setup(test_cluster_walk, setup),
		cmocka_unit_test_setup(test_cluster_hops, setup),
		cmocka_unit_test_setup(test_cluster_fail, setup),
	};

	return cmocka_run_group_tests_name("redispeer", tests, NULL, NULL);
}
