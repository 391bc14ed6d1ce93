/*
 * test_cluster.c - unit tests of cluster.c: the CRC16 and slot of a key
 * (with the cluster specification's test vector and hash tags), the
 * reading of CLUSTER SLOTS replies built here by hand (well formed, and
 * malformed in each way a reply can be: each must be an error, never a
 * crash), MOVED/ASK errors, and the rotation of addresses to ask.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster.h"

/* ------------------------------------------------------------------ */
/* Replies built by hand, freed with freeReplyObject()                 */

static redisReply *
r_new(int type)
{
	redisReply *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->type = type;
	return r;
}

static redisReply *
r_int(long long v)
{
	redisReply *r = r_new(REDIS_REPLY_INTEGER);

	r->integer = v;
	return r;
}

static redisReply *
r_str(const char *s)
{
	redisReply *r = r_new(REDIS_REPLY_STRING);

	r->str = strdup(s);
	assert_non_null(r->str);
	r->len = strlen(s);
	return r;
}

/* An array of the n replies that follow. */
static redisReply *
r_arr(size_t n, ...)
{
	redisReply *r = r_new(REDIS_REPLY_ARRAY);
	va_list ap;
	size_t i;

	r->elements = n;
	r->element = calloc(n ? n : 1, sizeof(*r->element));
	assert_non_null(r->element);
	va_start(ap, n);
	for (i = 0; i < n; i++)
		r->element[i] = va_arg(ap, redisReply *);
	va_end(ap);
	return r;
}

static redisReply *
r_node(const char *host, long long port)
{
	return r_arr(3, r_str(host), r_int(port), r_str("0123abcd"));
}

/* Three primaries with a replica each, as redis-cli --cluster create does. */
static redisReply *
three_shards(void)
{
	return r_arr(3,
	    r_arr(4, r_int(0), r_int(5460), r_node("127.0.0.1", 7000),
	    r_node("127.0.0.1", 7004)),
	    r_arr(4, r_int(5461), r_int(10922), r_node("127.0.0.1", 7001),
	    r_node("127.0.0.1", 7005)),
	    r_arr(4, r_int(10923), r_int(16383), r_node("127.0.0.1", 7002),
	    r_node("127.0.0.1", 7003)));
}

/* ------------------------------------------------------------------ */

static void
test_crc16_vector(void **state)
{
	(void)state;
	/* The test vector of the Redis Cluster specification. */
	assert_int_equal(cluster_crc16("123456789", 9), 0x31C3);
	assert_int_equal(cluster_crc16("", 0), 0);
}

static void
test_keyslot(void **state)
{
	(void)state;
	/* Slots that CLUSTER KEYSLOT of Redis 7.0 answers for these keys. */
	assert_int_equal(cluster_keyslot("visits", 6), 12263);
	assert_int_equal(cluster_keyslot("foo", 3), 12182);
	assert_int_equal(cluster_keyslot("{user1000}.following", 20), 3443);
	assert_int_equal(cluster_keyslot("foo{}{bar}", 10), 8363);
	assert_int_equal(cluster_keyslot("123456789", 9), 0x31C3 % 16384);
	/* A hash tag: only what is between the braces counts. */
	assert_int_equal(cluster_keyslot("{user1000}.following", 20),
	    cluster_keyslot("user1000", 8));
	assert_int_equal(cluster_keyslot("foo{bar}{zap}", 13),
	    cluster_keyslot("bar", 3));
	/* An empty tag, or none closed, is no tag: the whole key. */
	assert_int_equal(cluster_keyslot("foo{}{bar}", 10),
	    cluster_crc16("foo{}{bar}", 10) % 16384);
	assert_int_equal(cluster_keyslot("foo{bar", 7),
	    cluster_crc16("foo{bar", 7) % 16384);
	assert_int_equal(cluster_keyslot("{{bar}}", 7),
	    cluster_keyslot("{bar", 4));
}

static void
test_slots_owner(void **state)
{
	redisReply *r = three_shards();
	struct cluster *cl = cluster_new();
	char host[256], err[200];
	int port = 0;

	(void)state;
	assert_non_null(cl);
	assert_int_equal(cluster_slots_owner(r, 1546, host, sizeof(host),
	    &port, cl, err, sizeof(err)), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 7000);
	assert_int_equal(cluster_slots_owner(r, 16383, host, sizeof(host),
	    &port, NULL, err, sizeof(err)), 0);
	assert_int_equal(port, 7002);
	assert_int_equal(cluster_slots_owner(r, 5461, host, sizeof(host),
	    &port, NULL, err, sizeof(err)), 0);
	assert_int_equal(port, 7001);
	/* Every node, replicas too, is remembered once. */
	assert_int_equal(cluster_count(cl), 6);
	assert_int_equal(cluster_slots_owner(r, 1546, host, sizeof(host),
	    &port, cl, err, sizeof(err)), 0);
	assert_int_equal(cluster_count(cl), 6);
	freeReplyObject(r);
	cluster_free(cl);
}

static void
test_slots_unserved(void **state)
{
	redisReply *r = r_arr(1, r_arr(3, r_int(0), r_int(100),
	    r_node("10.0.0.1", 6379)));
	redisReply *empty = r_arr(0);
	char host[256], err[200];
	int port;

	(void)state;
	assert_int_equal(cluster_slots_owner(r, 1546, host, sizeof(host),
	    &port, NULL, err, sizeof(err)), 1);
	assert_int_equal(cluster_slots_owner(empty, 0, host, sizeof(host),
	    &port, NULL, err, sizeof(err)), 1);
	freeReplyObject(r);
	freeReplyObject(empty);
}

static void
test_slots_self(void **state)
{
	redisReply *r = r_arr(1, r_arr(3, r_int(0), r_int(16383),
	    r_arr(2, r_str(""), r_int(7000))));
	redisReply *nil = r_arr(1, r_arr(3, r_int(0), r_int(16383),
	    r_arr(2, r_new(REDIS_REPLY_NIL), r_int(7000))));
	char host[256] = "x", err[200];
	int port;

	(void)state;
	/* "" and NIL name the node that answered. */
	assert_int_equal(cluster_slots_owner(r, 5, host, sizeof(host), &port,
	    NULL, err, sizeof(err)), 0);
	assert_string_equal(host, "");
	strcpy(host, "x");
	assert_int_equal(cluster_slots_owner(nil, 5, host, sizeof(host),
	    &port, NULL, err, sizeof(err)), 0);
	assert_string_equal(host, "");
	freeReplyObject(r);
	freeReplyObject(nil);
}

/* Each malformed reply is -1, with a reason, and no crash. */
static void
test_slots_malformed(void **state)
{
	redisReply *bad[] = {
		r_str("not an array"),
		r_int(3),
		r_new(REDIS_REPLY_NIL),
		r_arr(1, r_int(1)),
		r_arr(1, r_arr(2, r_int(0), r_int(16383))),
		r_arr(1, r_arr(3, r_str("0"), r_int(16383),
		    r_node("h", 1))),
		r_arr(1, r_arr(3, r_int(0), r_str("16383"),
		    r_node("h", 1))),
		r_arr(1, r_arr(3, r_int(-1), r_int(16383), r_node("h", 1))),
		r_arr(1, r_arr(3, r_int(0), r_int(16384), r_node("h", 1))),
		r_arr(1, r_arr(3, r_int(200), r_int(100), r_node("h", 1))),
		r_arr(1, r_arr(3, r_int(0), r_int(16383), r_int(5))),
		r_arr(1, r_arr(3, r_int(0), r_int(16383),
		    r_arr(1, r_str("h")))),
		r_arr(1, r_arr(3, r_int(0), r_int(16383),
		    r_arr(2, r_int(1), r_int(7000)))),
		r_arr(1, r_arr(3, r_int(0), r_int(16383),
		    r_arr(2, r_str("h"), r_str("7000")))),
		r_arr(1, r_arr(3, r_int(0), r_int(16383), r_node("h", 0))),
		r_arr(1, r_arr(3, r_int(0), r_int(16383), r_node("h", 65536))),
		r_arr(1, r_arr(3, r_int(0), r_int(16383), r_node("?", 7000))),
		/* A good range, then a bad replica in another. */
		r_arr(2, r_arr(3, r_int(0), r_int(100), r_node("h", 1)),
		    r_arr(4, r_int(101), r_int(16383), r_node("h", 2),
		    r_int(9))),
	};
	redisReply *errr = r_new(REDIS_REPLY_ERROR);
	char host[256], err[200];
	struct cluster *cl = cluster_new();
	size_t i;
	int port;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(cluster_slots_owner(bad[i], 1546, host,
		    sizeof(host), &port, cl, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
		freeReplyObject(bad[i]);
	}
	assert_int_equal(cluster_slots_owner(NULL, 1, host, sizeof(host),
	    &port, NULL, err, sizeof(err)), -1);
	errr->str = strdup("ERR This instance has cluster support disabled");
	errr->len = strlen(errr->str);
	assert_int_equal(cluster_slots_owner(errr, 1, host, sizeof(host),
	    &port, NULL, err, sizeof(err)), -1);
	assert_string_equal(err, errr->str);
	freeReplyObject(errr);
	cluster_free(cl);
}

/* A host longer than the caller's buffer is an error, not an overflow. */
static void
test_slots_long_host(void **state)
{
	char big[400], host[16], err[200];
	redisReply *r;
	int port;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r = r_arr(1, r_arr(3, r_int(0), r_int(16383), r_node(big, 7000)));
	assert_int_equal(cluster_slots_owner(r, 1, host, sizeof(host), &port,
	    NULL, err, sizeof(err)), -1);
	freeReplyObject(r);
	r = r_arr(1, r_arr(3, r_int(0), r_int(16383),
	    r_node("a-rather-long-host-name", 7000)));
	assert_int_equal(cluster_slots_owner(r, 1, host, sizeof(host), &port,
	    NULL, err, sizeof(err)), -1);
	freeReplyObject(r);
}

/* cluster_redirect() of an error reply with text, or of another type. */
static int
redirect(int type, const char *text, int *ask, unsigned int *slot,
    char *host, size_t hostlen, int *port)
{
	redisReply *r = r_str(text);
	int ret;

	r->type = type;
	ret = cluster_redirect(r, ask, slot, host, hostlen, port);
	freeReplyObject(r);
	return ret;
}

static int
redirect_err(const char *text, int *ask, unsigned int *slot, char *host,
    size_t hostlen, int *port)
{
	return redirect(REDIS_REPLY_ERROR, text, ask, slot, host, hostlen,
	    port);
}

static void
test_redirect(void **state)
{
	char host[64];
	unsigned int slot;
	int ask = -1, port;

	(void)state;
	assert_int_equal(redirect_err("MOVED 1546 127.0.0.1:7001",
	    &ask, &slot, host, sizeof(host), &port), 0);
	assert_int_equal(ask, 0);
	assert_int_equal(slot, 1546);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 7001);
	assert_int_equal(redirect_err("ASK 0 ::1:7002", &ask, &slot,
	    host, sizeof(host), &port), 0);
	assert_int_equal(ask, 1);
	assert_int_equal(slot, 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 7002);
	/* No host: the node that answered, on another port. */
	assert_int_equal(redirect_err("MOVED 16383 :7003", &ask,
	    &slot, host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(slot, 16383);
}

static void
test_redirect_malformed(void **state)
{
	static const char *const bad[] = {
		"ERR unknown", "MOVED", "MOVED ", "MOVED 1546", "MOVED 1546 ",
		"MOVED x 127.0.0.1:7001", "MOVED 16384 127.0.0.1:7001",
		"MOVED -1 127.0.0.1:7001", "MOVED 1546 127.0.0.1",
		"MOVED 1546 127.0.0.1:", "MOVED 1546 127.0.0.1:0",
		"MOVED 1546 127.0.0.1:65536", "MOVED 1546 127.0.0.1:70x",
		"MOVED 1546 127.0.0.1:7001 extra", "ASK 1 h:-5",
		"ASKING 1 h:5", "MOVED  1546 h:1", "moved 1546 h:1",
		"MOVED 99999999999999999999 h:1",
		"MOVED 1 a-host-name-longer-than-the-buffer-of-sixty-four-bytes-"
		    "xxxxxxxxxxxxxxxx:1",
	};
	char host[64];
	unsigned int slot;
	size_t i;
	int ask, port;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(redirect_err(bad[i], &ask, &slot,
		    host, sizeof(host), &port), -1);
	/* A value that reads like one is no redirection: only an error is. */
	assert_int_equal(redirect(REDIS_REPLY_STRING, "MOVED 1 h:1", &ask,
	    &slot, host, sizeof(host), &port), -1);
	assert_int_equal(redirect(REDIS_REPLY_STATUS, "ASK 1 h:1", &ask,
	    &slot, host, sizeof(host), &port), -1);
	assert_int_equal(cluster_redirect(NULL, &ask, &slot, host,
	    sizeof(host), &port), -1);
}

static void
test_rotation(void **state)
{
	struct cluster *cl = cluster_new();
	const char *h;
	char name[32];
	int port, i;

	(void)state;
	assert_null(cluster_next(cl, &port));
	assert_int_equal(cluster_add(cl, "a", 1), 0);
	assert_int_equal(cluster_add(cl, "b", 2), 0);
	assert_int_equal(cluster_add(cl, "a", 1), 0);
	assert_int_equal(cluster_add(cl, "", 3), -1);
	assert_int_equal(cluster_count(cl), 2);
	h = cluster_next(cl, &port);
	assert_string_equal(h, "a");
	assert_int_equal(port, 1);
	h = cluster_next(cl, &port);
	assert_string_equal(h, "b");
	h = cluster_next(cl, &port);
	assert_string_equal(h, "a");
	/* Bounded: past CLUSTER_MAX_NODES nothing more is kept. */
	for (i = 0; i < CLUSTER_MAX_NODES + 10; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cluster_add(cl, name, 5);
	}
	assert_int_equal(cluster_count(cl), CLUSTER_MAX_NODES);
	assert_int_equal(cluster_add(cl, "one-more", 5), -1);
	cluster_free(cl);
	cluster_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc16_vector),
		cmocka_unit_test(test_keyslot),
		cmocka_unit_test(test_slots_owner),
		cmocka_unit_test(test_slots_unserved),
		cmocka_unit_test(test_slots_self),
		cmocka_unit_test(test_slots_malformed),
		cmocka_unit_test(test_slots_long_host),
		cmocka_unit_test(test_redirect),
		cmocka_unit_test(test_redirect_malformed),
		cmocka_unit_test(test_rotation),
	};

	return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
