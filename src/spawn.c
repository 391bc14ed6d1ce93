/*
 * spawn.c - forking a worker.
 *
 * Owns the fork of a worker and the child's first steps, up to
 * worker_run(): shedding what is the master's (the signal handlers, the
 * other workers' channels, the upgrade pipes, the pidfile's lock, the
 * sockets of another generation), opening the access log while still
 * root, dropping to the configured user, dying with the master, and
 * taking its metrics slot.  The parent's side records the worker in the
 * master's table (workertab.c).  When and how many to fork is the
 * master's (master.c), as ngx_spawn_process() is told by the cycle.
 *
 * Calls workertab.c, worker.c (worker_run() in the child), channel.c,
 * listen.c, metrics.c, accesslog.c, pidfile.c, signals.c, testenv.c and
 * log.c.  Called by master.c.
 */
#include "config.h"

#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "accesslog.h"
#include "channel.h"
#include "conf.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "pidfile.h"
#include "signals.h"
#include "spawn.h"
#include "testenv.h"
#include "worker.h"
#include "workertab.h"
#include "util.h"

/* In a freshly forked worker: only what it needs of the master's state. */
static void
spawn_shed(const struct spawn_ctx *sc)
{
	size_t i;

	signals_child();
	workertab_close_in_child(sc->sc_wt);
	for (i = 0; i < nitems(sc->sc_close); i++)
		if (sc->sc_close[i] != -1)
			close(sc->sc_close[i]);
	pidfile_close_in_child();
	listen_close_others(sc->sc_ls, sc->sc_use);
}

/*
 * For the test suite only: HITCOUNTD_TEST_READY_DELAY_MS makes each worker
 * of a reload's generation, or of the first generation of a master that a
 * binary upgrade started, wait that long before it starts, which widens
 * the window in which the old and the new configuration (or master) are
 * both alive.
 */
static void
spawn_test_delay(void)
{
	struct timespec ts;
	long ms = testenv_ms("HITCOUNTD_TEST_READY_DELAY_MS", 0);

	if (ms == 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
}

/*
 * Started as root: become cf's user before serving anything.  The master
 * keeps root to remove the pidfile and rebind on reload.  Returns 0 or -1.
 */
static int
spawn_drop_privileges(const struct conf *cf)
{
	if (geteuid() != 0 || cf->cf_uid == 0)
		return 0;
	if (setgroups(1, &cf->cf_gid) == -1) {
		log_warn("setgroups");
		return -1;
	}
	if (setgid(cf->cf_gid) == -1) {
		log_warn("setgid %ld", (long)cf->cf_gid);
		return -1;
	}
	if (setuid(cf->cf_uid) == -1) {
		log_warn("setuid %ld", (long)cf->cf_uid);
		return -1;
	}
	if (setuid(0) != -1) {
		log_warnx("could still regain root after dropping privileges");
		return -1;
	}
	return 0;
}

/* In the child of spawn_worker(): become a worker.  Never returns. */
static void
spawn_child(const struct spawn_ctx *sc, const struct conf *cf, int chan,
    int slot, pid_t master_pid)
{
	int *fds, *admin, nfds, rc;

	spawn_shed(sc);
	if (!sc->sc_debug)
		log_setlevel(cf->cf_log_level);
	log_setformat(cf->cf_log_format);
	/*
	 * Opened while still root: the log's directory need not be open to
	 * the workers' user (a reopen on USR1 as that user may fail, and then
	 * the worker keeps the file it has).
	 */
	if (accesslog_open(cf->cf_access_log) == -1 ||
	    spawn_drop_privileges(cf) == -1)
		_exit(WORKER_EXIT_NORESPAWN);
	/*
	 * An orphan must never keep port 5000: die with the master.  Set after
	 * setuid(), which clears it.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGINT) == -1)
		log_warn("prctl");
	if (getppid() != master_pid)
		_exit(0);               /* the master died before prctl() */
	if (sc->sc_delay)
		spawn_test_delay();
	nfds = listen_fds(sc->sc_ls, sc->sc_use, &fds, &admin);
	if (nfds == -1)
		_exit(WORKER_EXIT_NORESPAWN);
	metrics_slot_use(slot);
	rc = worker_run(cf, fds, admin, (size_t)nfds, chan);
	free(fds);
	/* exit(), not _exit(): leak checkers report at exit. */
	exit(rc);
}

int
spawn_worker(const struct spawn_ctx *sc, const struct conf *cf, int gen)
{
	int chan[2], slot;
	pid_t master_pid = getpid(), pid;

	if (workertab_reserve(sc->sc_wt) == -1)
		return -1;
	if (channel_open(chan) == -1)
		return -1;
	slot = metrics_slot_reserve(gen);
	pid = fork();
	if (pid == -1) {
		log_warn("fork");
		metrics_slot_release(slot);
		close(chan[0]);
		close(chan[1]);
		return -1;
	}
	if (pid == 0) {
		close(chan[0]);
		spawn_child(sc, cf, chan[1], slot, master_pid);
	}
	close(chan[1]);
	workertab_add(sc->sc_wt, pid, gen, slot, chan[0]);
	metrics_slot_attach(slot, pid, gen);
	log_debug("spawned worker %ld (generation %d)", (long)pid, gen);
	return 0;
}
