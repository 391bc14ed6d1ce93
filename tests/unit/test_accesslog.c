/*
 * test_accesslog.c - unit tests of the access log: the combined log
 * format, the quoting of what clients send (which must not be able to
 * forge or break a line), truncation, and buffering until a flush.
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

#include <cmocka.h>

#include "accesslog.h"
#include "log.h"

static char logpath[64];

static int
setup(void **state)
{
	int fd;

	(void)state;
	log_init(1, LOG_ERR);
	snprintf(logpath, sizeof(logpath), "/tmp/test_accesslog.XXXXXX");
	fd = mkstemp(logpath);
	if (fd == -1)
		return -1;
	close(fd);
	return accesslog_open(logpath);
}

static int
teardown(void **state)
{
	(void)state;
	accesslog_close();
	unlink(logpath);
	return 0;
}

/* The log's contents after a flush (buf, cap bytes); returns the length. */
static size_t
read_log(char *buf, size_t cap)
{
	FILE *fp;
	size_t n;

	accesslog_flush();
	fp = fopen(logpath, "r");
	assert_non_null(fp);
	n = fread(buf, 1, cap - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return n;
}

/* Log one line with the given request, Referer and User-Agent. */
static void
write_entry(const char *req, size_t reqlen, const char *ref, size_t reflen,
    const char *ua, size_t ualen, int status, long long bytes)
{
	struct accesslog_entry e;

	e.a_client = "192.0.2.7";
	e.a_request = req;
	e.a_request_len = reqlen;
	e.a_referer = ref;
	e.a_referer_len = reflen;
	e.a_agent = ua;
	e.a_agent_len = ualen;
	e.a_status = status;
	e.a_bytes = bytes;
	accesslog_write(&e);
}

/* What follows the date: the line from the request on. */
static const char *
after_date(const char *line)
{
	const char *p = strstr(line, "] \"");

	assert_non_null(p);
	assert_memory_equal(line, "192.0.2.7 - - [", 15);
	return p + 2;
}

static void
test_combined_format(void **state)
{
	static const char req[] = "GET /a?b=c HTTP/1.1";
	static const char ref[] = "http://example.com/";
	static const char ua[] = "curl/7.88.1";
	char buf[4096];

	(void)state;
	write_entry(req, strlen(req), ref, strlen(ref), ua, strlen(ua), 200,
	    21);
	read_log(buf, sizeof(buf));
	assert_string_equal(after_date(buf), "\"GET /a?b=c HTTP/1.1\" 200 21 "
	    "\"http://example.com/\" \"curl/7.88.1\"\n");
}

/* Absent fields and an unknown size are "-". */
static void
test_absent_fields_are_dashes(void **state)
{
	char buf[4096];

	(void)state;
	write_entry(NULL, 0, NULL, 0, "", 0, 408, -1);
	read_log(buf, sizeof(buf));
	assert_string_equal(after_date(buf), "\"-\" 408 - \"-\" \"-\"\n");
}

/*
 * A quote, a backslash, control characters and bytes outside ASCII are
 * written as \xHH: a client cannot end a field or a line early.
 */
static void
test_quoting(void **state)
{
	static const char req[] = "GET /\"x\\y\n1.2.3.4 - - \x01\x7f\xe9 HTTP/1.1";
	static const char ua[] = "a\"b\r\n\tc";
	char buf[4096];

	(void)state;
	write_entry(req, sizeof(req) - 1, NULL, 0, ua, sizeof(ua) - 1, 400, 12);
	read_log(buf, sizeof(buf));
	assert_string_equal(after_date(buf),
	    "\"GET /\\x22x\\x5cy\\x0a1.2.3.4 - - \\x01\\x7f\\xe9 HTTP/1.1\" "
	    "400 12 \"-\" \"a\\x22b\\x0d\\x0a\\x09c\"\n");
	/* One line, whatever was sent. */
	assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

/*
 * Long values are cut, never in the middle of an escape, with "..." to
 * say so, and the line still ends as it should.
 */
static void
test_long_values_are_cut(void **state)
{
	char req[5000], ua[3000], buf[16384];
	const char *p, *q;
	size_t n;

	(void)state;
	memset(req, '"', sizeof(req));
	memset(ua, 'u', sizeof(ua));
	write_entry(req, sizeof(req), NULL, 0, ua, sizeof(ua), 200, 1);
	n = read_log(buf, sizeof(buf));
	assert_true(n < 3 * 1024);
	p = after_date(buf) + 1;
	q = strchr(p, '"');
	assert_non_null(q);
	assert_true(q - p <= 1024);
	assert_memory_equal(q - 3, "...", 3);
	assert_int_equal((q - 3 - p) % 4, 0);   /* whole \x22 escapes */
	assert_memory_equal(q, "\" 200 1 \"-\" \"u", 14);
	assert_memory_equal(buf + n - 6, "u...\"\n", 6);
	assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
}

/* Lines wait in the buffer: no write per request. */
static void
test_buffered_until_flush(void **state)
{
	char buf[4096];
	FILE *fp;

	(void)state;
	write_entry("GET / HTTP/1.1", 14, NULL, 0, NULL, 0, 200, 20);
	fp = fopen(logpath, "r");
	assert_non_null(fp);
	assert_int_equal(fgetc(fp), EOF);
	fclose(fp);
	assert_true(read_log(buf, sizeof(buf)) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_combined_format, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_absent_fields_are_dashes,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_quoting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_values_are_cut, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_buffered_until_flush, setup,
		    teardown),
	};

	return cmocka_run_group_tests_name("accesslog", tests, NULL, NULL);
}
