/*
 * test_acceptq.c - unit tests of the accept thread: it takes connections
 * only when told, never more than its credit, counts one wakeup per
 * connection, and a stop keeps what it had accepted for the caller.  A
 * real listening socket on 127.0.0.1; waits are on the queue's
 * descriptor (poll), with a deadline; what the thread must not take, the
 * test takes from the listener itself.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "acceptq.h"

#define WAIT_MS 2000

static int listen_fd = -1;
static struct sockaddr_in listen_sin;

static int
setup(void **state)
{
	socklen_t len = sizeof(listen_sin);

	(void)state;
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(listen_fd != -1);
	memset(&listen_sin, 0, sizeof(listen_sin));
	listen_sin.sin_family = AF_INET;
	listen_sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(listen_fd, (struct sockaddr *)&listen_sin,
	    sizeof(listen_sin)), 0);
	assert_int_equal(getsockname(listen_fd, (struct sockaddr *)&listen_sin,
	    &len), 0);
	assert_int_equal(listen(listen_fd, 64), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	close(listen_fd);
	return 0;
}

static int
client(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd != -1);
	assert_int_equal(connect(fd, (struct sockaddr *)&listen_sin,
	    sizeof(listen_sin)), 0);
	return fd;
}

/* The test takes a waiting connection itself: proof the thread did not. */
static void
left_waiting(int n)
{
	int fd;

	while (n-- > 0) {
		fd = accept(listen_fd, NULL, NULL);
		assert_true(fd != -1);
		close(fd);
	}
	assert_int_equal(accept(listen_fd, NULL, NULL), -1);
}

/* Take from aq until want sockets came (closing them), or the deadline. */
static size_t
take_until(struct acceptq *aq, size_t want, int ms)
{
	struct acceptq_conn c[8];
	struct pollfd p = { acceptq_fd(aq), POLLIN, 0 };
	size_t got = 0, i, n;

	while (got < want && poll(&p, 1, ms) == 1) {
		uint64_t word;

		/* Edge-triggered for the daemon; poll() needs it read. */
		(void)!read(p.fd, &word, sizeof(word));
		n = acceptq_take(aq, c, 8);
		for (i = 0; i < n; i++)
			close(c[i].ac_fd);
		got += n;
	}
	return got;
}

static void
test_takes_only_when_on_and_counts_wakeups(void **state)
{
	int admin = 0, fds[3], i;
	uint64_t wakeups = 0, empty = 0;
	struct acceptq *aq;

	(void)state;
	aq = acceptq_start(&listen_fd, &admin, 1, 100, &wakeups, &empty);
	assert_non_null(aq);
	/* Off: nothing taken. */
	fds[0] = client();
	left_waiting(1);
	acceptq_set(aq, 1);
	close(fds[0]);
	fds[0] = client();
	assert_int_equal(take_until(aq, 1, WAIT_MS), 1);
	for (i = 1; i < 3; i++) {
		fds[i] = client();
		assert_int_equal(take_until(aq, 1, WAIT_MS), 1);
	}
	acceptq_free(aq);
	/* One wakeup per connection, none of them empty. */
	assert_int_equal(wakeups, 3);
	assert_int_equal(empty, 0);
	for (i = 0; i < 3; i++)
		close(fds[i]);
}

static void
test_never_more_than_the_credit(void **state)
{
	int admin = 0, fds[5], i;
	struct acceptq *aq;

	(void)state;
	aq = acceptq_start(&listen_fd, &admin, 1, 3, NULL, NULL);
	assert_non_null(aq);
	acceptq_set(aq, 1);
	for (i = 0; i < 5; i++)
		fds[i] = client();
	assert_int_equal(take_until(aq, 3, WAIT_MS), 3);
	/* The credit is spent: the two others still wait. */
	left_waiting(2);
	acceptq_give(aq, 1);
	close(fds[0]);
	fds[0] = client();
	assert_int_equal(take_until(aq, 1, WAIT_MS), 1);
	acceptq_free(aq);
	for (i = 0; i < 5; i++)
		close(fds[i]);
}

static void
test_stop_keeps_what_was_accepted(void **state)
{
	int admin = 1, fds[2];
	struct acceptq_conn c[4];
	struct pollfd p;
	struct acceptq *aq;

	(void)state;
	aq = acceptq_start(&listen_fd, &admin, 1, 100, NULL, NULL);
	assert_non_null(aq);
	acceptq_set(aq, 1);
	fds[0] = client();
	p.fd = acceptq_fd(aq);
	p.events = POLLIN;
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	acceptq_stop(aq);
	/* Stopped: a new client waits in the backlog. */
	fds[1] = client();
	assert_int_equal(acceptq_take(aq, c, 4), 1);
	assert_int_equal(c[0].ac_admin, 1);
	close(c[0].ac_fd);
	assert_int_equal(acceptq_take(aq, c, 4), 0);
	left_waiting(1);
	acceptq_free(aq);
	close(fds[0]);
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_takes_only_when_on_and_counts_wakeups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_never_more_than_the_credit,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stop_keeps_what_was_accepted, setup, teardown),
	};

	return cmocka_run_group_tests_name("acceptq", tests, NULL, NULL);
}
