/*
 * master.c - the master process: listening sockets, workers, signals.
 *
 * The master binds the listening sockets, forks the workers and from then
 * on only supervises: it never talks to Redis and never serves a client,
 * so nothing a client or Redis does can take it down.  Signal handlers
 * only set flags; the loop below waits in ppoll() with the signals
 * unblocked, so each signal is handled in order, outside any handler.
 *
 * A reload (HUP) reads the config into a fresh struct, binds any new
 * address, starts a new generation of workers, waits until every one of
 * them reports (one byte on a pipe) that it is serving, and only then asks
 * the old generation to stop gracefully.  Until then the old workers keep
 * serving, and a broken config never replaces a good one.
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
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "conf.h"
#include "accesslog.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "worker.h"

#define MASTER_STORM_DEATHS     5       /* this many unexpected deaths ... */
#define MASTER_STORM_WINDOW_MS  10000   /* ... within this long: give up */
#define MASTER_READY_TIMEOUT_MS 10000   /* a new generation must be up by then */
#define MASTER_FAST_KILL_MS     1000    /* INT: SIGKILL after this */

struct mlisten {
	char *l_text;
	int l_fd;
	int l_admin;                    /* a metrics_listen address */
	int l_gen;                      /* last generation that uses it */
};

struct mworker {
	pid_t w_pid;
	int w_slot;                     /* its metrics slot, or -1 */
	int w_gen;
	int w_ready_fd;                 /* read end; -1 once ready or gone */
	int w_ready;
	int w_stopping;                 /* told to stop: its exit is expected */
};

struct master {
	struct conf *m_cf;              /* the configuration in force */
	struct conf *m_newcf;           /* a reload waiting for its workers */
	struct mlisten *m_listen;
	size_t m_nlisten;
	struct mworker *m_w;
	size_t m_nw, m_capw;
	int m_gen;                      /* current generation */
	int m_want;                     /* workers the current generation should have */
	int m_stopping;                 /* 0, or 1 graceful, 2 fast */
	uint64_t m_stop_deadline;
	uint64_t m_reload_deadline;
	uint64_t m_deaths[MASTER_STORM_DEATHS];
	size_t m_ndeaths;
	int m_exit;
};

static int master_prepare_access_log(const struct conf *);

static volatile sig_atomic_t got_chld, got_hup, got_term, got_int, got_usr1;
static volatile sig_atomic_t got_ttin, got_ttou, got_usr2, got_winch;

int master_debug;

/* Set when the listening sockets came from the service manager. */
static int master_activated;

/* The sockets bound by master_listen(), handed to master_run(). */
static struct mlisten *pending_listen;
static size_t pending_nlisten;

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
#define MASTER_NSIGNALS (sizeof(master_signals) / sizeof(master_signals[0]))

static uint64_t
master_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static int
master_bind_one(const struct conf_listen *cl, int backlog)
{
	int fd, one = 1;

	fd = socket(cl->l_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("socket %s", cl->l_text);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		log_warn("setsockopt SO_REUSEADDR %s", cl->l_text);
	if (cl->l_addr.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1)
		log_warn("setsockopt IPV6_V6ONLY %s", cl->l_text);
	if (bind(fd, (const struct sockaddr *)&cl->l_addr, cl->l_addrlen) ==
	    -1) {
		log_warn("bind %s", cl->l_text);
		close(fd);
		return -1;
	}
	if (listen(fd, backlog) == -1) {
		log_warn("listen %s", cl->l_text);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Make sure every address of cf has a socket in *lp, reusing sockets
 * already bound to the same address text; mark them with generation gen.
 * Returns 0 or -1 (sockets bound by this call are closed again).
 */
static int
master_bind_conf(struct mlisten **lp, size_t *np, const struct conf *cf,
    int gen)
{
	size_t i, j, start = *np;
	struct mlisten *l;

	if (master_activated) {
		/* The service manager owns the sockets: every generation uses them. */
		for (i = 0; i < *np; i++)
			(*lp)[i].l_gen = gen;
		return 0;
	}
	l = realloc(*lp, (*np + cf->cf_nlisten) * sizeof(*l));
	if (l == NULL) {
		log_warn("realloc");
		return -1;
	}
	*lp = l;
	for (i = 0; i < cf->cf_nlisten; i++) {
		const struct conf_listen *cl = &cf->cf_listen[i];

		for (j = 0; j < *np; j++)
			if (strcmp(l[j].l_text, cl->l_text) == 0 &&
			    l[j].l_admin == cl->l_admin)
				break;
		if (j < *np) {
			l[j].l_gen = gen;
			continue;
		}
		l[*np].l_admin = cl->l_admin;
		l[*np].l_fd = master_bind_one(cl, cf->cf_backlog);
		l[*np].l_text = strdup(cl->l_text);
		l[*np].l_gen = gen;
		if (l[*np].l_fd == -1 || l[*np].l_text == NULL) {
			if (l[*np].l_fd != -1)
				close(l[*np].l_fd);
			free(l[*np].l_text);
			goto fail;
		}
		(*np)++;
	}
	return 0;
fail:
	while (*np > start) {
		(*np)--;
		close(l[*np].l_fd);
		free(l[*np].l_text);
	}
	return -1;
}

/*
 * Socket activation (sd_listen_fds(3) protocol): the service manager
 * passes LISTEN_FDS listening sockets from fd 3 on, for the process named
 * by LISTEN_PID.  Returns the number adopted, 0 if none were passed, or -1.
 */
static int
master_adopt_sockets(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	struct mlisten *l;
	int n, i;

	if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
		return 0;
	n = atoi(fds);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (n < 1 || n > 64) {
		log_warnx("LISTEN_FDS=%s: not a number of sockets", fds);
		return -1;
	}
	l = calloc(n, sizeof(*l));
	if (l == NULL) {
		log_warn("calloc");
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss), olen;
		char host[INET6_ADDRSTRLEN], port[8], text[80];
		int fd = 3 + i, on = 0;

		olen = sizeof(on);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) == -1 ||
		    !on) {
			log_warnx("socket activation: fd %d is not a listening "
			    "socket", fd);
			goto fail;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
			log_warn("fcntl fd %d", fd);
			goto fail;
		}
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
		    getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host),
		    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			snprintf(text, sizeof(text), ss.ss_family == AF_INET6 ?
			    "[%s]:%s" : "%s:%s", host, port);
		else
			snprintf(text, sizeof(text), "fd %d", fd);
		l[i].l_fd = fd;
		l[i].l_text = strdup(text);
		if (l[i].l_text == NULL)
			goto fail;
		log_info("socket activation: listening on %s (fd %d)", text, fd);
	}
	pending_listen = l;
	pending_nlisten = n;
	master_activated = 1;
	return n;
fail:
	for (i = 0; i < n; i++)
		free(l[i].l_text);
	free(l);
	return -1;
}

int
master_listen(struct conf *cf)
{
	int n = master_adopt_sockets();

	if (n == -1)
		return -1;
	if (n > 0) {
		log_info("socket activation: the 'listen' addresses of %s are "
		    "not used", cf->cf_path);
		return 0;
	}
	return master_bind_conf(&pending_listen, &pending_nlisten, cf, 0);
}

/*
 * The sockets of generation gen, in an array the worker can keep, and
 * after them (fds + m_nlisten) which of them are metrics_listen ones.
 */
static int *
master_gen_fds(struct master *m, int gen, size_t *n)
{
	size_t cap = m->m_nlisten ? m->m_nlisten : 1, i;
	int *fds = calloc(2 * cap, sizeof(*fds));

	*n = 0;
	if (fds == NULL)
		return NULL;
	for (i = 0; i < m->m_nlisten; i++)
		if (m->m_listen[i].l_gen == gen) {
			fds[cap + *n] = m->m_listen[i].l_admin;
			fds[(*n)++] = m->m_listen[i].l_fd;
		}
	return fds;
}

static void
master_child_setup(struct master *m, int gen)
{
	struct sigaction sa;
	sigset_t none;
	size_t i;

	/* The worker handles its signals in its own loop. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (i = 0; i < MASTER_NSIGNALS; i++)
		sigaction(master_signals[i], &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (i = 0; i < m->m_nw; i++)
		if (m->m_w[i].w_ready_fd != -1)
			close(m->m_w[i].w_ready_fd);
	/*
	 * Sockets of the old generation stay open in the master during a
	 * reload; a copy here would keep an address accepting connections
	 * that nobody answers once the old workers are gone.
	 */
	for (i = 0; i < m->m_nlisten; i++)
		if (m->m_listen[i].l_gen != gen)
			close(m->m_listen[i].l_fd);
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

/* Fork one worker of generation gen with configuration cf. */
static int
master_spawn(struct master *m, const struct conf *cf, int gen)
{
	struct mworker *w;
	int pipefd[2], *fds, slot;
	pid_t master_pid = getpid(), pid;
	size_t nfds;

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
	if (pipe2(pipefd, O_CLOEXEC) == -1) {
		log_warn("pipe2");
		return -1;
	}
	slot = metrics_slot_reserve(gen);
	pid = fork();
	if (pid == -1) {
		log_warn("fork");
		metrics_slot_release(slot);
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (pid == 0) {
		int rc;

		close(pipefd[0]);
		master_child_setup(m, gen);
		/*
		 * Opened while still root: the log's directory need not be open
		 * to the workers' user (a reopen on USR1 as that user may fail,
		 * and then the worker keeps the file it has).
		 */
		if (accesslog_open(cf->cf_access_log) == -1 ||
		    master_drop_privileges(cf) == -1)
			_exit(WORKER_EXIT_NORESPAWN);
		/*
		 * An orphan must never keep port 5000: die with the master.  Set
		 * after setuid(), which clears it.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGINT) == -1)
			log_warn("prctl");
		if (getppid() != master_pid)
			_exit(0);       /* the master died before prctl() */
		fds = master_gen_fds(m, gen, &nfds);
		if (fds == NULL)
			_exit(WORKER_EXIT_NORESPAWN);
		metrics_slot_use(slot);
		rc = worker_run(cf, fds, fds + (m->m_nlisten ? m->m_nlisten : 1),
		    nfds, pipefd[1]);
		free(fds);
		/* exit(), not _exit(): leak checkers report at exit. */
		exit(rc);
	}
	close(pipefd[1]);
	w = &m->m_w[m->m_nw++];
	memset(w, 0, sizeof(*w));
	w->w_pid = pid;
	w->w_gen = gen;
	w->w_slot = slot;
	metrics_slot_attach(slot, pid, gen);
	w->w_ready_fd = pipefd[0];
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

static void
master_signal_worker(struct mworker *w, int sig)
{
	if (kill(w->w_pid, sig) == -1 && errno != ESRCH)
		log_warn("kill %ld", (long)w->w_pid);
}

/* Ask every worker of generation gen (or all, for gen -1) to stop. */
static void
master_stop_gen(struct master *m, int gen, int sig)
{
	size_t i;

	for (i = 0; i < m->m_nw; i++) {
		if (gen != -1 && m->m_w[i].w_gen != gen)
			continue;
		m->m_w[i].w_stopping = 1;
		master_signal_worker(&m->m_w[i], sig);
	}
}

/* Close sockets no generation still running uses. */
static void
master_close_unused(struct master *m)
{
	size_t i = 0;

	while (i < m->m_nlisten) {
		if (m->m_listen[i].l_gen >= m->m_gen) {
			i++;
			continue;
		}
		log_info("no longer listening on %s", m->m_listen[i].l_text);
		close(m->m_listen[i].l_fd);
		free(m->m_listen[i].l_text);
		m->m_listen[i] = m->m_listen[--m->m_nlisten];
	}
}

static void
master_status(struct master *m)
{
	master_notify("STATUS=%d workers serving", master_count(m, m->m_gen, 1));
}

static int
master_storm(struct master *m)
{
	uint64_t now = master_now_ms();

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
	uint64_t now = master_now_ms();

	if (m->m_stopping >= how)
		return;
	if (m->m_stopping == 0)
		master_notify("STOPPING=1");
	m->m_stopping = how;
	if (how == 1) {
		log_info("graceful stop: waiting up to %d s for requests "
		    "in flight", m->m_cf->cf_shutdown_timeout);
		m->m_stop_deadline = now +
		    (uint64_t)m->m_cf->cf_shutdown_timeout * 1000;
		master_stop_gen(m, -1, SIGTERM);
	} else {
		log_info("fast stop");
		m->m_stop_deadline = now + MASTER_FAST_KILL_MS;
		master_stop_gen(m, -1, SIGINT);
	}
	/* Nothing new will be accepted: let the kernel refuse connections. */
	while (m->m_nlisten > 0) {
		m->m_nlisten--;
		close(m->m_listen[m->m_nlisten].l_fd);
		free(m->m_listen[m->m_nlisten].l_text);
	}
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
			continue;
		w = m->m_w[i];
		m->m_w[i] = m->m_w[--m->m_nw];
		metrics_slot_release(w.w_slot);
		if (w.w_ready_fd != -1)
			close(w.w_ready_fd);
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
 * when they open it: create it here and hand it to their user, as a
 * root master can.  Also how a bad path is reported at start.
 * Returns 0 or -1.
 */
static int
master_prepare_access_log(const struct conf *cf)
{
	const char *path = cf->cf_access_log;
	int fd;

	if (path[0] == '\0' || strcmp(path, "stderr") == 0)
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1) {
		log_warn("access_log %s", path);
		return -1;
	}
	if (geteuid() == 0 && cf->cf_uid != 0 &&
	    fchown(fd, cf->cf_uid, cf->cf_gid) == -1)
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
		master_signal_worker(&m->m_w[i], SIGTERM);
		n--;
	}
	if (m->m_want <= 0 && master_count(m, m->m_gen, 1) == 0) {
		log_errorx("no worker is left to serve; exiting");
		m->m_exit = 1;
		master_begin_stop(m, 2);
	}
}

static void
master_begin_reload(struct master *m)
{
	char err[512];
	struct conf *cf;
	int gen, i, n;

	if (m->m_newcf) {
		log_warnx("reload: a reload is already under way");
		return;
	}
	master_notify("RELOADING=1");
	cf = conf_load(m->m_cf->cf_path, err, sizeof(err));
	if (cf == NULL) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", err);
		metrics_reload(0);
		master_notify("READY=1");
		return;
	}
	if (master_prepare_access_log(cf) == -1) {
		log_warnx("reload failed, keeping the running configuration: "
		    "cannot open the access log");
		metrics_reload(0);
		conf_free(cf);
		master_notify("READY=1");
		return;
	}
	gen = m->m_gen + 1;
	if (master_bind_conf(&m->m_listen, &m->m_nlisten, cf, gen) == -1) {
		log_warnx("reload failed, keeping the running configuration: "
		    "cannot listen");
		metrics_reload(0);
		conf_free(cf);
		master_notify("READY=1");
		return;
	}
	if (!master_debug)
		log_setlevel(cf->cf_log_level);
	log_setformat(cf->cf_log_format);
	n = conf_worker_count(cf);
	for (i = 0; i < n; i++)
		if (master_spawn(m, cf, gen) == -1)
			break;
	m->m_newcf = cf;
	m->m_reload_deadline = master_now_ms() + MASTER_READY_TIMEOUT_MS;
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
	master_stop_gen(m, old, SIGTERM);
	master_close_unused(m);
	metrics_set_generation(m->m_gen);
	metrics_reload(1);
	log_info("reload succeeded: %d workers of generation %d serving",
	    m->m_want, m->m_gen);
	master_notify("READY=1");
	master_status(m);
}

static void
master_abort_reload(struct master *m, const char *why)
{
	int gen = m->m_gen + 1;
	size_t i;

	log_warnx("reload failed, keeping the running workers: %s", why);
	metrics_reload(0);
	master_stop_gen(m, gen, SIGKILL);
	for (i = 0; i < m->m_nlisten; i++)
		if (m->m_listen[i].l_gen == gen)
			m->m_listen[i].l_gen = m->m_gen;
	conf_free(m->m_newcf);
	m->m_newcf = NULL;
	master_close_unused(m);
	master_notify("READY=1");
}

/* Read readiness bytes; returns how many workers are ready in generation gen. */
static void
master_read_ready(struct master *m, struct pollfd *pfd, size_t npfd)
{
	size_t i, j;

	for (i = 0; i < npfd; i++) {
		char byte;
		ssize_t n;

		if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		for (j = 0; j < m->m_nw; j++)
			if (m->m_w[j].w_ready_fd == pfd[i].fd)
				break;
		if (j == m->m_nw)
			continue;
		n = read(pfd[i].fd, &byte, 1);
		close(pfd[i].fd);
		m->m_w[j].w_ready_fd = -1;
		if (n == 1)
			m->m_w[j].w_ready = 1;
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

int
master_run(struct conf *cf)
{
	struct master m;
	struct sigaction sa;
	sigset_t block, unblocked;
	struct pollfd *pfd = NULL;
	int ready_notified = 0;
	size_t i;

	memset(&m, 0, sizeof(m));
	m.m_cf = cf;
	m.m_listen = pending_listen;
	m.m_nlisten = pending_nlisten;
	pending_listen = NULL;
	pending_nlisten = 0;
	m.m_want = conf_worker_count(cf);

	sigemptyset(&block);
	for (i = 0; i < MASTER_NSIGNALS; i++)
		sigaddset(&block, master_signals[i]);
	sigprocmask(SIG_BLOCK, &block, &unblocked);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = master_on_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < MASTER_NSIGNALS; i++)
		sigaction(master_signals[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (metrics_init() == -1 || master_prepare_access_log(cf) == -1) {
		conf_free(cf);
		return 1;
	}
	log_info("%s %s started, %d workers", PACKAGE_NAME, PACKAGE_VERSION,
	    m.m_want);
	master_maintain(&m);

	for (;;) {
		uint64_t now = master_now_ms(), wake = 0;
		struct timespec ts, *tsp = NULL;
		size_t npfd = 0;
		struct pollfd *np;

		np = realloc(pfd, (m.m_nw ? m.m_nw : 1) * sizeof(*pfd));
		if (np != NULL)
			pfd = np;
		for (i = 0; np != NULL && i < m.m_nw; i++) {
			if (m.m_w[i].w_ready_fd == -1)
				continue;
			pfd[npfd].fd = m.m_w[i].w_ready_fd;
			pfd[npfd].events = POLLIN;
			pfd[npfd].revents = 0;
			npfd++;
		}
		if (m.m_stopping)
			wake = m.m_stop_deadline;
		else if (m.m_newcf)
			wake = m.m_reload_deadline;
		if (wake) {
			uint64_t left = wake > now ? wake - now : 0;

			ts.tv_sec = left / 1000;
			ts.tv_nsec = (left % 1000) * 1000000;
			tsp = &ts;
		}
		if (ppoll(pfd, npfd, tsp, &unblocked) == -1 && errno != EINTR)
			log_warn("ppoll");
		master_read_ready(&m, pfd, npfd);

		/*
		 * Stop requests first: Ctrl-C reaches the workers too, and their
		 * exit must not be taken for a crash and replaced.
		 */
		if (got_int) {
			got_int = 0;
			master_begin_stop(&m, 2);
		}
		if (got_term) {
			got_term = 0;
			/* A second TERM during a graceful stop makes it fast. */
			master_begin_stop(&m, m.m_stopping ? 2 : 1);
		}
		if (got_chld) {
			got_chld = 0;
			master_reap(&m);
		}
		if (got_hup) {
			got_hup = 0;
			if (!m.m_stopping)
				master_begin_reload(&m);
		}
		if (got_usr1) {
			got_usr1 = 0;
			log_info("USR1: reopening log files");
			master_prepare_access_log(m.m_cf);
			for (i = 0; i < m.m_nw; i++)
				master_signal_worker(&m.m_w[i], SIGUSR1);
		}
		if (got_ttin) {
			got_ttin = 0;
			if (!m.m_stopping && m.m_want < 256) {
				m.m_want++;
				log_info("TTIN: %d workers", m.m_want);
			}
		}
		if (got_ttou) {
			got_ttou = 0;
			if (!m.m_stopping && m.m_want > 1) {
				m.m_want--;
				log_info("TTOU: %d workers", m.m_want);
			}
		}
		if (got_usr2) {
			got_usr2 = 0;
			log_info("USR2 ignored (no binary upgrade)");
		}
		if (got_winch) {
			got_winch = 0;
			log_info("WINCH ignored");
		}

		now = master_now_ms();
		if (m.m_stopping) {
			if (m.m_nw == 0)
				break;
			if (now >= m.m_stop_deadline) {
				log_warnx("%zu workers still running after the "
				    "deadline: killing them", m.m_nw);
				master_stop_gen(&m, -1, SIGKILL);
				m.m_stop_deadline = now + 1000;
			}
			continue;
		}
		if (m.m_newcf) {
			if (master_gen_ready(&m, m.m_gen + 1))
				master_finish_reload(&m);
			else if (now >= m.m_reload_deadline)
				master_abort_reload(&m, "new workers did not "
				    "become ready in time");
			else if (master_count(&m, m.m_gen + 1, 1) == 0)
				master_abort_reload(&m, "new workers exited");
		}
		master_maintain(&m);
		if (!ready_notified && master_gen_ready(&m, m.m_gen)) {
			ready_notified = 1;
			master_notify("READY=1\nMAINPID=%ld", (long)getpid());
			master_status(&m);
		}
	}
	log_info("exiting");
	free(pfd);
	free(m.m_w);
	for (i = 0; i < m.m_nlisten; i++) {
		close(m.m_listen[i].l_fd);
		free(m.m_listen[i].l_text);
	}
	free(m.m_listen);
	conf_free(m.m_newcf);
	conf_free(m.m_cf);
	return m.m_exit;
}
