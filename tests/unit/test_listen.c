/*
 * test_listen.c - unit tests of the listening-socket bookkeeping: which
 * sockets each of the two configurations alive during a reload gets, and
 * what committing or aborting the reload closes.  Real sockets on
 * 127.0.0.1, on ports the kernel picks.
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
#include <fcntl.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "conf.h"
#include "listen.h"
#include "log.h"

/* A port nobody listens on right now. */
static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* A configuration listening on the given ports of 127.0.0.1. */
static struct conf *
conf_with(const int *ports, size_t n)
{
	struct conf *cf = calloc(1, sizeof(*cf));
	size_t i;

	assert_non_null(cf);
	cf->cf_listen = calloc(n, sizeof(*cf->cf_listen));
	assert_non_null(cf->cf_listen);
	cf->cf_nlisten = n;
	cf->cf_backlog = 16;
	for (i = 0; i < n; i++) {
		struct conf_listen *cl = &cf->cf_listen[i];
		struct sockaddr_in *sin = (struct sockaddr_in *)&cl->cfl_addr;
		char text[32];

		sin->sin_family = AF_INET;
		sin->sin_port = htons(ports[i]);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		cl->cfl_addrlen = sizeof(*sin);
		snprintf(text, sizeof(text), "127.0.0.1:%d", ports[i]);
		cl->cfl_text = strdup(text);
	}
	return cf;
}

static void
conf_with_free(struct conf *cf)
{
	size_t i;

	for (i = 0; i < cf->cf_nlisten; i++)
		free(cf->cf_listen[i].cfl_text);
	free(cf->cf_listen);
	free(cf);
}

/* The local port of socket fd. */
static int
port_of(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

/* Whether a socket marked with use listens on port. */
static int
has_port(const struct listen_set *ls, unsigned use, int port)
{
	int *fds, *admin, n, i, found = 0;

	n = listen_fds(ls, use, &fds, &admin);
	assert_true(n >= 0);
	for (i = 0; i < n; i++)
		if (port_of(fds[i]) == port)
			found = 1;
	free(fds);
	return found;
}

static int
count(const struct listen_set *ls, unsigned use)
{
	int *fds, *admin, n = listen_fds(ls, use, &fds, &admin);

	free(fds);
	return n;
}

static int
is_listening(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return rc == 0;
}

struct fixture {
	int p1, p2, p3;
	struct conf *cur, *next;
	struct listen_set ls;
};

/* Current configuration {p1, p2}, a reload's {p2, p3} bound beside it. */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int a[2], b[2];

	f->p1 = free_port();
	f->p2 = free_port();
	f->p3 = free_port();
	a[0] = f->p1;
	a[1] = f->p2;
	b[0] = f->p2;
	b[1] = f->p3;
	f->cur = conf_with(a, 2);
	f->next = conf_with(b, 2);
	if (listen_bind(&f->ls, f->cur, LISTEN_CUR) != 0 ||
	    listen_bind(&f->ls, f->next, LISTEN_NEXT) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	listen_close_all(&f->ls);
	conf_with_free(f->cur);
	conf_with_free(f->next);
	free(f);
	return 0;
}

/* A worker forked for either configuration mid-reload gets exactly its own. */
static void
test_each_configuration_gets_its_own_sockets(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->ls.ls_n, 3);        /* p2 is shared, not bound twice */
	assert_int_equal(count(&f->ls, LISTEN_CUR), 2);
	assert_true(has_port(&f->ls, LISTEN_CUR, f->p1));
	assert_true(has_port(&f->ls, LISTEN_CUR, f->p2));
	assert_false(has_port(&f->ls, LISTEN_CUR, f->p3));
	assert_int_equal(count(&f->ls, LISTEN_NEXT), 2);
	assert_false(has_port(&f->ls, LISTEN_NEXT, f->p1));
	assert_true(has_port(&f->ls, LISTEN_NEXT, f->p2));
	assert_true(has_port(&f->ls, LISTEN_NEXT, f->p3));
}

static void
test_commit_closes_what_only_the_old_configuration_used(void **state)
{
	struct fixture *f = *state;

	listen_commit(&f->ls);
	assert_int_equal(f->ls.ls_n, 2);
	assert_true(has_port(&f->ls, LISTEN_CUR, f->p2));
	assert_true(has_port(&f->ls, LISTEN_CUR, f->p3));
	assert_int_equal(count(&f->ls, LISTEN_NEXT), 0);
	assert_false(is_listening(f->p1));
	assert_true(is_listening(f->p2));
	assert_true(is_listening(f->p3));
}

static void
test_abort_closes_what_only_the_reload_bound(void **state)
{
	struct fixture *f = *state;

	listen_abort(&f->ls);
	assert_int_equal(f->ls.ls_n, 2);
	assert_true(has_port(&f->ls, LISTEN_CUR, f->p1));
	assert_true(has_port(&f->ls, LISTEN_CUR, f->p2));
	assert_int_equal(count(&f->ls, LISTEN_NEXT), 0);
	assert_true(is_listening(f->p1));
	assert_true(is_listening(f->p2));
	assert_false(is_listening(f->p3));
}

/* A reload that cannot bind everything leaves nothing of its own behind. */
static void
test_failed_bind_closes_what_it_bound(void **state)
{
	struct fixture *f = *state;
	struct listen_set other;
	struct conf *cf;
	int ports[2];

	listen_abort(&f->ls);
	/* p4 is free; p1 is taken by another set, so binding it fails */
	ports[0] = free_port();
	ports[1] = f->p1;
	cf = conf_with(ports, 2);
	memset(&other, 0, sizeof(other));
	assert_int_equal(listen_bind(&other, cf, LISTEN_CUR), -1);
	assert_int_equal(other.ls_n, 0);
	assert_false(is_listening(ports[0]));
	listen_close_all(&other);
	conf_with_free(cf);
}

/* Sockets handed over by an upgrade are matched by address, not by text. */
static void
test_inherited_sockets_are_matched_by_address(void **state)
{
	struct fixture *f = *state;
	size_t i;

	listen_abort(&f->ls);
	for (i = 0; i < f->ls.ls_n; i++)
		f->ls.ls_l[i].l_uses = 0;       /* as listen_adopt() leaves them */
	free(f->cur->cf_listen[0].cfl_text);
	f->cur->cf_listen[0].cfl_text = strdup("localhost:whatever");
	assert_int_equal(listen_bind(&f->ls, f->cur, LISTEN_CUR), 0);
	assert_int_equal(f->ls.ls_n, 2);        /* nothing bound anew */
	assert_int_equal(count(&f->ls, LISTEN_CUR), 2);
}

/*
 * A connection accepted from a bound socket starts with TCP_NODELAY (set
 * once on the listener, not per connection by the worker).
 */
static void
test_accepted_connections_have_nodelay(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in sin;
	struct pollfd pfd;
	int *fds, *admin, n, i, lfd = -1, cfd, afd, on = 0;
	socklen_t olen = sizeof(on);

	n = listen_fds(&f->ls, LISTEN_CUR, &fds, &admin);
	for (i = 0; i < n; i++)
		if (port_of(fds[i]) == f->p1)
			lfd = fds[i];
	free(fds);
	assert_true(lfd != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(f->p1);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	pfd.fd = lfd;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd != -1);
	assert_int_equal(getsockopt(afd, IPPROTO_TCP, TCP_NODELAY, &on, &olen),
	    0);
	assert_true(on != 0);
	close(afd);
	close(cfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_each_configuration_gets_its_own_sockets, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_commit_closes_what_only_the_old_configuration_used,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_abort_closes_what_only_the_reload_bound, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_failed_bind_closes_what_it_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_inherited_sockets_are_matched_by_address, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_accepted_connections_have_nodelay, setup, teardown),
	};

	log_init(1, LOG_ERR);
	return cmocka_run_group_tests_name("listen", tests, NULL, NULL);
}
