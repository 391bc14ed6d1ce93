/*
 * test_redisio.c - unit tests of the hiredis adapter (redisio.c) against
 * the hiredis it is built with: a real asynchronous context, opened and
 * attached to a libevent loop by redisio_connect(), on a real socket
 * whose other end the test plays; and the AUTH it queues.
 *
 * The reused integer reply relies on hiredis handing each top-level reply
 * to its callback and freeing it through the reader's freeObject() before
 * it parses the next one.  A hiredis that parsed ahead would show here as
 * wrong values in a burst of replies; one that freed replies some other
 * way would crash on the static object.  .ci/run runs this file against
 * hiredis 0.14 (Debian 12) and 1.2 (Debian 13).
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
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "clock.h"
#include "redisio.h"

#define NSEEN   512

/* What one reply callback saw, copied while the reply was valid. */
struct seen {
	int s_null;                     /* the reply was NULL */
	int s_type;
	long long s_integer;
	const void *s_ptr;
	char s_str[32];
	size_t s_elements;
	const void *s_elem_ptr;         /* element[0] of an array */
	long long s_elem_integer;
};

struct fixture {
	struct event_base *f_base;
	int f_lfd;                      /* listening */
	int f_sfd;                      /* the server's end */
	redisAsyncContext *f_ac;
	int f_connected;                /* 1 ok, -1 failed, 0 not yet */
	int f_disconnected;             /* 1 REDIS_OK, -1 error, 0 not yet */
	struct seen f_seen[NSEEN];
	size_t f_nseen;
	int f_again;                    /* commands to send from callbacks */
};

static int
listen_any(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct fixture *f = ac->data;

	f->f_connected = status == REDIS_OK ? 1 : -1;
	if (status != REDIS_OK)
		f->f_ac = NULL;         /* hiredis frees it */
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct fixture *f = ac->data;

	f->f_disconnected = status == REDIS_OK ? 1 : -1;
	f->f_ac = NULL;
}

static void
on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct fixture *f = priv;
	redisReply *reply = r;
	struct seen *s;

	assert_true(f->f_nseen < NSEEN);
	s = &f->f_seen[f->f_nseen++];
	if (reply == NULL) {
		s->s_null = 1;
		return;
	}
	s->s_type = reply->type;
	s->s_ptr = reply;
	if (reply->type == REDIS_REPLY_INTEGER)
		s->s_integer = reply->integer;
	if (reply->str != NULL)
		snprintf(s->s_str, sizeof(s->s_str), "%s", reply->str);
	if (reply->type == REDIS_REPLY_ARRAY) {
		s->s_elements = reply->elements;
		if (reply->elements > 0) {
			s->s_elem_ptr = reply->element[0];
			s->s_elem_integer = reply->element[0]->integer;
		}
	}
	/* Like a client pipelining its next request from the callback. */
	if (f->f_again > 0) {
		f->f_again--;
		assert_int_equal(redisAsyncCommand(ac, on_reply, f, "INCR k"),
		    REDIS_OK);
	}
}

/* Turn the loop until *flag is set, or fail after a second. */
static void
spin_until(struct fixture *f, const int *flag)
{
	uint64_t deadline = clock_ms() + 1000;

	while (!*flag) {
		assert_true(clock_ms() < deadline);
		event_base_loop(f->f_base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void
spin_until_seen(struct fixture *f, size_t n)
{
	uint64_t deadline = clock_ms() + 2000;

	while (f->f_nseen < n) {
		assert_true(clock_ms() < deadline);
		event_base_loop(f->f_base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(f->f_nseen, n);
}

/* Turn the loop until the server has read len bytes, and check them. */
static void
server_expect(struct fixture *f, const char *want, size_t len)
{
	char *buf = malloc(len + 1);
	size_t have = 0;
	uint64_t deadline = clock_ms() + 2000;

	assert_non_null(buf);
	while (have < len) {
		ssize_t n;

		assert_true(clock_ms() < deadline);
		event_base_loop(f->f_base, EVLOOP_NONBLOCK);
		n = recv(f->f_sfd, buf + have, len - have, MSG_DONTWAIT);
		if (n > 0)
			have += (size_t)n;
		else {
			assert_true(n == -1 && errno == EAGAIN);
			usleep(1000);
		}
	}
	assert_memory_equal(buf, want, len);
	free(buf);
}

static void
server_send(struct fixture *f, const char *resp)
{
	size_t len = strlen(resp);

	assert_int_equal(send(f->f_sfd, resp, len, 0), (ssize_t)len);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char why[128];
	int port;

	assert_non_null(f);
	f->f_base = event_base_new();
	assert_non_null(f->f_base);
	f->f_lfd = listen_any(&port);
	f->f_ac = redisio_connect(f->f_base, "127.0.0.1", port, NULL, why,
	    sizeof(why));
	assert_non_null(f->f_ac);
	f->f_ac->data = f;
	redisAsyncSetConnectCallback(f->f_ac, on_connect);
	redisAsyncSetDisconnectCallback(f->f_ac, on_disconnect);
	f->f_sfd = accept(f->f_lfd, NULL, NULL);
	assert_true(f->f_sfd != -1);
	spin_until(f, &f->f_connected);
	assert_int_equal(f->f_connected, 1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f->f_ac != NULL)
		redisAsyncFree(f->f_ac);
	if (f->f_sfd != -1)
		close(f->f_sfd);
	close(f->f_lfd);
	event_base_free(f->f_base);
	free(f);
	return 0;
}

#define INCR_K  "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n"

/*
 * Many integer replies arrive in one read: each callback must see its own
 * value, in the one reused object (else the test proves nothing).
 */
static void
test_integer_burst(void **state)
{
	struct fixture *f = *state;
	enum { N = 300 };
	char *want = malloc(N * (sizeof(INCR_K) - 1) + 1);
	char *resp = malloc(N * 8 + 1);
	size_t i, off = 0;

	assert_non_null(want);
	assert_non_null(resp);
	want[0] = '\0';
	for (i = 0; i < N; i++) {
		assert_int_equal(redisAsyncCommand(f->f_ac, on_reply, f,
		    "INCR k"), REDIS_OK);
		strcat(want, INCR_K);
		off += (size_t)sprintf(resp + off, ":%zu\r\n", i + 1);
	}
	server_expect(f, want, strlen(want));
	server_send(f, resp);
	spin_until_seen(f, N);
	for (i = 0; i < N; i++) {
		assert_false(f->f_seen[i].s_null);
		assert_int_equal(f->f_seen[i].s_type, REDIS_REPLY_INTEGER);
		assert_int_equal(f->f_seen[i].s_integer, (long long)i + 1);
		assert_ptr_equal(f->f_seen[i].s_ptr, f->f_seen[0].s_ptr);
	}
	free(want);
	free(resp);
}

/*
 * Integers around and inside other replies: nested ones are hiredis's own
 * objects, and the top-level ones stay right next to them.
 */
static void
test_mixed_replies(void **state)
{
	struct fixture *f = *state;
	const void *reused;
	int i;

	for (i = 0; i < 9; i++)
		assert_int_equal(redisAsyncCommand(f->f_ac, on_reply, f,
		    "INCR k"), REDIS_OK);
	server_send(f, ":7\r\n*2\r\n:1\r\n:2\r\n-ERR no\r\n$-1\r\n+OK\r\n"
	    "$3\r\nabc\r\n:-8\r\n*1\r\n*1\r\n:3\r\n:9223372036854775807\r\n");
	spin_until_seen(f, 9);
	reused = f->f_seen[0].s_ptr;
	assert_int_equal(f->f_seen[0].s_integer, 7);
	assert_int_equal(f->f_seen[1].s_type, REDIS_REPLY_ARRAY);
	assert_int_equal(f->f_seen[1].s_elements, 2);
	assert_int_equal(f->f_seen[1].s_elem_integer, 1);
	assert_ptr_not_equal(f->f_seen[1].s_elem_ptr, reused);
	assert_int_equal(f->f_seen[2].s_type, REDIS_REPLY_ERROR);
	assert_string_equal(f->f_seen[2].s_str, "ERR no");
	assert_int_equal(f->f_seen[3].s_type, REDIS_REPLY_NIL);
	assert_int_equal(f->f_seen[4].s_type, REDIS_REPLY_STATUS);
	assert_string_equal(f->f_seen[5].s_str, "abc");
	assert_int_equal(f->f_seen[6].s_type, REDIS_REPLY_INTEGER);
	assert_int_equal(f->f_seen[6].s_integer, -8);
	assert_ptr_equal(f->f_seen[6].s_ptr, reused);
	assert_int_equal(f->f_seen[7].s_type, REDIS_REPLY_ARRAY);
	assert_int_equal(f->f_seen[7].s_elements, 1);
	assert_ptr_not_equal(f->f_seen[7].s_elem_ptr, reused);
	assert_int_equal(f->f_seen[8].s_integer, 9223372036854775807LL);
	assert_ptr_equal(f->f_seen[8].s_ptr, reused);
}

/*
 * A command sent from a reply callback goes out at the end of that loop
 * turn (the adapter's flush), and its reply comes back like the others.
 */
static void
test_command_from_callback(void **state)
{
	struct fixture *f = *state;

	f->f_again = 2;
	assert_int_equal(redisAsyncCommand(f->f_ac, on_reply, f, "INCR k"),
	    REDIS_OK);
	server_expect(f, INCR_K, sizeof(INCR_K) - 1);
	server_send(f, ":1\r\n");
	server_expect(f, INCR_K, sizeof(INCR_K) - 1);
	server_send(f, ":2\r\n");
	server_expect(f, INCR_K, sizeof(INCR_K) - 1);
	server_send(f, ":3\r\n");
	spin_until_seen(f, 3);
	assert_int_equal(f->f_seen[2].s_integer, 3);
}

/* Freed with replies due: the rest get NULL, and nothing leaks. */
static void
test_free_with_replies_pending(void **state)
{
	struct fixture *f = *state;
	redisAsyncContext *ac = f->f_ac;
	int i;

	for (i = 0; i < 3; i++)
		assert_int_equal(redisAsyncCommand(ac, on_reply, f, "INCR k"),
		    REDIS_OK);
	server_expect(f, INCR_K INCR_K INCR_K, 3 * (sizeof(INCR_K) - 1));
	server_send(f, ":1\r\n:2");     /* the second one cut short */
	spin_until_seen(f, 1);
	f->f_ac = NULL;
	redisAsyncFree(ac);
	assert_int_equal(f->f_nseen, 3);
	assert_int_equal(f->f_seen[0].s_integer, 1);
	assert_true(f->f_seen[1].s_null);
	assert_true(f->f_seen[2].s_null);
	assert_int_equal(f->f_disconnected, 1);
}

/* The server goes away after one reply: the next gets NULL. */
static void
test_server_closes(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(redisAsyncCommand(f->f_ac, on_reply, f, "INCR k"),
	    REDIS_OK);
	assert_int_equal(redisAsyncCommand(f->f_ac, on_reply, f, "INCR k"),
	    REDIS_OK);
	server_expect(f, INCR_K INCR_K, 2 * (sizeof(INCR_K) - 1));
	server_send(f, ":41\r\n:4");
	close(f->f_sfd);
	f->f_sfd = -1;
	spin_until(f, &f->f_disconnected);
	assert_int_equal(f->f_nseen, 2);
	assert_int_equal(f->f_seen[0].s_integer, 41);
	assert_true(f->f_seen[1].s_null);
	assert_int_equal(f->f_disconnected, -1);
	assert_null(f->f_ac);
}

/* Connecting waits for EV_WRITE; a refused connect is reported. */
static void
test_connect_refused(void **state)
{
	struct fixture *f = *state;
	redisAsyncContext *ac;
	char why[128];
	int port, fd = listen_any(&port);

	close(fd);                      /* nobody listens there now */
	ac = redisio_connect(f->f_base, "127.0.0.1", port, NULL, why,
	    sizeof(why));
	assert_non_null(ac);
	/* Swap the fixture's context for this one. */
	redisAsyncFree(f->f_ac);
	f->f_ac = ac;
	f->f_connected = 0;
	ac->data = f;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	spin_until(f, &f->f_connected);
	assert_int_equal(f->f_connected, -1);
	assert_null(f->f_ac);
}

/* A Unix socket that is not there fails at once, and says why. */
static void
test_connect_unix_missing(void **state)
{
	struct fixture *f = *state;
	char why[128] = "";

	assert_null(redisio_connect(f->f_base, NULL, 0,
	    "/nonexistent/hitcountd-test.sock", why, sizeof(why)));
	assert_non_null(strstr(why, "No such file"));
}

/* AUTH with a password, with a user too, or nothing without a password. */
static void
test_auth(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(redisio_auth(f->f_ac, "", "", on_reply, f), 0);
	assert_int_equal(redisio_auth(f->f_ac, "u", "", on_reply, f), 0);
	assert_int_equal(redisio_auth(f->f_ac, "", "pw", on_reply, f), 1);
	assert_int_equal(redisio_auth(f->f_ac, "u", "pw", NULL, NULL), 1);
	assert_int_equal(redisAsyncCommand(f->f_ac, on_reply, f, "INCR k"),
	    REDIS_OK);
	server_expect(f, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
	    "*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$2\r\npw\r\n" INCR_K,
	    strlen("*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
	    "*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$2\r\npw\r\n" INCR_K));
	/* The first AUTH's reply goes to fn, the second's to nobody. */
	server_send(f, "+OK\r\n+OK\r\n:7\r\n");
	spin_until_seen(f, 2);
	assert_string_equal(f->f_seen[0].s_str, "OK");
	assert_int_equal(f->f_seen[1].s_integer, 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_integer_burst, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mixed_replies, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_command_from_callback,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_replies_pending,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_closes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_connect_unix_missing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
	};

	printf("# hiredis %d.%d.%d\n", HIREDIS_MAJOR, HIREDIS_MINOR,
	    HIREDIS_PATCH);
	return cmocka_run_group_tests_name("redisio", tests, NULL, NULL);
}
