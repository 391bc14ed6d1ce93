/*
 * acceptq.c - a worker's accept thread, and the queue through which it
 * hands accepted sockets to the worker's loop.
 *
 * Every worker takes connections from the same listening sockets.  Linux
 * wakes one waiter per new connection only for a set registered with
 * EPOLLEXCLUSIVE, and only when a task waits on that set directly
 * (fs/eventpoll.c, ep_poll_callback): a set that libevent's own epoll
 * watches, as before, wakes every worker for every connection.  libevent
 * 2.1 cannot ask for EPOLLEXCLUSIVE nor let us wait on its epoll set, so
 * one small thread per worker blocks in epoll_wait() on the exclusive set
 * itself, accepts a bounded batch and hands the sockets to the loop
 * through a queue and an eventfd.  Weighed against it: an accept mutex
 * (nginx's old accept_mutex) serialises accepting, and a worker without
 * the mutex waits out a delay before it may take a connection again;
 * SO_REUSEPORT per worker wakes one worker for certain, but a socket
 * closed by a reload, TTOU or an upgrade resets the connections in its
 * queue unless net.ipv4.tcp_migrate_req is set (Linux 5.14, a host-wide
 * setting), and a busy worker keeps its share of new connections while
 * the others idle.  Here the kernel still picks an idle waiter, the
 * sockets stay shared, and stopping is a join.
 *
 * A busy loop must not keep taking connections that idle siblings would
 * serve sooner, nor go over max_connections: the thread accepts only
 * while its credit (the connections the loop may still open) and the
 * queue's room allow, and off the listeners otherwise until the loop
 * gives some back.  After each batch it takes itself off a listener and
 * puts itself back, at the end of the kernel's queue of exclusive
 * waiters (the kernel tries them in order), so that connections go round
 * the workers.
 *
 * The thread touches only the epoll set, accept4(), the eventfds and the
 * queue under its mutex.  It never logs (log.c is not thread-safe) and
 * never calls libevent: errors travel to the loop, which logs them in
 * acceptq_take().  Called by worker.c only; calls log.c from the loop.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "acceptq.h"
#include "log.h"
#include "util.h"

#define ACCEPTQ_CAP             4       /* accepted, not yet taken */
#define ACCEPTQ_BATCH           4       /* accept4() calls per wakeup */
#define ACCEPTQ_BACKOFF_MS      100     /* out of descriptors: a pause */
#define ACCEPTQ_CTL             UINT64_MAX      /* epoll data of aq_ctlfd */

enum acceptq_want { ACCEPTQ_OFF, ACCEPTQ_ON, ACCEPTQ_EXIT };

struct acceptq {
	pthread_mutex_t aq_lock;
	pthread_t aq_thread;
	int aq_running;                 /* aq_thread not yet joined */
	int aq_epfd;                    /* the exclusive set, and aq_ctlfd */
	int aq_ctlfd;                   /* loop -> thread: look at aq_want */
	int aq_readyfd;                 /* thread -> loop: the queue filled */
	/*
	 * Both eventfds are watched edge-triggered and never read: each
	 * write is an edge, and a read per connection would be a system
	 * call for nothing.  Their counters would fill after 2^64 writes.
	 */
	int *aq_fds;
	int *aq_admin;
	size_t aq_nfds;
	uint64_t *aq_wakeups, *aq_empty;
	/* Under aq_lock. */
	enum acceptq_want aq_want;
	int aq_credit;                  /* connections the loop may open */
	int aq_starved;                 /* off the listeners for want of room */
	int aq_poke;                    /* look at the listeners again */
	int aq_err;                     /* the last failure, for the loop */
	const char *aq_err_call;
	struct acceptq_conn aq_q[ACCEPTQ_CAP];
	size_t aq_head, aq_count;
	/* The thread's alone. */
	int aq_on;                      /* registered on the listeners */
	int aq_backoff;                 /* out of descriptors */
};

/* Record a failure for the loop to log (under aq_lock). */
static void
acceptq_fail_locked(struct acceptq *aq, const char *call, int err)
{
	aq->aq_err = err;
	aq->aq_err_call = call;
}

static void
acceptq_fail(struct acceptq *aq, const char *call, int err)
{
	pthread_mutex_lock(&aq->aq_lock);
	acceptq_fail_locked(aq, call, err);
	pthread_mutex_unlock(&aq->aq_lock);
}

static void
acceptq_signal(int fd)
{
	uint64_t one = 1;

	/* Cannot fail but after 2^64 writes (EAGAIN: a full counter). */
	(void)!write(fd, &one, sizeof(one));
}

static void
acceptq_count(uint64_t *counter)
{
	if (counter != NULL)
		__atomic_store_n(counter, *counter + 1, __ATOMIC_RELAXED);
}

/* Room for more connections: the credit, and the queue's (under aq_lock). */
static int
acceptq_room_locked(const struct acceptq *aq)
{
	int room = ACCEPTQ_CAP - (int)aq->aq_count;

	return aq->aq_credit < room ? aq->aq_credit : room;
}

/* Put listener i into the exclusive set (behind the other workers). */
static int
acceptq_add(struct acceptq *aq, size_t i)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.u64 = i;
	return epoll_ctl(aq->aq_epfd, EPOLL_CTL_ADD, aq->aq_fds[i], &ev);
}

/* Register the exclusive set on the listeners, or take it off them. */
static void
acceptq_register(struct acceptq *aq, int on)
{
	size_t i;

	for (i = 0; i < aq->aq_nfds; i++)
		if ((on ? acceptq_add(aq, i) : epoll_ctl(aq->aq_epfd,
		    EPOLL_CTL_DEL, aq->aq_fds[i], NULL)) == -1)
			acceptq_fail(aq, on ? "epoll_ctl ADD" : "epoll_ctl DEL",
			    errno);
	aq->aq_on = on;
}

/*
 * In the thread: do what the loop asked, and be on the listeners exactly
 * when there is room.  Returns -1 when the thread must end.
 */
static int
acceptq_sync(struct acceptq *aq)
{
	enum acceptq_want want;
	int room, poke, on;

	pthread_mutex_lock(&aq->aq_lock);
	want = aq->aq_want;
	room = acceptq_room_locked(aq);
	/* Set under the lock that acceptq_give() takes: no lost wakeup. */
	aq->aq_starved = want == ACCEPTQ_ON && room <= 0;
	poke = aq->aq_poke;
	aq->aq_poke = 0;
	pthread_mutex_unlock(&aq->aq_lock);
	if (want == ACCEPTQ_EXIT)
		return -1;
	on = want == ACCEPTQ_ON && room > 0 && !aq->aq_backoff;
	/* Adding a ready listener again makes epoll report it at once. */
	if (aq->aq_on && (!on || poke))
		acceptq_register(aq, 0);
	if (on && !aq->aq_on)
		acceptq_register(aq, 1);
	return 0;
}

/* Move listener i behind the other workers' sets in the kernel's queue. */
static void
acceptq_rotate(struct acceptq *aq, size_t i)
{
	if (epoll_ctl(aq->aq_epfd, EPOLL_CTL_DEL, aq->aq_fds[i], NULL) == -1 ||
	    acceptq_add(aq, i) == -1)
		acceptq_fail(aq, "epoll_ctl", errno);
}

/*
 * Accept from listener i as much as the credit and the queue allow, up
 * to a batch, into the queue.  Returns how many.
 */
static int
acceptq_batch(struct acceptq *aq, size_t i)
{
	struct acceptq_conn got[ACCEPTQ_BATCH];
	int n = 0, take, try, err = 0, was;

	pthread_mutex_lock(&aq->aq_lock);
	take = acceptq_room_locked(aq);
	if (take > ACCEPTQ_BATCH)
		take = ACCEPTQ_BATCH;
	if (take < 0)
		take = 0;
	aq->aq_credit -= take;          /* reserved; what is unused returns */
	pthread_mutex_unlock(&aq->aq_lock);
	for (try = 0; n < take && try < 2 * ACCEPTQ_BATCH; try++) {
		socklen_t sslen = sizeof(got[n].ac_ss);
		int s;

		s = accept4(aq->aq_fds[i], (struct sockaddr *)&got[n].ac_ss,
		    &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				err = errno;
			break;
		}
		got[n].ac_fd = s;
		got[n].ac_admin = aq->aq_admin[i];
		n++;
	}
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
		aq->aq_backoff = 1;     /* rather than spin on a ready socket */
	pthread_mutex_lock(&aq->aq_lock);
	was = (int)aq->aq_count;
	for (try = 0; try < n; try++)
		aq->aq_q[(aq->aq_head + aq->aq_count++) % ACCEPTQ_CAP] =
		    got[try];
	aq->aq_credit += take - n;
	if (err != 0)
		acceptq_fail_locked(aq, "accept", err);
	pthread_mutex_unlock(&aq->aq_lock);
	/* The loop takes the whole queue: only an empty one needs a word. */
	if ((n > 0 && was == 0) || err != 0)
		acceptq_signal(aq->aq_readyfd);
	if (aq->aq_on && !aq->aq_backoff)
		acceptq_rotate(aq, i);
	return n;
}

static void *
acceptq_main(void *arg)
{
	struct acceptq *aq = arg;
	struct epoll_event evs[16];
	int i, n, woken, got;

	while (acceptq_sync(aq) == 0) {
		n = epoll_wait(aq->aq_epfd, evs, nitems(evs),
		    aq->aq_backoff ? ACCEPTQ_BACKOFF_MS : -1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			acceptq_fail(aq, "epoll_wait", errno);
			acceptq_signal(aq->aq_readyfd);
			break;
		}
		if (n == 0)
			aq->aq_backoff = 0;
		woken = got = 0;
		for (i = 0; i < n; i++) {
			if (evs[i].data.u64 == ACCEPTQ_CTL)
				continue;       /* acceptq_sync() looks */
			woken = 1;
			if (aq->aq_on)
				got += acceptq_batch(aq, evs[i].data.u64);
		}
		if (woken) {
			acceptq_count(aq->aq_wakeups);
			if (got == 0)
				acceptq_count(aq->aq_empty);
		}
	}
	return NULL;
}

/* Tell the thread to look at aq_want and its credit again. */
static void
acceptq_kick(struct acceptq *aq)
{
	acceptq_signal(aq->aq_ctlfd);
}

/* The epoll set, the eventfds and the thread, its signals blocked. */
static int
acceptq_open(struct acceptq *aq)
{
	struct epoll_event ev;
	sigset_t all, old;
	int rc;

	aq->aq_epfd = epoll_create1(EPOLL_CLOEXEC);
	aq->aq_ctlfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	aq->aq_readyfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (aq->aq_epfd == -1 || aq->aq_ctlfd == -1 || aq->aq_readyfd == -1) {
		log_warn("epoll_create1/eventfd");
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = ACCEPTQ_CTL;
	if (epoll_ctl(aq->aq_epfd, EPOLL_CTL_ADD, aq->aq_ctlfd, &ev) == -1) {
		log_warn("epoll_ctl");
		return -1;
	}
	/* Can the kernel wake one?  (EPOLLEXCLUSIVE: Linux 4.5.) */
	acceptq_register(aq, 1);
	if (aq->aq_err != 0) {
		log_debug("epoll_ctl EPOLLEXCLUSIVE: %s", strerror(aq->aq_err));
		return -1;
	}
	acceptq_register(aq, 0);
	/* Signals are for the loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&aq->aq_thread, NULL, acceptq_main, aq);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_warnx("pthread_create: %s", strerror(rc));
		return -1;
	}
	aq->aq_running = 1;
	return 0;
}

struct acceptq *
acceptq_start(const int *fds, const int *admin, size_t n, int credit,
    uint64_t *wakeups, uint64_t *empty)
{
	struct acceptq *aq;

	aq = calloc(1, sizeof(*aq));
	if (aq == NULL) {
		log_warn("calloc");
		return NULL;
	}
	aq->aq_epfd = aq->aq_ctlfd = aq->aq_readyfd = -1;
	pthread_mutex_init(&aq->aq_lock, NULL);
	aq->aq_fds = calloc(n ? n : 1, sizeof(*aq->aq_fds));
	aq->aq_admin = calloc(n ? n : 1, sizeof(*aq->aq_admin));
	if (aq->aq_fds == NULL || aq->aq_admin == NULL) {
		log_warn("calloc");
		goto fail;
	}
	memcpy(aq->aq_fds, fds, n * sizeof(*fds));
	memcpy(aq->aq_admin, admin, n * sizeof(*admin));
	aq->aq_nfds = n;
	aq->aq_credit = credit;
	aq->aq_wakeups = wakeups;
	aq->aq_empty = empty;
	aq->aq_want = ACCEPTQ_OFF;
	if (acceptq_open(aq) == -1)
		goto fail;
	return aq;
fail:
	acceptq_free(aq);
	return NULL;
}

int
acceptq_fd(const struct acceptq *aq)
{
	return aq->aq_readyfd;
}

void
acceptq_set(struct acceptq *aq, int on)
{
	pthread_mutex_lock(&aq->aq_lock);
	if (aq->aq_want != ACCEPTQ_EXIT)
		aq->aq_want = on ? ACCEPTQ_ON : ACCEPTQ_OFF;
	pthread_mutex_unlock(&aq->aq_lock);
	acceptq_kick(aq);
}

/* Wake a thread that waits for room if there is some (under aq_lock). */
static int
acceptq_fed_locked(struct acceptq *aq)
{
	if (!aq->aq_starved || acceptq_room_locked(aq) <= 0)
		return 0;
	aq->aq_starved = 0;
	return 1;
}

void
acceptq_give(struct acceptq *aq, int n)
{
	int kick;

	pthread_mutex_lock(&aq->aq_lock);
	aq->aq_credit += n;
	kick = acceptq_fed_locked(aq);
	pthread_mutex_unlock(&aq->aq_lock);
	if (kick)
		acceptq_kick(aq);
}

void
acceptq_poke(struct acceptq *aq)
{
	pthread_mutex_lock(&aq->aq_lock);
	aq->aq_poke = 1;
	pthread_mutex_unlock(&aq->aq_lock);
	acceptq_kick(aq);
}

size_t
acceptq_take(struct acceptq *aq, struct acceptq_conn *out, size_t max)
{
	const char *call;
	size_t i;
	int err, kick;

	pthread_mutex_lock(&aq->aq_lock);
	for (i = 0; i < max && aq->aq_count > 0; i++) {
		out[i] = aq->aq_q[aq->aq_head];
		aq->aq_head = (aq->aq_head + 1) % ACCEPTQ_CAP;
		aq->aq_count--;
	}
	kick = acceptq_fed_locked(aq);
	err = aq->aq_err;
	call = aq->aq_err_call;
	aq->aq_err = 0;
	pthread_mutex_unlock(&aq->aq_lock);
	if (err != 0)
		log_warnx("%s: %s", call, strerror(err));
	if (kick)
		acceptq_kick(aq);
	return i;
}

void
acceptq_stop(struct acceptq *aq)
{
	if (!aq->aq_running)
		return;
	pthread_mutex_lock(&aq->aq_lock);
	aq->aq_want = ACCEPTQ_EXIT;
	pthread_mutex_unlock(&aq->aq_lock);
	acceptq_kick(aq);
	pthread_join(aq->aq_thread, NULL);
	aq->aq_running = 0;
	/* Off the listeners: the kernel wakes the other workers only. */
	if (aq->aq_epfd != -1) {
		close(aq->aq_epfd);
		aq->aq_epfd = -1;
	}
}

void
acceptq_free(struct acceptq *aq)
{
	struct acceptq_conn c;

	if (aq == NULL)
		return;
	acceptq_stop(aq);
	while (aq->aq_readyfd != -1 && acceptq_take(aq, &c, 1) == 1)
		close(c.ac_fd);
	if (aq->aq_epfd != -1)
		close(aq->aq_epfd);
	if (aq->aq_ctlfd != -1)
		close(aq->aq_ctlfd);
	if (aq->aq_readyfd != -1)
		close(aq->aq_readyfd);
	pthread_mutex_destroy(&aq->aq_lock);
	free(aq->aq_fds);
	free(aq->aq_admin);
	free(aq);
}
