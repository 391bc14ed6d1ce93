/*
 * test_redisurl.c - unit tests of redisurl.c: the database number of a
 * URL, as /DB and as ?db=DB, at its edges (empty, signed, too long, not a
 * digit, the largest), the port's edges as a URL sees them, and the error
 * text of each, which must never quote the URL.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "redisurl.h"

static struct redisurl u;
static char err[256];

/* redisurl_parse() of url; on success u holds the parts until clear. */
static int
parse(const char *url)
{
	err[0] = '\0';
	return redisurl_parse(url, &u, err, sizeof(err));
}

#define DB_PATH         "the database (/DB) is not a number"
#define DB_QUERY        "the database is not a number"
#define BAD_PORT        "the port is not a number from 1 to 65535"

/* Each URL with what it names, or (why set) the reason it is refused. */
static const struct {
	const char *url;
	int port;
	long db;
	const char *why;
} cases[] = {
	{ "redis://h/0", 6379, 0, NULL },
	{ "redis://h:6380/999999999", 6380, 999999999, NULL },
	{ "redis://h/000000007", 6379, 7, NULL },
	{ "redis://h/", 6379, -1, NULL },  /* a bare '/' names no database */
	{ "redis://h?db=3", 6379, 3, NULL },
	{ "unix:///run/r.sock?db=999999999", 0, 999999999, NULL },
	{ "redis://h:65535", 65535, -1, NULL },
	{ "redis://h:00080", 80, -1, NULL },
	{ "redis://h/1000000000", 0, -1, DB_PATH },
	{ "redis://h/0000000007", 0, -1, DB_PATH },
	{ "redis://h/+1", 0, -1, DB_PATH },
	{ "redis://h/-1", 0, -1, DB_PATH },
	{ "redis://h/ 1", 0, -1, DB_PATH },
	{ "redis://h/1x", 0, -1, DB_PATH },
	{ "redis://h/1/2", 0, -1, DB_PATH },
	{ "unix:///r?db=", 0, -1, DB_QUERY },
	{ "unix:///r?db=1000000000", 0, -1, DB_QUERY },
	{ "unix:///r?db=+1", 0, -1, DB_QUERY },
	{ "unix:///r?db=-1", 0, -1, DB_QUERY },
	{ "unix:///r?db=x", 0, -1, DB_QUERY },
	{ "redis://h/1?db=2", 0, -1, "the database is given twice" },
	{ "redis://h:65536", 0, -1, BAD_PORT },
	{ "redis://h:000080", 0, -1, BAD_PORT },
	{ "redis://h:", 0, -1, BAD_PORT },
	{ "redis://h:+80", 0, -1, BAD_PORT },
	{ "redis://h:0", 0, -1, BAD_PORT },
};

/* A refused URL leaves u empty: port 0, database -1. */
static void
test_cases(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%s\n", cases[i].url);
		assert_int_equal(parse(cases[i].url), cases[i].why ? -1 : 0);
		assert_string_equal(err, cases[i].why ? cases[i].why : "");
		assert_int_equal(u.ru_port, cases[i].port);
		assert_int_equal(u.ru_db, cases[i].db);
		redisurl_clear(&u);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
	};

	return cmocka_run_group_tests_name("redisurl", tests, NULL, NULL);
}
