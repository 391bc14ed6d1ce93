/*
 * worker.c - a worker process: taking connections from the listening
 * sockets, its signals and the master's commands, and stopping.
 *
 * The worker connects to Redis (counter.c), builds its routes (route.c)
 * and hands every accepted socket to conn.c, which serves it from the
 * worker's one libevent loop.  What is here is the process around that:
 * taking connections and pausing when out of descriptors or at
 * max_connections, keeping the workers' shares of the connections even
 * (Balance, below), the master's channel and the signals that mean the
 * same, and the graceful stop that lets open connections finish.
 *
 * A new connection wakes one worker, not all: a thread of the worker's
 * own (acceptq.c) waits on an EPOLLEXCLUSIVE set of the listeners and
 * accepts, because Linux grants EPOLLEXCLUSIVE's wake-one only to a task
 * waiting on the set directly, and libevent 2.1 can neither ask for it
 * nor be waited on; the loop serves what the thread accepted.  Chosen
 * over an accept mutex (a worker without it waits out a delay before it
 * may accept, nginx's accept_mutex_delay) and over a SO_REUSEPORT socket
 * per worker (closing one at a reload, TTOU or upgrade resets the
 * connections queued on it unless the host sets tcp_migrate_req, and a
 * busy worker keeps its share while others idle).  The thread never
 * touches the worker: stopping it is a join, after which the loop
 * answers what it had accepted.  Without EPOLLEXCLUSIVE or a thread,
 * libevent watches the sockets and every worker wakes.
 *
 * Called by spawn.c (worker_run() in the new child); calls down into
 * acceptq.c, conn.c, route.c (which installs its handler in conn.c),
 * counter.c, channel.c, accesslog.c, metrics.c and the common ground.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "acceptq.h"
#include "accesslog.h"
#include "channel.h"
#include "conf.h"
#include "conn.h"
#include "counter.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "timer.h"
#include "util.h"
#include "worker.h"

#define WORKER_ACCEPT_BATCH     8

struct worker;

/* A listening socket as the worker sees it. */
struct wlisten {
	struct worker *wl_w;
	int wl_fd;
	int wl_admin;
};

struct worker {
	const struct conf *w_cf;
	struct event_base *w_base;
	struct counter *w_counter;
	struct route_table *w_routes;
	struct conn_set w_cs;           /* the clients */
	const int *w_fds;
	size_t w_nfds;
	struct wlisten *w_wl;
	int w_has_admin;                /* /metrics only on admin listeners */
	struct event *w_logflush_ev;
	struct event **w_listen_ev;     /* without an accept thread */
	size_t w_nlisten_ev;
	struct acceptq *w_aq;           /* the accept thread (acceptq.c) */
	struct event *w_aq_ev;          /* it has sockets for us */
	int w_accepting;
	struct event *w_sig[4];
	struct event *w_stop_ev;        /* deadline of a graceful stop */
	struct event *w_drain_ev;       /* end of a shutdown_delay of its own */
	int w_drain_told;               /* the master said DRAIN: it stops us */
	int w_drain_signalled;          /* a TERM of our own began a delay */
	struct event *w_resume_ev;      /* accept again after EMFILE */
	int w_chan;                     /* the master's commands (channel.c) */
	struct event *w_chan_ev;
	struct event *w_kick_ev;        /* a sibling left connections to us */
	int w_declined;                 /* connections left to siblings in a row */
	int w_balance_paused;           /* off the listeners for a moment */
};

/*
 * Balance.  The kernel wakes the workers for new connections in no fair
 * order: 50 keep-alive connections opened at once could end 48 to 2, and
 * one worker then serves them on one core while the other idles, for as
 * long as they stay open.  A worker with more than WORKER_BALANCE_SLACK
 * connections over its least busy sibling leaves the next ones to the
 * siblings: it takes itself off the listeners for WORKER_BALANCE_PAUSE_US
 * and kicks them through an eventfd shared by every worker (the kernel
 * would not wake them for connections already waiting), at most
 * WORKER_DECLINE_MAX times in a row (a sibling that takes none, stopped
 * or stuck, must not stall accepting).
 */
#define WORKER_BALANCE_SLACK    2
#define WORKER_BALANCE_PAUSE_US 1000
#define WORKER_DECLINE_MAX      3

static int worker_kick_fd = -1;

/*
 * Be on the listeners or off them: through the accept thread, or, without
 * one, with libevent watching the sockets themselves.
 */
static void
worker_listen_events(struct worker *w, int on)
{
	size_t i;

	if (w->w_aq != NULL) {
		acceptq_set(w->w_aq, on);
		return;
	}
	for (i = 0; i < w->w_nlisten_ev; i++) {
		if (on)
			event_add(w->w_listen_ev[i], NULL);
		else
			event_del(w->w_listen_ev[i]);
	}
}

/* Tell the siblings whether this worker takes connections (see Balance). */
static void
worker_publish(const struct worker *w)
{
	if (metrics_self != NULL)
		__atomic_store_n(&metrics_self->mw_accepting, !w->w_accepting ?
		    0 : w->w_balance_paused ? 2 : 1, __ATOMIC_RELAXED);
}

/*
 * Take connections or not.  A pause for balance keeps the worker counted
 * as taking them (mw_accepting): siblings must not think themselves alone.
 */
static void
worker_set_accepting(struct worker *w, int on)
{
	if (w->w_accepting == on)
		return;
	w->w_balance_paused = 0;
	worker_listen_events(w, on);
	w->w_accepting = on;
	worker_publish(w);
}

/* Whether to leave the next connection to a sibling (see Balance). */
static int
worker_ahead(struct worker *w)
{
	uint64_t fewest;

	if (metrics_self == NULL || worker_kick_fd == -1)
		return 0;
	fewest = metrics_sibling_fewest_conns();
	if (fewest == UINT64_MAX ||
	    metrics_self->mw_conns_open <= fewest + WORKER_BALANCE_SLACK) {
		w->w_declined = 0;
		return 0;
	}
	if (w->w_declined >= WORKER_DECLINE_MAX)
		return 0;
	w->w_declined++;
	return 1;
}

/* Leave new connections to the siblings for a moment, and wake them. */
static void
worker_balance_pause(struct worker *w)
{
	uint64_t one = 1;

	worker_listen_events(w, 0);
	w->w_balance_paused = 1;
	__atomic_store_n(&metrics_self->mw_wake, 0, __ATOMIC_RELAXED);
	worker_publish(w);
	timer_arm_us(w->w_resume_ev, WORKER_BALANCE_PAUSE_US);
	metrics_sibling_wake();
	if (write(worker_kick_fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("write eventfd");
}

/* Exit the loop once a graceful stop has nothing left to finish. */
static void
worker_check_done(struct worker *w)
{
	if (w->w_cs.cs_stopping && w->w_cs.cs_nconns == 0)
		event_base_loopbreak(w->w_base);
}

/* A client's socket was closed: there may be room for another. */
static void
worker_on_conn_closed(void *arg)
{
	struct worker *w = arg;

	if (w->w_aq != NULL)
		acceptq_give(w->w_aq, 1);
	if (!w->w_cs.cs_stopping && !w->w_accepting &&
	    w->w_cs.cs_nconns < w->w_cf->cf_max_connections &&
	    !evtimer_pending(w->w_resume_ev, NULL))
		worker_set_accepting(w, 1);
	worker_check_done(w);
}

/*
 * Accept a batch of connections from one listening socket.  Returns how
 * many were taken.
 */
static int
worker_accept_from(struct wlisten *wl)
{
	struct worker *w = wl->wl_w;
	int fd = wl->wl_fd, i;

	for (i = 0; i < WORKER_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen;
		int s;

		if (w->w_cs.cs_nconns >= w->w_cf->cf_max_connections) {
			worker_set_accepting(w, 0);
			return i;
		}
		if (worker_ahead(w)) {
			worker_balance_pause(w);
			return i;
		}
		sslen = sizeof(ss);
		s = accept4(fd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s == -1) {
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED)
				return i;
			log_warn("accept");
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: pause instead of spinning. */
				worker_set_accepting(w, 0);
				timer_arm_ms(w->w_resume_ev, 100);
			}
			return i;
		}
		if (conn_new(&w->w_cs, s, &ss, wl->wl_admin) == -1)
			return i + 1;
	}
	return i;
}

/* Count a wakeup for new connections, and whether it found any. */
static void
worker_count_wakeup(int accepted)
{
	METRICS_ADD(mw_accept_wakeups, 1);
	if (accepted == 0)
		METRICS_ADD(mw_accept_empty, 1);
}

static void
worker_on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_count_wakeup(worker_accept_from(arg));
}

/*
 * The accept thread has sockets for us: serve them all, whatever comes
 * (they are accepted; a client waits on each), then see whether to leave
 * the next ones to the siblings (Balance).
 */
static void
worker_on_acceptq(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct acceptq_conn got[16];
	size_t i, n;

	(void)fd;
	(void)what;
	do {
		n = acceptq_take(w->w_aq, got, nitems(got));
		for (i = 0; i < n; i++)
			if (conn_new(&w->w_cs, got[i].ac_fd, &got[i].ac_ss,
			    got[i].ac_admin) == -1)
				acceptq_give(w->w_aq, 1);
	} while (n == nitems(got));
	if (w->w_accepting && !w->w_balance_paused && worker_ahead(w))
		worker_balance_pause(w);
}

/*
 * Wake only one worker per new connection.  Every worker takes
 * connections from the same listening sockets; with plain epoll each
 * connection wakes them all and all but one find nothing to accept.  The
 * accept thread (acceptq.c, which says why a thread) waits on an
 * EPOLLEXCLUSIVE set itself, the only way the kernel wakes one.  Without
 * it (a kernel before 4.5, no thread), libevent watches the sockets and
 * every worker wakes.  Returns 0 or -1.
 */
static int
worker_listen_init(struct worker *w, const int *admin)
{
	uint64_t *wakeups = NULL, *empty = NULL;
	size_t i;

	if (metrics_self != NULL) {
		wakeups = &metrics_self->mw_accept_wakeups;
		empty = &metrics_self->mw_accept_empty;
	}
	w->w_aq = acceptq_start(w->w_fds, admin, w->w_nfds,
	    w->w_cf->cf_max_connections, wakeups, empty);
	if (w->w_aq != NULL) {
		w->w_aq_ev = event_new(w->w_base, acceptq_fd(w->w_aq),
		    EV_READ | EV_PERSIST | EV_ET, worker_on_acceptq, w);
		return w->w_aq_ev == NULL || event_add(w->w_aq_ev, NULL) == -1 ?
		    -1 : 0;
	}
	for (i = 0; i < w->w_nfds; i++) {
		w->w_listen_ev[i] = event_new(w->w_base, w->w_fds[i],
		    EV_READ | EV_PERSIST, worker_on_accept, &w->w_wl[i]);
		if (w->w_listen_ev[i] == NULL)
			return -1;
		w->w_nlisten_ev = i + 1;
	}
	return 0;
}

/* The end of a pause for balance: on the listeners again. */
static void
worker_balance_resume(struct worker *w)
{
	w->w_balance_paused = 0;
	event_del(w->w_resume_ev);
	if (w->w_accepting)
		worker_listen_events(w, 1);
	worker_publish(w);
}

static void
worker_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (w->w_balance_paused) {
		worker_balance_resume(w);
		return;
	}
	if (!w->w_cs.cs_stopping &&
	    w->w_cs.cs_nconns < w->w_cf->cf_max_connections)
		worker_set_accepting(w, 1);
}

/* A sibling paused for balance: take the connections it left waiting. */
static void
worker_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t n;
	size_t i;

	(void)what;
	/*
	 * Edge-triggered, so that the worker that kicked, woken too, leaves
	 * the count for the others to see.  A paused worker carries on only
	 * if the kicker asked it to (it is pausing in turn).
	 */
	if (w->w_balance_paused && metrics_self != NULL &&
	    __atomic_exchange_n(&metrics_self->mw_wake, 0, __ATOMIC_RELAXED))
		worker_balance_resume(w);
	if (!w->w_accepting || w->w_balance_paused)
		return;
	if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		log_warn("read eventfd");
	if (w->w_aq != NULL) {
		acceptq_poke(w->w_aq);
		return;
	}
	for (i = 0; i < w->w_nfds; i++)
		worker_accept_from(&w->w_wl[i]);
}

int
worker_balance_init(void)
{
	worker_kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (worker_kick_fd == -1) {
		log_warn("eventfd (workers will not balance their connections)");
		return -1;
	}
	return 0;
}

static void
worker_stop(struct worker *w, int graceful)
{
	size_t i;

	if (!graceful) {
		event_base_loopbreak(w->w_base);
		return;
	}
	if (w->w_cs.cs_stopping)
		return;
	log_debug("worker stopping, %d connections open", w->w_cs.cs_nconns);
	worker_set_accepting(w, 0);
	event_del(w->w_resume_ev);
	if (w->w_aq != NULL) {
		/* No accepting from here on; what was accepted is answered. */
		acceptq_stop(w->w_aq);
		worker_on_acceptq(-1, 0, w);
	}
	for (i = 0; i < w->w_nfds; i++)
		close(w->w_fds[i]);
	conn_set_stop(&w->w_cs);
	timer_arm_ms(w->w_stop_ev, w->w_cf->cf_shutdown_timeout * 1000L);
	worker_check_done(w);
}

/*
 * Unready but serving (shutdown_delay), because the master said DRAIN
 * (told) or a TERM reached this worker itself (systemd signals the whole
 * control group), in either order.  Told, the worker waits for the
 * master's STOP; signalled alone, it keeps a timer of its own, so that it
 * stops after the delay as it would have at once without one.
 */
static void
worker_drain(struct worker *w, int told)
{
	log_debug("draining: /readyz answers 503 from now on");
	route_set_draining(w->w_routes);
	if (told) {
		w->w_drain_told = 1;
		event_del(w->w_drain_ev);
		return;
	}
	w->w_drain_signalled = 1;
	if (!w->w_drain_told)
		timer_arm_ms(w->w_drain_ev, w->w_cf->cf_shutdown_delay * 1000L);
}

static void
worker_on_drain_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_stop(arg, 1);
}

/* Do what the master asked (channel.c), or what a signal meant the same. */
static void
worker_command(struct worker *w, int msg)
{
	switch (msg) {
	case CHANNEL_DRAIN:
		worker_drain(w, 1);
		break;
	case CHANNEL_STOP:
		worker_stop(w, 1);
		break;
	case CHANNEL_HALT:
		worker_stop(w, 0);
		break;
	case CHANNEL_REOPEN:
		if (accesslog_reopen() == 0)
			log_debug("access log reopened");
		break;
	default:
		log_warnx("channel: unknown command 0x%02x", (unsigned)msg);
	}
}

/*
 * Signals reaching a worker directly (Ctrl-C, `systemctl kill`, or the
 * master's fallback when the channel is gone) mean what the channel's
 * commands mean: a first TERM or QUIT, with a shutdown_delay, the delay
 * and then the stop, as for the master.  The master's other signals are
 * ignored in workers.
 */
static void
worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct worker *w = arg;

	(void)what;
	if ((sig == SIGTERM || sig == SIGQUIT) && !w->w_drain_signalled &&
	    !w->w_cs.cs_stopping && w->w_cf->cf_shutdown_delay > 0) {
		worker_drain(w, 0);
		return;
	}
	worker_command(w, sig == SIGINT ? CHANNEL_HALT :
	    sig == SIGUSR1 ? CHANNEL_REOPEN : CHANNEL_STOP);
}

/*
 * The worker ends itself at shutdown_timeout, whether or not the master
 * may kill it (a master without CAP_KILL over another user's process).
 */
static void
worker_on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	log_warnx("shutdown_timeout reached with %d connections open",
	    w->w_cs.cs_nconns);
	event_base_loopbreak(w->w_base);
}

/* A command from the master, or end of file: the master is gone. */
static void
worker_on_channel(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	char buf[16];
	int i, n;

	(void)what;
	n = channel_recv(fd, buf, sizeof(buf));
	if (n == -1) {
		if (errno != EAGAIN)
			log_warn("channel");
		return;
	}
	if (n == 0) {
		log_warnx("master is gone, exiting");
		event_del(w->w_chan_ev);
		worker_stop(w, 0);
		return;
	}
	for (i = 0; i < n; i++)
		worker_command(w, (unsigned char)buf[i]);
}

static void
worker_free(struct worker *w)
{
	size_t i;

	if (w->w_aq != NULL)
		acceptq_stop(w->w_aq);  /* accepts nothing while all closes */
	conn_set_free(&w->w_cs);
	/* Fails what is still in flight and frees the conns it refers to. */
	counter_free(w->w_counter);
	route_table_free(w->w_routes);
	for (i = 0; w->w_listen_ev && i < w->w_nfds; i++)
		if (w->w_listen_ev[i])
			event_free(w->w_listen_ev[i]);
	free(w->w_listen_ev);
	if (w->w_aq_ev)
		event_free(w->w_aq_ev);
	acceptq_free(w->w_aq);
	for (i = 0; i < nitems(w->w_sig); i++)
		if (w->w_sig[i])
			event_free(w->w_sig[i]);
	if (w->w_stop_ev)
		event_free(w->w_stop_ev);
	if (w->w_resume_ev)
		event_free(w->w_resume_ev);
	if (w->w_drain_ev)
		event_free(w->w_drain_ev);
	if (w->w_kick_ev)
		event_free(w->w_kick_ev);
	if (w->w_chan_ev)
		event_free(w->w_chan_ev);
	if (w->w_chan != -1)
		close(w->w_chan);
	if (w->w_logflush_ev)
		event_free(w->w_logflush_ev);
	accesslog_close();
	free(w->w_wl);
	if (w->w_base)
		event_base_free(w->w_base);
}

static void
worker_on_logflush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	accesslog_flush();
}

/*
 * The first attempt to reach Redis has ended: only now take clients and
 * tell the master this worker serves.  A worker that took clients while
 * it was still resolving the Redis host would answer them 503, which a
 * reload or a new worker (TTIN) must not cost.
 */
static void
worker_on_counter_settled(void *arg)
{
	struct worker *w = arg;

	if (!w->w_cs.cs_stopping)
		worker_set_accepting(w, 1);
	log_info("worker started");
	if (w->w_chan != -1 && channel_send(w->w_chan, CHANNEL_READY) == -1)
		log_warn("channel");
}

/*
 * The worker's own events: signals, the channel, timers.  The signals
 * were blocked since the fork (master.c); they are let in only now that
 * their handlers are in place.  Returns 0 or -1.
 */
static int
worker_init_events(struct worker *w)
{
	static const int sigs[] = { SIGTERM, SIGQUIT, SIGINT, SIGUSR1 };
	struct timeval tv = { 1, 0 };
	sigset_t none;
	size_t i;

	for (i = 0; i < nitems(sigs); i++) {
		w->w_sig[i] = evsignal_new(w->w_base, sigs[i], worker_on_signal,
		    w);
		if (w->w_sig[i] == NULL || event_add(w->w_sig[i], NULL) == -1)
			return -1;
	}
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) == -1) {
		log_warn("sigprocmask");
		return -1;
	}
	w->w_stop_ev = evtimer_new(w->w_base, worker_on_stop_deadline, w);
	w->w_drain_ev = evtimer_new(w->w_base, worker_on_drain_end, w);
	w->w_resume_ev = evtimer_new(w->w_base, worker_on_resume, w);
	w->w_logflush_ev = event_new(w->w_base, -1, EV_PERSIST,
	    worker_on_logflush, w);
	if (w->w_stop_ev == NULL || w->w_drain_ev == NULL ||
	    w->w_resume_ev == NULL ||
	    w->w_logflush_ev == NULL || event_add(w->w_logflush_ev, &tv) == -1)
		return -1;
	if (w->w_chan != -1) {
		w->w_chan_ev = event_new(w->w_base, w->w_chan,
		    EV_READ | EV_PERSIST, worker_on_channel, w);
		if (w->w_chan_ev == NULL || event_add(w->w_chan_ev, NULL) == -1)
			return -1;
	}
	if (worker_kick_fd != -1) {
		w->w_kick_ev = event_new(w->w_base, worker_kick_fd,
		    EV_READ | EV_PERSIST | EV_ET, worker_on_kick, w);
		if (w->w_kick_ev == NULL || event_add(w->w_kick_ev, NULL) == -1)
			return -1;
	}
	return 0;
}

int
worker_run(const struct conf *cf, const int *fds, const int *admin,
    size_t nfds, int chan)
{
	struct worker w;
	size_t i;
	int rc = WORKER_EXIT_NORESPAWN;

	memset(&w, 0, sizeof(w));
	w.w_cf = cf;
	w.w_fds = fds;
	w.w_nfds = nfds;
	w.w_chan = chan;
	w.w_base = event_base_new();
	w.w_listen_ev = calloc(nfds ? nfds : 1, sizeof(*w.w_listen_ev));
	w.w_wl = calloc(nfds ? nfds : 1, sizeof(*w.w_wl));
	if (w.w_base == NULL || w.w_listen_ev == NULL || w.w_wl == NULL ||
	    worker_init_events(&w) == -1 ||
	    conn_set_init(&w.w_cs, w.w_base, cf, worker_on_conn_closed,
	    &w) == -1) {
		log_warnx("worker: cannot initialise");
		goto done;
	}
	for (i = 0; i < nfds; i++) {
		w.w_wl[i].wl_w = &w;
		w.w_wl[i].wl_fd = fds[i];
		w.w_wl[i].wl_admin = admin[i];
		w.w_has_admin |= admin[i];
	}
	/* Normally opened by the master's child before it gave up root. */
	if (!accesslog_enabled() && accesslog_open(cf->cf_access_log) == -1)
		goto done;
	if (worker_listen_init(&w, admin) == -1) {
		log_warnx("worker: cannot initialise");
		goto done;
	}
	w.w_counter = counter_new(w.w_base, cf, worker_on_counter_settled, &w);
	if (w.w_counter == NULL) {
		log_warnx("worker: cannot set up the Redis client");
		goto done;
	}
	w.w_routes = route_table_new(cf, w.w_counter, w.w_has_admin);
	if (w.w_routes == NULL) {
		log_warnx("worker: cannot initialise");
		goto done;
	}
	route_install(w.w_routes, &w.w_cs);

	event_base_dispatch(w.w_base);
	rc = 0;
	log_info("worker exiting");
done:
	worker_free(&w);
	return rc;
}
