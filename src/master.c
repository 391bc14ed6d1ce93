/*
 * master.c - the master process: its loop and the decisions it takes.
 *
 * Owns the master's state (struct master: the configuration in force, a
 * reload or binary upgrade under way, the stop, the generation and how
 * many workers it should have) and every decision on it: replacing a
 * worker that died (or giving up on a crash storm), TTIN/TTOU, reload,
 * the upgrade's hand-over, drain and stop, and what systemd is told.
 * The mechanisms are elsewhere: the fork (spawn.c), the table of workers
 * and the commands to them (workertab.c), the signal dispositions
 * (signals.c), the new master's exec and pipe (upgrade.c), the sockets
 * (listen.c), the pidfile (pidfile.c), the sd_notify datagram
 * (sdnotify.c), the test suite's hooks (testenv.c).  Calls those,
 * conf.c, metrics.c, worker.c (worker_balance_init()), clock.c and log.c;
 * called by main.c (master_run()) only.
 *
 * The master binds the listening sockets (listen.c), forks the workers and
 * from then on only supervises: it never talks to Redis and never serves a
 * client, so nothing a client or Redis does can take it down.  Signal
 * handlers only set flags (signals.c); the loop below waits in ppoll()
 * with the signals unblocked, so each signal is handled in order, outside
 * any handler.  The master commands its workers over their channels
 * (channel.c, workertab.c), not by signals, so that it needs no
 * permission over workers running as another user; a signal is only the
 * fallback for a worker whose channel is gone.
 *
 * A reload (HUP) reads the config into a fresh struct, binds any new
 * address, starts a new generation of workers, waits until every one of
 * them reports on its channel that it is serving, and only then asks the
 * old generation to stop gracefully.  Until then the old workers keep
 * serving, and a broken config never replaces a good one.  A binary
 * upgrade (USR2, upgrade.c) does the same one level up: a new master
 * takes over the sockets, and this one drains once the new one serves.
 *
 * With shutdown_delay, TERM first only tells the workers to answer the
 * readiness probe with 503 while the listeners stay open, so that a load
 * balancer still routing here for a few seconds (a Kubernetes Service)
 * is served rather than refused; the graceful stop begins after the
 * delay, or at once on a second TERM or QUIT.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "channel.h"
#include "clock.h"
#include "conf.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "pidfile.h"
#include "redistls.h"
#include "sdnotify.h"
#include "signals.h"
#include "spawn.h"
#include "testenv.h"
#include "upgrade.h"
#include "worker.h"
#include "workertab.h"

#define MASTER_STORM_DEATHS     5       /* this many unexpected deaths ... */
#define MASTER_STORM_WINDOW_MS  10000   /* ... within this long: give up */
#define MASTER_READY_TIMEOUT_MS 10000   /* a new generation serves by then */
#define MASTER_FAST_KILL_MS     1000    /* INT: SIGKILL after this */
/*
 * After shutdown_timeout a worker ends itself; the master's SIGKILL comes
 * this much later, only for a worker that could not.
 */
#define MASTER_KILL_GRACE_MS    2000
#define MASTER_UPGRADE_TIMEOUT_MS 30000 /* a new master must serve by then */
#define MASTER_MAX_WORKERS      256     /* TTIN stops here */

struct master {
	struct conf *m_cf;              /* the configuration in force */
	struct conf *m_newcf;           /* a reload waiting for its workers */
	char *m_abort_why;              /* a given-up reload waiting for its
	                                   workers to be gone, or NULL */
	struct listen_set *m_ls;
	struct workertab m_wt;          /* the workers alive */
	int m_gen;                      /* current generation */
	int m_want;                     /* workers the generation should have */
	int m_stopping;                 /* 0, or 1 graceful, 2 fast */
	int m_draining;                 /* TERM seen, shutdown_delay running */
	uint64_t m_drain_deadline;      /* ... the graceful stop begins then */
	uint64_t m_stop_deadline;
	uint64_t m_reload_deadline;
	uint64_t m_deaths[MASTER_STORM_DEATHS];
	size_t m_ndeaths;
	int m_exit;
	int m_ready_notified;
	char m_note[224];               /* how the last reload or upgrade went */
	pid_t m_up_pid;                 /* a binary upgrade under way: new master */
	int m_up_fd;                    /* ... and its report pipe, or -1 */
	uint64_t m_up_deadline;
	int m_report_fd;                /* started by an upgrade: report here, */
	int m_reported;                 /* ... then wait for the old one's exit */
	int m_handed_over;              /* a new master serves: this one drains */
	int m_debug;                    /* -d: the log level stays at debug */
};

static int master_prepare_access_log(const struct conf *);

/* Fork one worker of generation gen with configuration cf (spawn.c). */
static int
master_spawn(struct master *m, const struct conf *cf, int gen)
{
	struct spawn_ctx sc;

	sc.sc_wt = &m->m_wt;
	sc.sc_ls = m->m_ls;
	sc.sc_use = gen == m->m_gen ? LISTEN_CUR : LISTEN_NEXT;
	sc.sc_debug = m->m_debug;
	/* A reload's generation, or the first of an upgrade's new master. */
	sc.sc_delay = gen > 0 || m->m_report_fd != -1;
	sc.sc_close[0] = m->m_up_fd;
	sc.sc_close[1] = m->m_report_fd;
	return spawn_worker(&sc, cf, gen);
}

static void
master_status(struct master *m)
{
	sdnotify_send("STATUS=%d workers serving%s%s",
	    workertab_count(&m->m_wt, m->m_gen, 1), m->m_note[0] ? "; " : "",
	    m->m_note);
}

static int
master_storm(struct master *m)
{
	uint64_t now = clock_ms();

	if (m->m_ndeaths == MASTER_STORM_DEATHS) {
		memmove(m->m_deaths, m->m_deaths + 1,
		    (MASTER_STORM_DEATHS - 1) * sizeof(m->m_deaths[0]));
		m->m_ndeaths--;
	}
	m->m_deaths[m->m_ndeaths++] = now;
	return m->m_ndeaths == MASTER_STORM_DEATHS &&
	    now - m->m_deaths[0] <= MASTER_STORM_WINDOW_MS;
}

static void
master_begin_stop(struct master *m, int how)
{
	uint64_t now = clock_ms();

	if (m->m_stopping >= how)
		return;
	if (m->m_stopping == 0 && !m->m_draining && !m->m_handed_over)
		sdnotify_send("STOPPING=1");
	m->m_stopping = how;
	if (how == 1) {
		log_info("graceful stop: waiting up to %d s for requests "
		    "in flight", m->m_cf->cf_shutdown_timeout);
		m->m_stop_deadline = now + MASTER_KILL_GRACE_MS +
		    (uint64_t)m->m_cf->cf_shutdown_timeout * 1000;
		workertab_stop_gen(&m->m_wt, -1, CHANNEL_STOP);
	} else {
		log_info("fast stop");
		m->m_stop_deadline = now + MASTER_FAST_KILL_MS;
		workertab_stop_gen(&m->m_wt, -1, CHANNEL_HALT);
	}
	/* Nothing new will be accepted: let the kernel refuse connections. */
	listen_close_all(m->m_ls);
}

/*
 * TERM with a shutdown_delay: unready now, stop later (master_advance()).
 * Workers spawned meanwhile are told too (master_maintain()).
 */
static void
master_begin_drain(struct master *m)
{
	if (!m->m_handed_over)
		sdnotify_send("STOPPING=1");
	m->m_draining = 1;
	m->m_drain_deadline = clock_ms() +
	    (uint64_t)m->m_cf->cf_shutdown_delay * 1000;
	log_info("shutdown_delay: unready, serving %d s more before the "
	    "graceful stop", m->m_cf->cf_shutdown_delay);
	workertab_command_all(&m->m_wt, CHANNEL_DRAIN);
}

static void
master_reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct wstate w;
		size_t i = workertab_find(&m->m_wt, pid);

		if (i == m->m_wt.wt_n)
			continue;       /* a new master of an upgrade, say */
		w = m->m_wt.wt_w[i];
		workertab_forget(&m->m_wt, i);
		if (w.ws_stopping) {
			log_debug("worker %ld exited", (long)pid);
			continue;
		}
		if (WIFSIGNALED(status))
			log_warnx("worker %ld killed by signal %d", (long)pid,
			    WTERMSIG(status));
		else
			log_warnx("worker %ld exited with status %d", (long)pid,
			    WEXITSTATUS(status));
		if (m->m_stopping)
			continue;
		if (WIFEXITED(status) &&
		    WEXITSTATUS(status) == WORKER_EXIT_NORESPAWN) {
			log_errorx("worker %ld cannot start; not replacing it",
			    (long)pid);
			if (w.ws_gen == m->m_gen)
				m->m_want--;
			continue;
		}
		if (master_storm(m)) {
			log_errorx("%d workers died within %d s: giving up",
			    MASTER_STORM_DEATHS, MASTER_STORM_WINDOW_MS / 1000);
			m->m_exit = 1;
			master_begin_stop(m, 2);
			continue;
		}
		if (w.ws_gen == m->m_gen)
			metrics_worker_restart();       /* master_maintain() replaces it */
	}
}

/*
 * The workers append to the access log file, and may no longer be root
 * when they reopen it: create it here, owned by the master's user and
 * writable by the workers' group (0660).  As its owner the master, and a
 * worker opening it before it drops root, need no CAP_DAC_OVERRIDE;
 * giving it to the group needs CAP_CHOWN.  Also how a bad path is
 * reported at start.  Returns 0 or -1.
 */
static int
master_prepare_access_log(const struct conf *cf)
{
	const char *path = cf->cf_access_log;
	int fd;

	if (path[0] == '\0' || strcmp(path, "stderr") == 0)
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0660);
	if (fd == -1) {
		log_warn("access_log %s", path);
		return -1;
	}
	if (geteuid() == 0 && cf->cf_uid != 0 &&
	    (fchown(fd, (uid_t)-1, cf->cf_gid) == -1 || fchmod(fd, 0660) == -1))
		log_warn("chown %s", path);
	close(fd);
	return 0;
}

/* Keep the current generation at m_want workers. */
static void
master_maintain(struct master *m)
{
	int n;

	if (m->m_stopping)
		return;
	n = workertab_count(&m->m_wt, m->m_gen, 1);
	while (n < m->m_want) {
		if (master_spawn(m, m->m_cf, m->m_gen) == -1)
			break;
		if (m->m_draining)
			workertab_command(&m->m_wt.wt_w[m->m_wt.wt_n - 1],
			    CHANNEL_DRAIN);
		n++;
	}
	while (n > m->m_want) {
		workertab_stop_one(&m->m_wt, m->m_gen);
		n--;
	}
	if (m->m_want <= 0 && workertab_count(&m->m_wt, m->m_gen, 1) == 0) {
		log_errorx("no worker is left to serve; exiting");
		m->m_exit = 1;
		master_begin_stop(m, 2);
	}
}

/* A reload that did not happen: say why, in the log and to systemd. */
static void
master_reload_failed(struct master *m, const char *why)
{
	log_warnx("reload failed, keeping the running configuration: %s",
	    why);
	snprintf(m->m_note, sizeof(m->m_note), "reload failed: %.200s", why);
	metrics_reload(0);
	sdnotify_send("READY=1");
	master_status(m);
}

static void
master_begin_reload(struct master *m)
{
	char err[512];
	struct conf *cf;
	int gen, i, n;

	if (m->m_newcf || m->m_abort_why || m->m_up_pid) {
		log_warnx("reload: a reload or binary upgrade is already under "
		    "way");
		return;
	}
	sdnotify_send("RELOADING=1");
	cf = conf_load(m->m_cf->cf_path, err, sizeof(err));
	if (cf != NULL && redistls_attach(cf, err, sizeof(err)) == -1) {
		conf_free(cf);
		cf = NULL;
	}
	if (cf == NULL) {
		master_reload_failed(m, err);
		return;
	}
	if (conf_reload_keep(cf, m->m_cf) == -1) {
		master_reload_failed(m, "out of memory");
		conf_free(cf);
		return;
	}
	if (master_prepare_access_log(cf) == -1) {
		master_reload_failed(m, "cannot open the access log");
		conf_free(cf);
		return;
	}
	if (listen_bind(m->m_ls, cf, LISTEN_NEXT) == -1) {
		listen_abort(m->m_ls);
		master_reload_failed(m, "cannot listen");
		conf_free(cf);
		return;
	}
	gen = m->m_gen + 1;
	n = conf_worker_count(cf);
	for (i = 0; i < n; i++)
		if (master_spawn(m, cf, gen) == -1)
			break;
	m->m_newcf = cf;
	m->m_reload_deadline = clock_ms() + MASTER_READY_TIMEOUT_MS;
	log_info("reload: configuration %s read, starting %d workers",
	    cf->cf_path, n);
}

/* Every new worker is serving: switch generations. */
static void
master_finish_reload(struct master *m)
{
	int old = m->m_gen;

	m->m_gen++;
	conf_free(m->m_cf);
	m->m_cf = m->m_newcf;
	m->m_newcf = NULL;
	m->m_want = conf_worker_count(m->m_cf);
	/* The log settings change with the generation, not before. */
	if (!m->m_debug)
		log_setlevel(m->m_cf->cf_log_level);
	log_setformat(m->m_cf->cf_log_format);
	workertab_stop_gen(&m->m_wt, old, CHANNEL_STOP);
	listen_commit(m->m_ls);
	metrics_set_generation(m->m_gen);
	metrics_reload(1);
	log_info("reload succeeded: %d workers of generation %d serving",
	    m->m_want, m->m_gen);
	snprintf(m->m_note, sizeof(m->m_note),
	    "reload succeeded (generation %d)", m->m_gen);
	sdnotify_send("READY=1");
	master_status(m);
}

/*
 * Give up a reload.  "reload failed" (and READY=1) must describe the state
 * it leaves: it is said by master_advance() once the given-up workers are
 * reaped, since until they are gone their copies keep the reload's
 * addresses open.
 */
static void
master_abort_reload(struct master *m, const char *why)
{
	/*
	 * Workers that never became ready may be stuck anywhere before their
	 * loop: besides the command, SIGKILL where the master may send it.
	 */
	workertab_stop_gen(&m->m_wt, m->m_gen + 1, CHANNEL_HALT);
	workertab_kill_gen(&m->m_wt, m->m_gen + 1);
	listen_abort(m->m_ls);
	conf_free(m->m_newcf);
	m->m_newcf = NULL;
	m->m_abort_why = strdup(why);
	if (m->m_abort_why == NULL) {
		log_warn("strdup");
		master_reload_failed(m, why);   /* early rather than never */
	}
}

/* USR2: start the binary on disk as a new master (upgrade.c). */
static void
master_begin_upgrade(struct master *m)
{
	if (m->m_stopping || m->m_draining || m->m_newcf || m->m_abort_why ||
	    m->m_up_pid) {
		log_warnx("USR2: a reload, binary upgrade or stop is under way; "
		    "not upgrading");
		return;
	}
	/*
	 * Not before this master serves: a USR2 sent to every process of the
	 * service also reaches the new master of the upgrade it started.
	 */
	if (!m->m_ready_notified) {
		log_warnx("USR2: not serving yet; not upgrading");
		return;
	}
	/* Nor while the master it took over from drains: one .oldbin. */
	if (m->m_report_fd != -1) {
		log_warnx("USR2: the previous master is still draining; not "
		    "upgrading");
		return;
	}
	if (pidfile_rename_oldbin() == -1)
		return;
	if (upgrade_start(m->m_ls, &m->m_up_pid, &m->m_up_fd) == -1) {
		pidfile_restore();
		m->m_up_pid = 0;
		m->m_up_fd = -1;
		snprintf(m->m_note, sizeof(m->m_note),
		    "binary upgrade failed: cannot start the new binary");
		master_status(m);
		return;
	}
	/* The test suite shortens the wait (it cannot wait 30 s a test). */
	m->m_up_deadline = clock_ms() + testenv_ms(
	    "HITCOUNTD_TEST_UPGRADE_TIMEOUT_MS", MASTER_UPGRADE_TIMEOUT_MS);
}

/* The new master serves: hand the service over and drain this one. */
static void
master_finish_upgrade(struct master *m, pid_t newpid)
{
	/* m_up_fd stays open until exit: its end of file tells the new one. */
	log_info("binary upgrade: new master %ld serves; stopping this one",
	    (long)newpid);
	/* It was reported here first: systemd hears it from the main pid. */
	sdnotify_send("MAINPID=%ld\nREADY=1\nSTATUS=binary upgrade: new master "
	    "%ld serving", (long)newpid, (long)newpid);
	m->m_handed_over = 1;
	master_begin_stop(m, 1);
}

static void
master_abort_upgrade(struct master *m, const char *why)
{
	log_errorx("binary upgrade failed, this master keeps serving: %s",
	    why);
	if (m->m_up_pid > 0 && kill(m->m_up_pid, SIGTERM) == -1 &&
	    errno != ESRCH)
		log_warn("kill %ld", (long)m->m_up_pid);
	close(m->m_up_fd);
	m->m_up_fd = -1;
	m->m_up_pid = 0;
	pidfile_restore();
	snprintf(m->m_note, sizeof(m->m_note), "binary upgrade failed: %.180s",
	    why);
	master_status(m);
}

static void
master_poll_upgrade(struct master *m)
{
	pid_t newpid;
	int rc;

	if (m->m_up_fd == -1 || m->m_handed_over)
		return;
	rc = upgrade_poll(m->m_up_fd, &newpid);
	if (rc == 1)
		master_finish_upgrade(m, newpid);
	else if (rc == -1)
		master_abort_upgrade(m, "the new master exited before it "
		    "served");
	else if (clock_ms() >= m->m_up_deadline)
		master_abort_upgrade(m, "the new master did not serve in time");
}

/*
 * Read what the workers' channels carry (only their readiness), and notice
 * the end of a hand-over this master took from an old one.
 */
static void
master_read_channels(struct master *m, const struct pollfd *pfd, size_t npfd)
{
	size_t i;

	for (i = 0; i < npfd; i++) {
		if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (pfd[i].fd == m->m_report_fd) {
			log_info("binary upgrade complete: the previous master "
			    "has exited");
			close(m->m_report_fd);
			m->m_report_fd = -1;
			continue;
		}
		workertab_read(&m->m_wt, pfd[i].fd);
	}
}

/* Act on the flags the signal handler set; see hitcountd(8), SIGNALS. */
static void
master_handle_signals(struct master *m)
{
	/*
	 * Stop requests first: Ctrl-C reaches the workers too, and their exit
	 * must not be taken for a crash and replaced.
	 */
	if (signals_take(SIGINT))
		master_begin_stop(m, 2);
	if (signals_take(SIGTERM)) {
		/*
		 * A second TERM during a graceful stop makes it fast; one
		 * during the shutdown_delay ends the delay.
		 */
		if (m->m_stopping)
			master_begin_stop(m, 2);
		else if (m->m_draining || m->m_cf->cf_shutdown_delay == 0)
			master_begin_stop(m, 1);
		else
			master_begin_drain(m);
	}
	if (signals_take(SIGCHLD))
		master_reap(m);
	if (signals_take(SIGHUP)) {
		if (!m->m_stopping && !m->m_draining)
			master_begin_reload(m);
	}
	if (signals_take(SIGUSR1)) {
		log_info("USR1: reopening log files");
		master_prepare_access_log(m->m_cf);
		workertab_command_all(&m->m_wt, CHANNEL_REOPEN);
	}
	if (signals_take(SIGTTIN)) {
		if (!m->m_stopping && m->m_want < MASTER_MAX_WORKERS) {
			m->m_want++;
			log_info("TTIN: %d workers", m->m_want);
		}
	}
	if (signals_take(SIGTTOU)) {
		if (!m->m_stopping && m->m_want > 1) {
			m->m_want--;
			log_info("TTOU: %d workers", m->m_want);
		}
	}
	if (signals_take(SIGUSR2)) {
		log_info("USR2: binary upgrade");
		master_begin_upgrade(m);
	}
	if (signals_take(SIGWINCH))
		log_info("WINCH ignored");
}

/* The descriptors to wait on: channels of workers not yet ready, upgrade. */
static size_t
master_pollset(struct master *m, struct pollfd **pfdp)
{
	struct pollfd *pfd;
	size_t n;

	pfd = realloc(*pfdp, (m->m_wt.wt_n + 2) * sizeof(*pfd));
	if (pfd == NULL)
		return 0;       /* the deadlines still advance the loop */
	*pfdp = pfd;
	n = workertab_pollfds(&m->m_wt, pfd);
	if (m->m_report_fd != -1 && m->m_reported) {
		pfd[n].fd = m->m_report_fd;     /* POLLERR: the old one is gone */
		pfd[n].events = 0;
		pfd[n++].revents = 0;
	}
	if (m->m_up_fd != -1 && !m->m_handed_over) {
		pfd[n].fd = m->m_up_fd;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
	return n;
}

/* How long ppoll() may sleep: until the nearest deadline, or forever. */
static struct timespec *
master_timeout(const struct master *m, struct timespec *ts)
{
	uint64_t now = clock_ms(), wake = 0, left;

	if (m->m_stopping)
		wake = m->m_stop_deadline;
	else if (m->m_draining)
		wake = m->m_drain_deadline;
	else if (m->m_newcf)
		wake = m->m_reload_deadline;
	if (m->m_up_fd != -1 && !m->m_handed_over &&
	    (wake == 0 || m->m_up_deadline < wake))
		wake = m->m_up_deadline;
	if (wake == 0)
		return NULL;
	left = wake > now ? wake - now : 0;
	ts->tv_sec = left / 1000;
	ts->tv_nsec = (left % 1000) * 1000000;
	return ts;
}

/* Deadlines and generations, after the events of one turn. */
static void
master_advance(struct master *m)
{
	uint64_t now = clock_ms();

	if (m->m_draining && !m->m_stopping && now >= m->m_drain_deadline)
		master_begin_stop(m, 1);
	if (m->m_stopping) {
		if (m->m_wt.wt_n > 0 && now >= m->m_stop_deadline) {
			log_warnx("%zu workers still running after the "
			    "deadline: killing them", m->m_wt.wt_n);
			workertab_kill_all(&m->m_wt);
			m->m_stop_deadline = now + 1000;
		}
		return;
	}
	if (m->m_newcf) {
		if (workertab_gen_ready(&m->m_wt, m->m_gen + 1))
			master_finish_reload(m);
		else if (now >= m->m_reload_deadline)
			master_abort_reload(m, "new workers did not become ready "
			    "in time");
		else if (workertab_count(&m->m_wt, m->m_gen + 1, 1) == 0)
			master_abort_reload(m, "new workers exited");
	}
	if (m->m_abort_why && workertab_count(&m->m_wt, m->m_gen + 1, 0) == 0) {
		master_reload_failed(m, m->m_abort_why);
		free(m->m_abort_why);
		m->m_abort_why = NULL;
	}
	master_maintain(m);
	if (!m->m_ready_notified && workertab_gen_ready(&m->m_wt, m->m_gen)) {
		m->m_ready_notified = 1;
		if (m->m_report_fd != -1) {
			/* The old master tells systemd (NotifyAccess=main). */
			if (upgrade_report_ready(m->m_report_fd) == 0)
				m->m_reported = 1;
			else {
				close(m->m_report_fd);
				m->m_report_fd = -1;
			}
		} else {
			sdnotify_send("READY=1\nMAINPID=%ld", (long)getpid());
			master_status(m);
		}
	}
}

int
master_run(struct conf *cf, struct listen_set *ls, int report_fd, int debug)
{
	struct master m;
	sigset_t unblocked;
	struct pollfd *pfd = NULL;

	memset(&m, 0, sizeof(m));
	m.m_cf = cf;
	m.m_ls = ls;
	m.m_up_fd = -1;
	m.m_report_fd = report_fd;
	m.m_debug = debug;
	m.m_want = conf_worker_count(cf);
	m.m_exit = 1;
	if (signals_master(&unblocked) == -1 || metrics_init() == -1 ||
	    master_prepare_access_log(cf) == -1)
		goto done;
	m.m_exit = 0;
	(void)worker_balance_init();    /* without it, workers only serve */
	log_info("%s %s started, %d workers", PACKAGE_NAME, PACKAGE_VERSION,
	    m.m_want);
	master_maintain(&m);

	while (!m.m_stopping || m.m_wt.wt_n > 0) {
		struct timespec ts;
		size_t npfd = master_pollset(&m, &pfd);

		if (ppoll(pfd, npfd, master_timeout(&m, &ts), &unblocked) == -1 &&
		    errno != EINTR)
			log_warn("ppoll");
		master_read_channels(&m, pfd, npfd);
		master_handle_signals(&m);
		master_poll_upgrade(&m);
		master_advance(&m);
	}
	log_info("exiting");
done:
	free(pfd);
	workertab_clear(&m.m_wt);
	listen_close_all(ls);
	if (m.m_up_fd != -1)
		close(m.m_up_fd);
	if (m.m_report_fd != -1)
		close(m.m_report_fd);
	conf_free(m.m_newcf);
	free(m.m_abort_why);
	conf_free(m.m_cf);
	return m.m_exit;
}
