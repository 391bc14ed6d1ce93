/*
 * test_conn.c - unit tests of a connection's state machine (conn.c): a
 * real connection on one end of a socket pair, driven by a libevent loop,
 * with this file's handler, test_handler(), in place of the routes, so
 * that a test can give any answer, even one that does not fit.
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
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>

#include "accesslog.h"
#include "conf.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

#define BIG_BODY        70000   /* more than a pass's whole output buffer */

struct harness {
	struct event_base *h_base;
	struct conf h_cf;
	struct conn_set h_cs;
	struct metrics_worker h_mw;
	char h_log[64];                 /* the access log file */
	int h_client;                   /* the test's end of the pair */
	int h_closed;                   /* on_close calls */
	int h_eof;                      /* the client has read end of file */
};

static char big_body[BIG_BODY];

/*
 * The routes of these tests: /big answers more than the output buffer
 * holds, anything else a short text.
 */
static void
test_handler(void *arg, struct conn *c, const struct http_request *req,
    int flags, int admin)
{
	(void)arg;
	(void)admin;
	if (req->r_pathlen == 4 && memcmp(req->r_path, "/big", 4) == 0)
		conn_respond(c, 200, "text/plain", big_body, sizeof(big_body),
		    sizeof(big_body), flags);
	else
		conn_respond_text(c, 200, "ok\n", flags);
}

static void
on_close(void *arg)
{
	((struct harness *)arg)->h_closed++;
}

static int
setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));
	struct sockaddr_storage ss;
	int sv[2], fd;

	assert_non_null(h);
	log_init(1, LOG_ERR);
	h->h_base = event_base_new();
	assert_non_null(h->h_base);
	h->h_cf.cf_keepalive_timeout = 30;
	h->h_cf.cf_header_timeout = 30;
	h->h_cf.cf_max_header_size = 8192;
	h->h_cf.cf_max_headers = 100;
	assert_int_equal(conn_set_init(&h->h_cs, h->h_base, &h->h_cf,
	    on_close, h), 0);
	conn_set_handler(&h->h_cs, test_handler, NULL);
	snprintf(h->h_log, sizeof(h->h_log), "/tmp/test_conn.XXXXXX");
	fd = mkstemp(h->h_log);
	assert_true(fd != -1);
	close(fd);
	assert_int_equal(accesslog_open(h->h_log), 0);
	metrics_self = &h->h_mw;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNSPEC;
	assert_int_equal(conn_new(&h->h_cs, sv[0], &ss, 0), 0);
	h->h_client = sv[1];
	*state = h;
	return 0;
}

static int
teardown(void **state)
{
	struct harness *h = *state;

	conn_set_free(&h->h_cs);
	accesslog_close();
	unlink(h->h_log);
	metrics_self = NULL;
	close(h->h_client);
	event_base_free(h->h_base);
	free(h);
	return 0;
}

/* Send s as the client, let the connection run, return what came back. */
static size_t
exchange(struct harness *h, const char *s, char *out, size_t cap)
{
	size_t got = 0;
	ssize_t n;
	int i;

	assert_int_equal(send(h->h_client, s, strlen(s), 0), strlen(s));
	for (i = 0; i < 20; i++) {
		event_base_loop(h->h_base, EVLOOP_NONBLOCK);
		while (got < cap - 1 &&
		    (n = recv(h->h_client, out + got, cap - 1 - got, 0)) > 0)
			got += (size_t)n;
		if (n == 0)
			h->h_eof = 1;
	}
	out[got] = '\0';
	return got;
}

/* The access log's contents, flushed. */
static void
read_log(struct harness *h, char *buf, size_t cap)
{
	FILE *fp;
	size_t n;

	accesslog_flush();
	fp = fopen(h->h_log, "r");
	assert_non_null(fp);
	n = fread(buf, 1, cap - 1, fp);
	buf[n] = '\0';
	fclose(fp);
}

static void
test_answers_and_keeps_alive(void **state)
{
	struct harness *h = *state;
	char out[4096], log[4096];

	exchange(h, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n", out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
	assert_true(strlen(out) > 3);
	assert_string_equal(out + strlen(out) - 3, "ok\n");
	assert_false(h->h_eof);
	assert_int_equal(h->h_closed, 0);
	assert_int_equal(h->h_mw.mw_requests[http_status_index(200)], 1);
	read_log(h, log, sizeof(log));
	assert_non_null(strstr(log, "\"GET /a HTTP/1.1\" 200 3 "));
}

/*
 * An answer that does not fit in the output is not lost without a word,
 * nor counted as sent: the client gets a 500 and the connection closes,
 * and the metrics and the access log say 500.
 */
static void
test_answer_too_large_is_500(void **state)
{
	struct harness *h = *state;
	char out[4096], log[4096];

	exchange(h, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n", out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 500 Internal Server Error\r\n"));
	assert_non_null(strstr(out, "Connection: close\r\n"));
	assert_true(h->h_eof);
	assert_int_equal(h->h_mw.mw_requests[http_status_index(200)], 0);
	assert_int_equal(h->h_mw.mw_requests[METRICS_CODE_OTHER], 1);
	read_log(h, log, sizeof(log));
	assert_null(strstr(log, "\" 200 "));
	assert_non_null(strstr(log, "\"GET /big HTTP/1.1\" 500 "));
}

/*
 * Nothing is written past the end of the output buffer, whatever its
 * room: here too small even for the interim 100 (Continue).
 */
static void
test_output_never_overruns(void **state)
{
	struct harness *h = *state;
	char *saved = h->h_cs.cs_out, out[4096];
	size_t savedcap = h->h_cs.cs_outcap, i;
	char buf[20 + 4096];            /* what is past 20 must stay as it is */

	memset(buf, 0xa5, sizeof(buf));
	h->h_cs.cs_out = buf;
	h->h_cs.cs_outcap = 20;
	exchange(h, "POST /a HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
	    "Content-Length: 3\r\n\r\n", out, sizeof(out));
	h->h_cs.cs_out = saved;
	h->h_cs.cs_outcap = savedcap;
	for (i = 20; i < sizeof(buf); i++)
		assert_int_equal((unsigned char)buf[i], 0xa5);
	assert_true(h->h_eof);          /* no room for any answer: closed */
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_answers_and_keeps_alive,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_too_large_is_500,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_never_overruns,
		    setup, teardown),
	};

	return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
