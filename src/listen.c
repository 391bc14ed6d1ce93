/*
 * listen.c - the master's listening sockets and which configuration uses
 * each of them.
 *
 * The master binds every address before it forks a worker, and keeps the
 * sockets across reloads so that an address served by both the old and
 * the new configuration never stops accepting.  During a reload two
 * configurations are alive, so each socket records which of them use it
 * (LISTEN_CUR, LISTEN_NEXT): a worker forked for either generation, even
 * a crash replacement forked in the middle of a reload, gets exactly its
 * own configuration's sockets.  Committing or aborting the reload closes
 * what no configuration uses any more.  Sockets can also come from the
 * service manager (socket activation) or from the previous master of a
 * binary upgrade, both through the LISTEN_FDS protocol of
 * sd_listen_fds(3).  nginx keeps its listening list apart from the
 * process cycle in the same way.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "conf.h"
#include "listen.h"
#include "log.h"

#define LISTEN_FDS_START        3       /* SD_LISTEN_FDS_START */
#define LISTEN_FDS_MAX          64

static int
listen_same_addr(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a,
		    *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		    x->sin6_scope_id == y->sin6_scope_id &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}

/*
 * TCP_NODELAY on a listening socket: every connection accepted from it
 * starts with it (Linux copies the option), which spares a setsockopt()
 * per connection.  Each response goes out in one send(), so there is
 * nothing for Nagle's algorithm to gather, only acks to wait for.
 */
static void
listen_nodelay(int fd, const char *text)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_warn("setsockopt TCP_NODELAY %s", text);
}

static int
listen_bind_one(const struct conf_listen *cl, int backlog)
{
	int fd, one = 1;

	fd = socket(cl->cfl_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("socket %s", cl->cfl_text);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		log_warn("setsockopt SO_REUSEADDR %s", cl->cfl_text);
	if (cl->cfl_addr.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1)
		log_warn("setsockopt IPV6_V6ONLY %s", cl->cfl_text);
	listen_nodelay(fd, cl->cfl_text);
	if (bind(fd, (const struct sockaddr *)&cl->cfl_addr, cl->cfl_addrlen) ==
	    -1) {
		log_warn("bind %s", cl->cfl_text);
		close(fd);
		return -1;
	}
	if (listen(fd, backlog) == -1) {
		log_warn("listen %s", cl->cfl_text);
		close(fd);
		return -1;
	}
	return fd;
}

static struct listener *
listen_find(struct listen_set *ls, const struct conf_listen *cl)
{
	size_t i;

	for (i = 0; i < ls->ls_n; i++)
		if (ls->ls_l[i].l_admin == cl->cfl_admin &&
		    listen_same_addr(&ls->ls_l[i].l_addr, &cl->cfl_addr))
			return &ls->ls_l[i];
	return NULL;
}

/* Forget ls_l[i], moving the last entry into its place. */
static void
listen_drop(struct listen_set *ls, size_t i)
{
	close(ls->ls_l[i].l_fd);
	free(ls->ls_l[i].l_text);
	ls->ls_l[i] = ls->ls_l[--ls->ls_n];
}

int
listen_bind(struct listen_set *ls, const struct conf *cf, unsigned use)
{
	size_t i, start = ls->ls_n;
	struct listener *l;
	int admin_only = 0, named = 0;

	if (ls->ls_activated) {
		for (i = 0; i < ls->ls_n; i++)
			if (ls->ls_l[i].l_passed) {
				ls->ls_l[i].l_uses |= use;
				named |= ls->ls_l[i].l_admin;
			}
		if (named)
			return 0;       /* the manager passed metrics too */
		admin_only = 1;
	}
	l = realloc(ls->ls_l, (ls->ls_n + cf->cf_nlisten + 1) * sizeof(*l));
	if (l == NULL) {
		log_warn("realloc");
		return -1;
	}
	ls->ls_l = l;
	for (i = 0; i < cf->cf_nlisten; i++) {
		const struct conf_listen *cl = &cf->cf_listen[i];
		struct listener *old, *nl;

		if (admin_only && !cl->cfl_admin)
			continue;       /* a passed socket serves it */
		old = listen_find(ls, cl);
		if (old != NULL) {
			old->l_uses |= use;
			continue;
		}
		nl = &ls->ls_l[ls->ls_n];
		memset(nl, 0, sizeof(*nl));
		nl->l_admin = cl->cfl_admin;
		nl->l_addr = cl->cfl_addr;
		nl->l_addrlen = cl->cfl_addrlen;
		nl->l_uses = use;
		nl->l_fd = listen_bind_one(cl, cf->cf_backlog);
		if (nl->l_fd == -1)
			goto fail;
		nl->l_text = strdup(cl->cfl_text);
		if (nl->l_text == NULL) {
			log_warn("strdup");
			close(nl->l_fd);
			goto fail;
		}
		ls->ls_n++;
	}
	return 0;
fail:
	while (ls->ls_n > start)
		listen_drop(ls, ls->ls_n - 1);
	return -1;
}

/* Close the sockets that no configuration uses any more. */
static void
listen_prune(struct listen_set *ls)
{
	size_t i = 0;

	while (i < ls->ls_n) {
		if (ls->ls_l[i].l_uses != 0) {
			i++;
			continue;
		}
		log_info("no longer listening on %s", ls->ls_l[i].l_text);
		listen_drop(ls, i);
	}
}

void
listen_commit(struct listen_set *ls)
{
	size_t i;

	for (i = 0; i < ls->ls_n; i++)
		ls->ls_l[i].l_uses = (ls->ls_l[i].l_uses & LISTEN_NEXT) ?
		    LISTEN_CUR : 0;
	listen_prune(ls);
}

void
listen_abort(struct listen_set *ls)
{
	size_t i;

	for (i = 0; i < ls->ls_n; i++)
		ls->ls_l[i].l_uses &= ~LISTEN_NEXT;
	listen_prune(ls);
}

int
listen_fds(const struct listen_set *ls, unsigned use, int **fds, int **admin)
{
	size_t i;
	int n = 0, *a;

	/* One allocation, never empty: a worker may have no socket at all. */
	a = calloc(2 * (ls->ls_n + 1), sizeof(*a));
	if (a == NULL)
		return -1;
	*fds = a;
	*admin = a + ls->ls_n + 1;
	for (i = 0; i < ls->ls_n; i++)
		if (ls->ls_l[i].l_uses & use) {
			(*admin)[n] = ls->ls_l[i].l_admin;
			(*fds)[n++] = ls->ls_l[i].l_fd;
		}
	return n;
}

void
listen_close_others(const struct listen_set *ls, unsigned use)
{
	size_t i;

	for (i = 0; i < ls->ls_n; i++)
		if (!(ls->ls_l[i].l_uses & use))
			close(ls->ls_l[i].l_fd);
}

void
listen_close_all(struct listen_set *ls)
{
	while (ls->ls_n > 0)
		listen_drop(ls, ls->ls_n - 1);
	free(ls->ls_l);
	ls->ls_l = NULL;
}

/* The n-th name of LISTEN_FDNAMES (colon-separated) is "metrics". */
static int
listen_named_metrics(const char *names, int n)
{
	const char *p = names;

	while (p != NULL && n-- > 0) {
		p = strchr(p, ':');
		if (p != NULL)
			p++;
	}
	return p != NULL && strncmp(p, "metrics", 7) == 0 &&
	    (p[7] == '\0' || p[7] == ':');
}

/* Describe an inherited socket fd as listener l.  Returns 0 or -1. */
static int
listen_take(struct listener *l, int fd, int admin)
{
	char host[INET6_ADDRSTRLEN], port[8], text[80];
	int on = 0, flags;
	socklen_t olen = sizeof(on);

	memset(l, 0, sizeof(*l));
	l->l_fd = fd;
	l->l_admin = admin;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) == -1 ||
	    !on) {
		log_warnx("LISTEN_FDS: fd %d is not a listening socket", fd);
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		log_warn("fcntl fd %d", fd);
		return -1;
	}
	l->l_addrlen = sizeof(l->l_addr);
	if (getsockname(fd, (struct sockaddr *)&l->l_addr, &l->l_addrlen) == 0 &&
	    getnameinfo((struct sockaddr *)&l->l_addr, l->l_addrlen, host,
	    sizeof(host), port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) ==
	    0)
		snprintf(text, sizeof(text), l->l_addr.ss_family == AF_INET6 ?
		    "[%s]:%s" : "%s:%s", host, port);
	else
		snprintf(text, sizeof(text), "fd %d", fd);
	l->l_text = strdup(text);
	if (l->l_text == NULL) {
		log_warn("strdup");
		return -1;
	}
	if (l->l_addr.ss_family == AF_INET || l->l_addr.ss_family == AF_INET6)
		listen_nodelay(fd, l->l_text);
	return 0;
}

int
listen_adopt(struct listen_set *ls, int activated)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	char *end;
	long n;
	int i;

	if (pid == NULL || fds == NULL || strtol(pid, &end, 10) !=
	    (long)getpid() || *end != '\0')
		return 0;
	errno = 0;
	n = strtol(fds, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1 || n > LISTEN_FDS_MAX) {
		log_warnx("LISTEN_FDS=%s: not a number of sockets", fds);
		return -1;
	}
	ls->ls_l = calloc((size_t)n, sizeof(*ls->ls_l));
	if (ls->ls_l == NULL) {
		log_warn("calloc");
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct listener *l = &ls->ls_l[i];

		if (listen_take(l, LISTEN_FDS_START + i,
		    names != NULL && listen_named_metrics(names, i)) == -1) {
			free(l->l_text);
			listen_close_all(ls);
			return -1;
		}
		ls->ls_n++;
		l->l_passed = activated;
		l->l_uses = activated ? LISTEN_CUR : 0;
		log_info("%s: listening on %s (fd %d)", activated ?
		    "socket activation" : "binary upgrade", l->l_text, l->l_fd);
	}
	ls->ls_activated = activated;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return (int)n;
}
