/*
 * signals.c - the process-wide signal dispositions.
 *
 * Owns the list of the signals the master acts on, the handlers that only
 * record their arrival (signals_take() reads the record outside any
 * handler, so the master acts on each in its own loop, in order), the mask
 * that keeps them blocked except while the master waits, and what a
 * forked child resets before it has handlers of its own.  What each
 * signal means is the master's (master.c) and the worker's (worker.c,
 * which sets its own handlers on its event loop); see hitcountd(8),
 * SIGNALS.  Kept apart from the master's loop as nginx keeps
 * ngx_process.c apart from ngx_process_cycle.c: the fork of a worker
 * (spawn.c) and of a new master (upgrade.c) need the dispositions
 * without the loop.
 *
 * Calls only log.c.  Called by master.c, spawn.c and upgrade.c.
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "log.h"
#include "signals.h"
#include "util.h"

static const int signals_set[] = {
	SIGCHLD, SIGHUP, SIGTERM, SIGQUIT, SIGINT, SIGUSR1, SIGUSR2,
	SIGWINCH, SIGTTIN, SIGTTOU
};

/* signals_got[i]: signals_set[i] arrived and was not taken yet. */
static volatile sig_atomic_t signals_got[nitems(signals_set)];

/*
 * The master's signals that mean nothing to a worker: ignored from the
 * fork on, so that `systemctl kill` or `pkill` sending them to every
 * process of the service cannot stop or kill a worker.  See hitcountd(8),
 * SIGNALS.
 */
static const int signals_child_ignores[] = {
	SIGHUP, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU
};

static void
signals_on(int sig)
{
	size_t i;

	if (sig == SIGQUIT)
		sig = SIGTERM;          /* the same request: a graceful stop */
	for (i = 0; i < nitems(signals_set); i++)
		if (signals_set[i] == sig)
			signals_got[i] = 1;
}

int
signals_take(int sig)
{
	size_t i;

	for (i = 0; i < nitems(signals_set); i++)
		if (signals_set[i] == sig && signals_got[i]) {
			signals_got[i] = 0;
			return 1;
		}
	return 0;
}

int
signals_master(sigset_t *unblocked)
{
	struct sigaction sa;
	sigset_t block;
	size_t i;

	sigemptyset(&block);
	for (i = 0; i < nitems(signals_set); i++)
		sigaddset(&block, signals_set[i]);
	if (sigprocmask(SIG_BLOCK, &block, unblocked) == -1) {
		log_warn("sigprocmask");
		return -1;
	}
	/* A binary upgrade starts the new master with them blocked. */
	for (i = 0; i < nitems(signals_set); i++)
		sigdelset(unblocked, signals_set[i]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = signals_on;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < nitems(signals_set); i++)
		if (sigaction(signals_set[i], &sa, NULL) == -1) {
			log_warn("sigaction");
			return -1;
		}
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) == -1) {
		log_warn("sigaction");
		return -1;
	}
	return 0;
}

void
signals_child(void)
{
	struct sigaction sa;
	size_t i, j;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < nitems(signals_set); i++) {
		sa.sa_handler = SIG_DFL;
		for (j = 0; j < nitems(signals_child_ignores); j++)
			if (signals_child_ignores[j] == signals_set[i])
				sa.sa_handler = SIG_IGN;
		if (sigaction(signals_set[i], &sa, NULL) == -1)
			log_warn("sigaction");
	}
}
