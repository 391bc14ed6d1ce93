/*
 * master.c - the master process: workers, signals, reloads, upgrades.
 *
 * The master binds the listening sockets (listen.c), forks the workers and
 * from then on only supervises: it never talks to Redis and never serves a
 * client, so nothing a client or Redis does can take it down.  Signal
 * handlers only set flags; the loop below waits in ppoll() with the
 * signals unblocked, so each signal is handled in order, outside any
 * handler.  The master commands its workers over their channels
 * (channel.c), not by signals, so that it needs no permission over
 * workers running as another user; a signal is only the fallback for a
 * worker whose channel is gone.
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
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <grp.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "accesslog.h"
#include "channel.h"
#include "clock.h"
#include "conf.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "pidfile.h"
#include "redistls.h"
#include "upgrade.h"
#include "worker.h"
#include "util.h"

#define MASTER_STORM_DEATHS     5       /* this many unexpected deaths ... */
#define MASTER_STORM_WINDOW_MS  10000   /* ... within this long: give up */
#define MASTER_READY_TIMEOUT_MS 10000   /* a new generation must be up by then */
#define MASTER_FAST_KILL_MS     1000    /* INT: SIGKILL after this */
/*
 * After shutdown_timeout a worker ends itself; the master's SIGKILL comes
 * this much later, only for a worker that could not.
 */
#define MASTER_KILL_GRACE_MS    2000
#define MASTER_UPGRADE_TIMEOUT_MS 30000 /* a new master must serve by then */
#define MASTER_MAX_WORKERS      256     /* TTIN stops here */

struct mworker {
	pid_t w_pid;
	int w_slot;                     /* its metrics slot, or -1 */
	int w_gen;
	int w_chan;                     /* master's end of the channel, or -1 */
	int w_ready;
	int w_stopping;                 /* told to stop: its exit is expected */
	int w_killed;                   /* SIGKILL tried once already */
};

struct master {
	struct conf *m_cf;              /* the configuration in force */
	struct conf *m_newcf;           /* a reload waiting for its workers */
	char *m_abort_why;              /* a given-up reload waiting for its
	                                   workers to be gone, or NULL */
	struct listen_set *m_ls;
	struct mworker *m_w;
	size_t m_nw, m_capw;
	int m_gen;                      /* current generation */
	int m_want;                     /* workers the current generation should have */
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

static volatile sig_atomic_t got_chld, got_hup, got_term, got_int, got_usr1;
static volatile sig_atomic_t got_ttin, got_ttou, got_usr2, got_winch;

static void
master_on_signal(int sig)
{
	switch (sig) {
	case SIGCHLD: got_chld = 1; break;
	case SIGHUP: got_hup = 1; break;
	case SIGTERM:
	case SIGQUIT: got_term = 1; break;
	case SIGINT: got_int = 1; break;
	case SIGUSR1: got_usr1 = 1; break;
	case SIGUSR2: got_usr2 = 1; break;
	case SIGWINCH: got_winch = 1; break;
	case SIGTTIN: got_ttin = 1; break;
	case SIGTTOU: got_ttou = 1; break;
	}
}

static const int master_signals[] = {
	SIGCHLD, SIGHUP, SIGTERM, SIGQUIT, SIGINT, SIGUSR1, SIGUSR2,
	SIGWINCH, SIGTTIN, SIGTTOU
};
#define MASTER_NSIGNALS nitems(master_signals)

/*
 * The master's signals that mean nothing to a worker: ignored from the
 * fork on, so that `systemctl kill` or `pkill` sending them to every
 * process of the service cannot stop or kill a worker.  See hitcountd(8),
 * SIGNALS.
 */
static const int master_worker_ignores[] = {
	SIGHUP, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU
};

/*
 * Tell systemd (or whatever set NOTIFY_SOCKET) about the daemon's state,
 * as sd_notify(3) does, without linking libsystemd.
 */
static void
master_notify(const char *fmt, ...) LOG_PRINTF(1, 2);

static void
master_notify(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	char msg[256];
	va_list ap;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';         /* abstract namespace */
	len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("socket");
		return;
	}
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) == -1)
		log_warn("sd_notify");
	close(fd);
}

void
master_child_signals(void)
{
	struct sigaction sa;
	size_t i, j;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < MASTER_NSIGNALS; i++) {
		sa.sa_handler = SIG_DFL;
		for (j = 0; j < nitems(master_worker_ignores); j++)
			if (master_worker_ignores[j] == master_signals[i])
				sa.sa_handler = SIG_IGN;
		if (sigaction(master_signals[i], &sa, NULL) == -1)
			log_warn("sigaction");
	}
}

/* In a freshly forked worker: only what it needs of the master's state. */
static void
master_child_setup(struct master *m, unsigned use)
{
	size_t i;

	master_child_signals();
	for (i = 0; i < m->m_nw; i++)
		if (m->m_w[i].w_chan != -1)
			close(m->m_w[i].w_chan);
	if (m->m_up_fd != -1)
		close(m->m_up_fd);
	if (m->m_report_fd != -1)
		close(m->m_report_fd);
	pidfile_close_in_child();
	listen_close_others(m->m_ls, use);
}

/*
 * For the test suite only: the milliseconds in environment variable name,
 * from 1 to 60000, else dflt.
 */
static long
master_test_ms(const char *name, long dflt)
{
	const char *s = getenv(name);
	long ms;

	if (s == NULL || (ms = strtol(s, NULL, 10)) <= 0 || ms > 60000)
		return dflt;
	return ms;
}

/*
 * For the test suite only: HITCOUNTD_TEST_READY_DELAY_MS makes each worker
 * of a reload's generation, or of the first generation of a master that a
 * binary upgrade started, wait that long before it starts, which widens
 * the window in which the old and the new configuration (or master) are
 * both alive.
 */
static void
master_test_delay(void)
{
	struct timespec ts;
	long ms = master_test_ms("HITCOUNTD_TEST_READY_DELAY_MS", 0);

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
master_drop_privileges(const struct conf *cf)
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

/* In the child of master_spawn(): become a worker.  Never returns. */
static void
master_become_worker(struct master *m, const struct conf *cf, int gen,
    int chan, int slot, pid_t master_pid)
{
	unsigned use = gen == m->m_gen ? LISTEN_CUR : LISTEN_NEXT;
	int *fds, *admin, nfds, rc, upgrading = m->m_report_fd != -1;

	master_child_setup(m, use);
	if (!m->m_debug)
		log_setlevel(cf->cf_log_level);
	log_setformat(cf->cf_log_format);
	/*
	 * Opened while still root: the log's directory need not be open to
	 * the workers' user (a reopen on USR1 as that user may fail, and then
	 * the worker keeps the file it has).
	 */
	if (accesslog_open(cf->cf_access_log) == -1 ||
	    master_drop_privileges(cf) == -1)
		_exit(WORKER_EXIT_NORESPAWN);
	/*
	 * An orphan must never keep port 5000: die with the master.  Set after
	 * setuid(), which clears it.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGINT) == -1)
		log_warn("prctl");
	if (getppid() != master_pid)
		_exit(0);               /* the master died before prctl() */
	if (gen > 0 || upgrading)
		master_test_delay();
	nfds = listen_fds(m->m_ls, use, &fds, &admin);
	if (nfds == -1)
		_exit(WORKER_EXIT_NORESPAWN);
	metrics_slot_use(slot);
	rc = worker_run(cf, fds, admin, (size_t)nfds, chan);
	free(fds);
	/* exit(), not _exit(): leak checkers report at exit. */
	exit(rc);
}

/* Fork one worker of generation gen with configuration cf. */
static int
master_spawn(struct master *m, const struct conf *cf, int gen)
{
	struct mworker *w;
	int chan[2], slot;
	pid_t master_pid = getpid(), pid;

	if (m->m_nw == m->m_capw) {
		size_t ncap = m->m_capw ? m->m_capw * 2 : 8;

		w = realloc(m->m_w, ncap * sizeof(*w));
		if (w == NULL) {
			log_warn("realloc");
			return -1;
		}
		m->m_w = w;
		m->m_capw = ncap;
	}
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
		master_become_worker(m, cf, gen, chan[1], slot, master_pid);
	}
	close(chan[1]);
	w = &m->m_w[m->m_nw++];
	memset(w, 0, sizeof(*w));
	w->w_pid = pid;
	w->w_gen = gen;
	w->w_slot = slot;
	w->w_chan = chan[0];
	metrics_slot_attach(slot, pid, gen);
	log_debug("spawned worker %ld (generation %d)", (long)pid, gen);
	return 0;
}

static int
master_count(const struct master *m, int gen, int running_only)
{
	size_t i;
	int n = 0;

	for (i = 0; i < m->m_nw; i++)
		if (m->m_w[i].w_gen == gen &&
		    (!running_only || !m->m_w[i].w_stopping))
			n++;
	return n;
}

/*
 * Send a command over the worker's channel; only if the channel is gone,
 * fall back to the signal that means the same to a worker.
 */
static void
master_command(struct mworker *w, enum channel_msg msg)
{
	int sig;

	if (w->w_chan != -1 && channel_send(w->w_chan, msg) == 0)
		return;
	switch (msg) {
	case CHANNEL_STOP: sig = SIGTERM; break;
	case CHANNEL_HALT: sig = SIGINT; break;
	case CHANNEL_REOPEN: sig = SIGUSR1; break;
	default: return;
	}
	log_debug("worker %ld: channel closed, sending signal %d",
	    (long)w->w_pid, sig);
	if (kill(w->w_pid, sig) == -1 && errno != ESRCH)
		log_warn("kill %ld", (long)w->w_pid);
}

/* Ask every worker of generation gen (or all, for gen -1) to stop. */
static void
master_stop_gen(struct master *m, int gen, enum channel_msg how)
{
	size_t i;

	for (i = 0; i < m->m_nw; i++) {
		if (gen != -1 && m->m_w[i].w_gen != gen)
			continue;
		m->m_w[i].w_stopping = 1;
		master_command(&m->m_w[i], how);
	}
}

/* The last resort for workers that outlived their own deadline. */
static void
master_kill_all(struct master *m)
{
	size_t i;

	for (i = 0; i < m->m_nw; i++) {
		struct mworker *w = &m->m_w[i];

		if (kill(w->w_pid, SIGKILL) == -1 && errno != ESRCH &&
		    !w->w_killed)
			log_warn("kill %ld", (long)w->w_pid);
		w->w_killed = 1;
	}
}

static void
master_status(struct master *m)
{
	master_notify("STATUS=%d workers serving%s%s",
	    master_count(m, m->m_gen, 1), m->m_note[0] ? "; " : "", m->m_note);
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
		master_notify("STOPPING=1");
	m->m_stopping = how;
	if (how == 1) {
		log_info("graceful stop: waiting up to %d s for requests "
		    "in flight", m->m_cf->cf_shutdown_timeout);
		m->m_stop_deadline = now + MASTER_KILL_GRACE_MS +
		    (uint64_t)m->m_cf->cf_shutdown_timeout * 1000;
		master_stop_gen(m, -1, CHANNEL_STOP);
	} else {
		log_info("fast stop");
		m->m_stop_deadline = now + MASTER_FAST_KILL_MS;
		master_stop_gen(m, -1, CHANNEL_HALT);
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
	size_t i;

	if (!m->m_handed_over)
		master_notify("STOPPING=1");
	m->m_draining = 1;
	m->m_drain_deadline = clock_ms() +
	    (uint64_t)m->m_cf->cf_shutdown_delay * 1000;
	log_info("shutdown_delay: unready, serving %d s more before the "
	    "graceful stop", m->m_cf->cf_shutdown_delay);
	for (i = 0; i < m->m_nw; i++)
		master_command(&m->m_w[i], CHANNEL_DRAIN);
}

/* Forget the worker at index i after its exit. */
static void
master_forget(struct master *m, size_t i)
{
	struct mworker *w = &m->m_w[i];

	metrics_slot_release(w->w_slot);
	if (w->w_chan != -1)
		close(w->w_chan);
	m->m_w[i] = m->m_w[--m->m_nw];
}

static void
master_reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct mworker w;
		size_t i;

		for (i = 0; i < m->m_nw; i++)
			if (m->m_w[i].w_pid == pid)
				break;
		if (i == m->m_nw)
			continue;       /* a new master of an upgrade, say */
		w = m->m_w[i];
		master_forget(m, i);
		if (w.w_stopping) {
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
			if (w.w_gen == m->m_gen)
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
		if (w.w_gen == m->m_gen)
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
	n = master_count(m, m->m_gen, 1);
	while (n < m->m_want) {
		if (master_spawn(m, m->m_cf, m->m_gen) == -1)
			break;
		if (m->m_draining)
			master_command(&m->m_w[m->m_nw - 1], CHANNEL_DRAIN);
		n++;
	}
	while (n > m->m_want) {
		size_t i;

		for (i = m->m_nw; i-- > 0;)
			if (m->m_w[i].w_gen == m->m_gen &&
			    !m->m_w[i].w_stopping)
				break;
		log_info("stopping worker %ld", (long)m->m_w[i].w_pid);
		m->m_w[i].w_stopping = 1;
		master_command(&m->m_w[i], CHANNEL_STOP);
		n--;
	}
	if (m->m_want <= 0 && master_count(m, m->m_gen, 1) == 0) {
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
	master_notify("READY=1");
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
	master_notify("RELOADING=1");
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
	master_stop_gen(m, old, CHANNEL_STOP);
	listen_commit(m->m_ls);
	metrics_set_generation(m->m_gen);
	metrics_reload(1);
	log_info("reload succeeded: %d workers of generation %d serving",
	    m->m_want, m->m_gen);
	snprintf(m->m_note, sizeof(m->m_note),
	    "reload succeeded (generation %d)", m->m_gen);
	master_notify("READY=1");
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
	size_t i;

	/*
	 * Workers that never became ready may be stuck anywhere before their
	 * loop: besides the command, SIGKILL where the master may send it.
	 */
	master_stop_gen(m, m->m_gen + 1, CHANNEL_HALT);
	for (i = 0; i < m->m_nw; i++)
		if (m->m_w[i].w_gen == m->m_gen + 1 &&
		    kill(m->m_w[i].w_pid, SIGKILL) == -1 && errno != ESRCH)
			log_warn("kill %ld", (long)m->m_w[i].w_pid);
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
	m->m_up_deadline = clock_ms() + master_test_ms(
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
	master_notify("MAINPID=%ld\nREADY=1\nSTATUS=binary upgrade: new master "
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
	size_t i, j;

	for (i = 0; i < npfd; i++) {
		char buf[16];
		int n;

		if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (pfd[i].fd == m->m_report_fd) {
			log_info("binary upgrade complete: the previous master "
			    "has exited");
			close(m->m_report_fd);
			m->m_report_fd = -1;
			continue;
		}
		for (j = 0; j < m->m_nw; j++)
			if (m->m_w[j].w_chan == pfd[i].fd)
				break;
		if (j == m->m_nw)
			continue;
		n = channel_recv(pfd[i].fd, buf, sizeof(buf));
		if (n > 0 && memchr(buf, CHANNEL_READY, (size_t)n) != NULL)
			m->m_w[j].w_ready = 1;
		else if (n == 0) {
			/* Exiting: commands now go by signal, if at all. */
			close(m->m_w[j].w_chan);
			m->m_w[j].w_chan = -1;
		}
	}
}

static int
master_gen_ready(const struct master *m, int gen)
{
	size_t i;
	int n = 0;

	for (i = 0; i < m->m_nw; i++) {
		if (m->m_w[i].w_gen != gen || m->m_w[i].w_stopping)
			continue;
		if (!m->m_w[i].w_ready)
			return 0;
		n++;
	}
	return n > 0;
}

/* Act on the flags the signal handler set; see hitcountd(8), SIGNALS. */
static void
master_handle_signals(struct master *m)
{
	size_t i;

	/*
	 * Stop requests first: Ctrl-C reaches the workers too, and their exit
	 * must not be taken for a crash and replaced.
	 */
	if (got_int) {
		got_int = 0;
		master_begin_stop(m, 2);
	}
	if (got_term) {
		got_term = 0;
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
	if (got_chld) {
		got_chld = 0;
		master_reap(m);
	}
	if (got_hup) {
		got_hup = 0;
		if (!m->m_stopping && !m->m_draining)
			master_begin_reload(m);
	}
	if (got_usr1) {
		got_usr1 = 0;
		log_info("USR1: reopening log files");
		master_prepare_access_log(m->m_cf);
		for (i = 0; i < m->m_nw; i++)
			master_command(&m->m_w[i], CHANNEL_REOPEN);
	}
	if (got_ttin) {
		got_ttin = 0;
		if (!m->m_stopping && m->m_want < MASTER_MAX_WORKERS) {
			m->m_want++;
			log_info("TTIN: %d workers", m->m_want);
		}
	}
	if (got_ttou) {
		got_ttou = 0;
		if (!m->m_stopping && m->m_want > 1) {
			m->m_want--;
			log_info("TTOU: %d workers", m->m_want);
		}
	}
	if (got_usr2) {
		got_usr2 = 0;
		log_info("USR2: binary upgrade");
		master_begin_upgrade(m);
	}
	if (got_winch) {
		got_winch = 0;
		log_info("WINCH ignored");
	}
}

/* The descriptors to wait on: channels of workers not yet ready, upgrade. */
static size_t
master_pollset(struct master *m, struct pollfd **pfdp)
{
	struct pollfd *pfd;
	size_t i, n = 0;

	pfd = realloc(*pfdp, (m->m_nw + 2) * sizeof(*pfd));
	if (pfd == NULL)
		return 0;       /* the deadlines still advance the loop */
	*pfdp = pfd;
	for (i = 0; i < m->m_nw; i++) {
		if (m->m_w[i].w_chan == -1 || m->m_w[i].w_ready)
			continue;
		pfd[n].fd = m->m_w[i].w_chan;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
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
		if (m->m_nw > 0 && now >= m->m_stop_deadline) {
			log_warnx("%zu workers still running after the "
			    "deadline: killing them", m->m_nw);
			master_kill_all(m);
			m->m_stop_deadline = now + 1000;
		}
		return;
	}
	if (m->m_newcf) {
		if (master_gen_ready(m, m->m_gen + 1))
			master_finish_reload(m);
		else if (now >= m->m_reload_deadline)
			master_abort_reload(m, "new workers did not become ready "
			    "in time");
		else if (master_count(m, m->m_gen + 1, 1) == 0)
			master_abort_reload(m, "new workers exited");
	}
	if (m->m_abort_why && master_count(m, m->m_gen + 1, 0) == 0) {
		master_reload_failed(m, m->m_abort_why);
		free(m->m_abort_why);
		m->m_abort_why = NULL;
	}
	master_maintain(m);
	if (!m->m_ready_notified && master_gen_ready(m, m->m_gen)) {
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
			master_notify("READY=1\nMAINPID=%ld", (long)getpid());
			master_status(m);
		}
	}
}

static int
master_setup_signals(sigset_t *unblocked)
{
	struct sigaction sa;
	sigset_t block;
	size_t i;

	sigemptyset(&block);
	for (i = 0; i < MASTER_NSIGNALS; i++)
		sigaddset(&block, master_signals[i]);
	if (sigprocmask(SIG_BLOCK, &block, unblocked) == -1) {
		log_warn("sigprocmask");
		return -1;
	}
	/* A binary upgrade starts the new master with them blocked. */
	for (i = 0; i < MASTER_NSIGNALS; i++)
		sigdelset(unblocked, master_signals[i]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = master_on_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < MASTER_NSIGNALS; i++)
		if (sigaction(master_signals[i], &sa, NULL) == -1) {
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
	if (master_setup_signals(&unblocked) == -1 || metrics_init() == -1 ||
	    master_prepare_access_log(cf) == -1)
		goto done;
	m.m_exit = 0;
	(void)worker_balance_init();    /* without it, workers only serve */
	log_info("%s %s started, %d workers", PACKAGE_NAME, PACKAGE_VERSION,
	    m.m_want);
	master_maintain(&m);

	while (!m.m_stopping || m.m_nw > 0) {
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
	while (m.m_nw > 0)
		master_forget(&m, m.m_nw - 1);
	free(m.m_w);
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
