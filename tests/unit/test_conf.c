/*
 * test_conf.c - unit tests of the config schema, validation and the
 * environment overrides.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "conf.h"
#include "confdump.h"
#include "confvalid.h"

static char path[64];
static char err[512];

/* Write text to a fresh temporary config file and load it. */
static struct conf *
load(const char *text)
{
	struct conf *cf;
	FILE *fp;
	int fd;

	strcpy(path, "/tmp/hitcountd-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd != -1);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	cf = conf_load(path, err, sizeof(err));
	unlink(path);   /* err keeps the name */
	return cf;
}

static int
setup(void **state)
{
	(void)state;
	unsetenv("REDIS_HOST");
	unsetenv("REDIS_PORT");
	unsetenv("REDIS_URL");
	unsetenv("REDIS_PASSWORD");
	return 0;
}

static void
test_defaults(void **state)
{
	struct conf *cf = load("");

	(void)state;
	assert_non_null(cf);
	assert_int_equal(cf->cf_nlisten, 1);
	assert_string_equal(cf->cf_listen[0].cfl_text, "0.0.0.0:5000");
	assert_int_equal(cf->cf_listen[0].cfl_addr.ss_family, AF_INET);
	assert_int_equal(cf->cf_workers, 0);
	assert_true(conf_worker_count(cf) >= 1);
	assert_string_equal(cf->cf_pidfile, "/run/hitcountd/hitcountd.pid");
	assert_int_equal(cf->cf_shutdown_timeout, 8);
	assert_string_equal(cf->cf_redis.host, "redis");
	assert_int_equal(cf->cf_redis.port, 6379);
	assert_string_equal(cf->cf_redis.key, "visits");
	assert_int_equal(cf->cf_redis.timeout_ms, 1000);
	conf_free(cf);
}

static void
test_values(void **state)
{
	struct conf *cf = load(
	    "listen = {\"127.0.0.1:8080\", \"[::1]:8081\"}\n"
	    "workers = 3\n"
	    "redis {\n  host = \"10.0.0.1\"\n  port = 7000\n  key = \"hits\"\n}\n");

	(void)state;
	assert_non_null(cf);
	assert_int_equal(cf->cf_nlisten, 2);
	assert_int_equal(cf->cf_listen[1].cfl_addr.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&cf->cf_listen[1].cfl_addr)->sin6_port), 8081);
	assert_int_equal(conf_worker_count(cf), 3);
	assert_string_equal(cf->cf_redis.host, "10.0.0.1");
	assert_int_equal(cf->cf_redis.port, 7000);
	assert_string_equal(cf->cf_redis.key, "hits");
	conf_free(cf);
}

/* The error must name the file, the line and the key. */
static void
expect_error(const char *text, int line, const char *key)
{
	char where[128];
	struct conf *cf = load(text);

	assert_null(cf);
	snprintf(where, sizeof(where), "%s:%d:", path, line);
	if (strncmp(err, where, strlen(where)) != 0)
		fail_msg("error '%s' does not start with '%s'", err, where);
	if (strstr(err, key) == NULL)
		fail_msg("error '%s' does not name '%s'", err, key);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("workers = 2\nbogus = 1\n", 2, "bogus");
	expect_error("\n\nworkers = \"many\"\n", 3, "workers");
	expect_error("workers = -1\n", 1, "workers");
	expect_error("redis {\n  port = 70000\n}\n", 2, "port");
	expect_error("redis {\n  timeout_ms = 0\n}\n", 2, "timeout_ms");
	expect_error("listen = {\"nonsense\"}\n", 1, "listen");
	expect_error("listen = {\"1.2.3.4:99999\"}\n", 1, "listen");
	expect_error("log_level = \"loud\"\n", 1, "log_level");
	expect_error("redis {\n  key = \"\"\n}\n", 2, "key");
}

/* load(text) fails with err ending in the message want. */
static void
expect_message(const char *text, const char *want)
{
	size_t n = strlen(want);

	assert_null(load(text));
	if (strlen(err) < n || strcmp(err + strlen(err) - n, want) != 0)
		fail_msg("error '%s' does not end with '%s'", err, want);
}

/* The keys whose value is a word of a list: each word taken, and the
 * error for any other, which lists the words. */
static void
test_words(void **state)
{
	static const char *const good[] = {
		"log_level = \"error\"\n", "log_level = \"warning\"\n",
		"log_level = \"info\"\n", "log_level = \"debug\"\n",
		"log_format = \"text\"\n", "log_format = \"kv\"\n",
		"log_format = \"json\"\n",
	};
	struct conf *cf;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cf = load(good[i]);
		assert_non_null(cf);
		conf_free(cf);
	}
	expect_message("log_level = \"loud\"\n", "option 'log_level': "
	    "'loud' is not one of error, warning, info, debug");
	expect_message("log_level = \"\"\n", "option 'log_level': "
	    "'' is not one of error, warning, info, debug");
	expect_message("log_format = \"xml\"\n", "option 'log_format': "
	    "'xml' is not one of text, kv, json");
	expect_message("log_format = \"info\"\n", "option 'log_format': "
	    "'info' is not one of text, kv, json");
}

/*
 * No public address: libconfuse validates no empty list, so this is
 * checked after parsing (without a line).  Accepted, it started a daemon
 * serving nothing, and -H read cf_listen[0] past the end.
 */
static void
test_no_listen(void **state)
{
	char want[128];

	(void)state;
	assert_null(load("listen = {}\n"));
	snprintf(want, sizeof(want), "%s: option 'listen' needs at least one "
	    "address", path);
	assert_string_equal(err, want);
	assert_null(load("listen = {}\nmetrics_listen = {\"127.0.0.1:9100\"}\n"));
	assert_string_equal(err + strlen(path), want + strlen(path));
}

static void
test_missing_file(void **state)
{
	(void)state;
	assert_null(conf_load("/nonexistent/hitcountd.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/hitcountd.conf"));
}

/*
 * A directory is not a config file.  libconfuse's flex scanner ends the
 * process (exit 2, "input in flex scanner failed") when read() fails, so
 * this must be refused before parsing: on a reload it would end the
 * master.
 */
static void
test_directory(void **state)
{
	char dir[] = "/tmp/hitcountd-test-dir-XXXXXX";
	char want[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_null(conf_load(dir, err, sizeof(err)));
	rmdir(dir);
	snprintf(want, sizeof(want), "%s: Is a directory", dir);
	assert_string_equal(err, want);
}

static void
test_env_overrides(void **state)
{
	struct conf *cf;

	(void)state;
	setenv("REDIS_HOST", "cache.example", 1);
	setenv("REDIS_PORT", "6400", 1);
	cf = load("redis {\n host = \"a\"\n port = 1\n}\n");
	assert_non_null(cf);
	assert_string_equal(cf->cf_redis.host, "cache.example");
	assert_int_equal(cf->cf_redis.port, 6400);
	conf_free(cf);

	/* Docker's legacy link form. */
	unsetenv("REDIS_HOST");
	setenv("REDIS_PORT", "tcp://172.17.0.2:6380", 1);
	cf = load("");
	assert_non_null(cf);
	assert_string_equal(cf->cf_redis.host, "172.17.0.2");
	assert_int_equal(cf->cf_redis.port, 6380);
	conf_free(cf);

	setenv("REDIS_PORT", "http", 1);
	assert_null(load(""));
	assert_non_null(strstr(err, "REDIS_PORT"));
	setenv("REDIS_PORT", "0", 1);
	assert_null(load(""));
	unsetenv("REDIS_PORT");
}

static void
test_env_url(void **state)
{
	struct conf *cf;

	(void)state;
	/* REDIS_URL over REDIS_HOST, REDIS_PORT, REDIS_PASSWORD and the file. */
	setenv("REDIS_HOST", "ignored.example", 1);
	setenv("REDIS_PASSWORD", "ignored", 1);
	setenv("REDIS_URL", "redis://hc:a%40b%3Ac%2F%25@[::1]:6390/7", 1);
	cf = load("redis {\n host = \"a\"\n port = 1\n db = 2\n}\n");
	assert_non_null(cf);
	assert_string_equal(cf->cf_redis.host, "::1");
	assert_int_equal(cf->cf_redis.port, 6390);
	assert_int_equal(cf->cf_redis.db, 7);
	assert_string_equal(cf->cf_redis.username, "hc");
	assert_string_equal(cf->cf_redis.password, "a@b:c/%");
	assert_string_equal(cf->cf_redis.socket, "");
	conf_free(cf);

	/* No password in the URL: REDIS_PASSWORD's; no port: 6379. */
	setenv("REDIS_URL", "redis://cache", 1);
	cf = load("redis {\n db = 2\n}\n");
	assert_non_null(cf);
	assert_int_equal(cf->cf_redis.port, 6379);
	assert_int_equal(cf->cf_redis.db, 2);
	assert_string_equal(cf->cf_redis.password, "ignored");
	conf_free(cf);

	setenv("REDIS_URL", "unix:///run/redis%20x.sock?db=3", 1);
	cf = load("");
	assert_non_null(cf);
	assert_string_equal(cf->cf_redis.socket, "/run/redis x.sock");
	assert_int_equal(cf->cf_redis.db, 3);
	conf_free(cf);

	setenv("REDIS_URL", "redis://u:secret@h:0", 1);
	assert_null(load(""));
	assert_string_equal(err, "REDIS_URL: the port is not a number from 1 "
	    "to 65535");
	unsetenv("REDIS_URL");
	unsetenv("REDIS_PASSWORD");
	unsetenv("REDIS_HOST");
}

static void
test_listen_parse(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[128];

	(void)state;
	assert_int_equal(confvalid_listen_addr("*:5000", &ss, &len, why,
	    sizeof(why)), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(confvalid_listen_addr("[::]:5000", &ss, &len, why,
	    sizeof(why)), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(confvalid_listen_addr("::1:5000", &ss, &len, why,
	    sizeof(why)), -1);
	assert_int_equal(confvalid_listen_addr("127.0.0.1:", &ss, &len, why,
	    sizeof(why)), -1);
	assert_int_equal(confvalid_listen_addr(":80", &ss, &len, why,
	    sizeof(why)), -1);
	/* addr.c's ports: digits only, where strtol() took a sign */
	assert_int_equal(confvalid_listen_addr("127.0.0.1:+80", &ss, &len, why,
	    sizeof(why)), -1);
	assert_string_equal(why, "'127.0.0.1:+80': the port is not a number "
	    "from 1 to 65535");
	assert_int_equal(confvalid_listen_addr("[::1]:5000", &ss, &len, why,
	    sizeof(why)), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
}

/* Print cf as -T does into a temporary file, and load that. */
static struct conf *
reprint(const struct conf *cf)
{
	char out[] = "/tmp/hitcountd-print-XXXXXX";
	struct conf *again;
	FILE *fp;
	int fd;

	fd = mkstemp(out);
	assert_true(fd != -1);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	assert_int_equal(confdump_print(cf, fp), 0);
	fclose(fp);
	again = conf_load(out, err, sizeof(err));
	unlink(out);
	return again;
}

static void
test_print_roundtrip(void **state)
{
	struct conf *cf = load("workers = 5\nredis {\n password = \"s3cret\"\n}\n");
	struct conf *again;

	(void)state;
	assert_non_null(cf);
	/* What -T prints is itself a valid config with the same values. */
	again = reprint(cf);
	assert_non_null(again);
	assert_int_equal(again->cf_workers, 5);
	assert_string_equal(again->cf_redis.password, "********");
	conf_free(again);
	conf_free(cf);
}

/*
 * libconfuse expands ${VAR} in quoted strings and reads \$ as a literal
 * '$': what -T prints must escape '$', or printing and reading a value
 * with a literal "${" changes it.
 */
static void
test_print_keeps_dollar(void **state)
{
	struct conf *cf, *again;

	(void)state;
	setenv("HITCOUNTD_TEST_VAR", "expanded", 1);
	cf = load("redis {\n key = \"a$b\\${HITCOUNTD_TEST_VAR}c\"\n}\n");
	assert_non_null(cf);
	assert_string_equal(cf->cf_redis.key, "a$b${HITCOUNTD_TEST_VAR}c");
	again = reprint(cf);
	unsetenv("HITCOUNTD_TEST_VAR");
	assert_non_null(again);
	assert_string_equal(again->cf_redis.key, cf->cf_redis.key);
	conf_free(again);
	conf_free(cf);
}

/* A reload keeps the pidfile and backlog in force; the rest is the file's. */
static void
test_reload_keep(void **state)
{
	struct conf *cur, *next;

	(void)state;
	cur = load("pidfile = \"/run/a.pid\"\nbacklog = 10\nworkers = 1\n");
	next = load("pidfile = \"/run/b.pid\"\nbacklog = 20\nworkers = 2\n"
	    "redis {\n key = \"k2\"\n}\n");
	assert_non_null(cur);
	assert_non_null(next);
	assert_int_equal(conf_reload_keep(next, cur), 0);
	assert_string_equal(next->cf_pidfile, "/run/a.pid");
	assert_int_equal(next->cf_backlog, 10);
	assert_int_equal(next->cf_workers, 2);
	assert_string_equal(next->cf_redis.key, "k2");
	conf_free(next);
	conf_free(cur);
}

/* What fake_tls_free() was given, and how many times. */
static struct redistls *freed_tls;
static int nfreed_tls;

static void
fake_tls_free(struct redistls *t)
{
	freed_tls = t;
	nfreed_tls++;
}

/*
 * conf_load() reads no TLS file even with tls on (redistls_attach() does,
 * after it), and conf_free() frees a TLS context through the function
 * that came with it: conf.c knows nothing of TLS.
 */
static void
test_tls_is_not_loaded_here(void **state)
{
	struct conf *cf;
	static int ctx;

	(void)state;
	cf = load("redis {\n tls = true\n"
	    " tls_ca_file = \"/nonexistent/ca.crt\"\n}\n");
	assert_non_null(cf);
	assert_int_equal(cf->cf_redis.tls, 1);
	assert_null(cf->cf_redis.tls_ctx);
	cf->cf_redis.tls_ctx = (struct redistls *)(void *)&ctx;
	cf->cf_redis.tls_free = fake_tls_free;
	nfreed_tls = 0;
	conf_free(cf);
	assert_int_equal(nfreed_tls, 1);
	assert_ptr_equal(freed_tls, &ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, NULL),
		cmocka_unit_test_setup_teardown(test_values, setup, NULL),
		cmocka_unit_test_setup_teardown(test_errors, setup, NULL),
		cmocka_unit_test_setup_teardown(test_words, setup, NULL),
		cmocka_unit_test_setup_teardown(test_no_listen, setup, NULL),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, NULL),
		cmocka_unit_test_setup_teardown(test_directory, setup, NULL),
		cmocka_unit_test_setup_teardown(test_env_overrides, setup, NULL),
		cmocka_unit_test_setup_teardown(test_env_url, setup, NULL),
		cmocka_unit_test_setup_teardown(test_listen_parse, setup, NULL),
		cmocka_unit_test_setup_teardown(test_print_roundtrip, setup, NULL),
		cmocka_unit_test_setup_teardown(test_print_keeps_dollar, setup,
		    NULL),
		cmocka_unit_test_setup_teardown(test_reload_keep, setup, NULL),
		cmocka_unit_test_setup_teardown(test_tls_is_not_loaded_here, setup,
		    NULL),
	};

	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
