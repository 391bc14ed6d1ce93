/*
 * test_connbuf.c - unit tests of a connection's buffers (connbuf.c): the
 * input kept between passes, the output a socket refuses kept in order
 * behind what came before, and the contract that a failure is reported
 * and nothing is closed.  The socket is one end of a socket pair whose
 * send buffer is made small, so that a send is refused for real.
 */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "connbuf.h"
#include "log.h"

#define PASS_LEN        200000  /* more than any socket buffer here takes */

/* Read everything the peer has sent so far into out (appending at *got). */
static void
drain(int fd, char *out, size_t cap, size_t *got)
{
	ssize_t n;

	while (*got < cap &&
	    (n = recv(fd, out + *got, cap - *got, MSG_DONTWAIT)) > 0)
		*got += (size_t)n;
}

static void
test_input_kept_and_taken(void **state)
{
	struct connbuf b;
	char *in;
	size_t len;

	(void)state;
	memset(&b, 0, sizeof(b));
	assert_int_equal(connbuf_keep_in(&b, "GET / HT", 8, 64), 0);
	assert_int_equal(b.cb_inlen, 8);
	assert_int_equal(b.cb_incap, 64);
	in = connbuf_take_in(&b, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(in, "GET / HT", 8);
	assert_null(b.cb_in);
	assert_int_equal(b.cb_inlen, 0);
	free(in);
	/* A leftover larger than the buffer asked for gets a larger one. */
	assert_int_equal(connbuf_keep_in(&b, "0123456789", 10, 4), 0);
	assert_true(b.cb_incap >= 10);
	connbuf_drop_in(&b);
	assert_null(b.cb_in);
	assert_int_equal(b.cb_incap, 0);
	connbuf_free(&b);
}

/* What the socket refuses is kept, and later output queues behind it. */
static void
test_refused_output_is_kept_in_order(void **state)
{
	static char pass1[PASS_LEN], pass2[PASS_LEN], got[2 * PASS_LEN];
	struct connbuf b;
	size_t n = 0, i;
	int sv[2], small = 4096;

	(void)state;
	for (i = 0; i < PASS_LEN; i++) {
		pass1[i] = (char)('a' + i % 26);
		pass2[i] = (char)('A' + i % 26);
	}
	memset(&b, 0, sizeof(b));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small,
	    sizeof(small)), 0);
	assert_int_equal(connbuf_send(&b, sv[0], pass1, PASS_LEN), 0);
	assert_true(b.cb_outlen > 0);   /* the socket did not take it all */
	assert_int_equal(connbuf_send(&b, sv[0], pass2, PASS_LEN), 0);
	for (i = 0; i < 100000 && b.cb_outlen > 0; i++) {
		drain(sv[1], got, sizeof(got), &n);
		assert_int_equal(connbuf_send(&b, sv[0], NULL, 0), 0);
	}
	drain(sv[1], got, sizeof(got), &n);
	assert_int_equal(b.cb_outlen, 0);
	assert_null(b.cb_out);
	assert_int_equal(n, 2 * PASS_LEN);
	assert_memory_equal(got, pass1, PASS_LEN);
	assert_memory_equal(got + PASS_LEN, pass2, PASS_LEN);
	connbuf_free(&b);
	close(sv[0]);
	close(sv[1]);
}

/* A broken connection is reported, and the socket is left to the caller. */
static void
test_failure_closes_nothing(void **state)
{
	struct connbuf b;
	int sv[2];

	(void)state;
	memset(&b, 0, sizeof(b));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	close(sv[1]);
	assert_int_equal(connbuf_send(&b, sv[0], "HTTP/1.1 200 OK\r\n", 17),
	    -1);
	assert_true(fcntl(sv[0], F_GETFD) != -1);
	connbuf_free(&b);
	close(sv[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_input_kept_and_taken),
		cmocka_unit_test(test_refused_output_is_kept_in_order),
		cmocka_unit_test(test_failure_closes_nothing),
	};

	log_init(1, LOG_ERR);
	return cmocka_run_group_tests_name("connbuf", tests, NULL, NULL);
}
