/*
 * upgrade.c - replacing the running binary without losing a request.
 *
 * On USR2 the master executes the binary on disk again, as nginx, unicorn
 * and gunicorn do.  The new master gets the listening sockets through the
 * same LISTEN_FDS protocol as socket activation, so the addresses never
 * stop accepting: both generations of workers take connections from the
 * same sockets until the new master reports on a pipe that its workers
 * serve.  Only then does the old master drain its workers and exit; if
 * the new binary fails to start, the pipe closes without a report and the
 * old master simply carries on.  The pidfile dance (NAME.oldbin while both
 * run) is pidfile.c's.
 *
 * Owns the path and arguments to execute again, the environment of the
 * hand-over and the report pipe's protocol; when to upgrade and what to do
 * with the answer is the master's.  Calls listen.c (the sockets to hand
 * over), signals.c (the new master's dispositions until it has its own)
 * and log.c.  Called by master.c (the old master's side) and main.c (the
 * new master's, at start).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "signals.h"
#include "upgrade.h"
#include "util.h"

#define UPGRADE_ENV_FD          "HITCOUNTD_UPGRADE_FD"
#define UPGRADE_ENV_ACTIVATED   "HITCOUNTD_UPGRADE_ACTIVATED"

static char upgrade_exe[PATH_MAX];
static char **upgrade_argv;

int
upgrade_init(char **argv)
{
	ssize_t n = readlink("/proc/self/exe", upgrade_exe,
	    sizeof(upgrade_exe) - 1);

	upgrade_argv = argv;
	if (n <= 0) {
		upgrade_exe[0] = '\0';
		return -1;
	}
	upgrade_exe[n] = '\0';
	return 0;
}

/*
 * In the forked child: put the sockets at fds 3.. (after copying every
 * descriptor above that range, so that none is overwritten before it is
 * moved), describe them in the environment and execute.  Never returns.
 */
static void
upgrade_exec(const struct listen_set *ls, int report_fd)
{
	char names[64 * 8], num[32];
	int n = (int)ls->ls_n, i, high, copy[64];
	size_t off = 0;

	/* `systemctl kill` may reach the new master before its handlers. */
	signals_child();
	if (n > (int)nitems(copy))
		_exit(127);
	high = 3 + n;
	report_fd = fcntl(report_fd, F_DUPFD, high);
	for (i = 0; i < n; i++)
		copy[i] = fcntl(ls->ls_l[i].l_fd, F_DUPFD, high);
	names[0] = '\0';
	for (i = 0; i < n; i++) {
		if (report_fd == -1 || copy[i] == -1 ||
		    dup2(copy[i], 3 + i) == -1) {
			log_warn("binary upgrade: moving the sockets");
			_exit(127);
		}
		close(copy[i]);
		off += snprintf(names + off, sizeof(names) - off, "%s%s",
		    i ? ":" : "", ls->ls_l[i].l_admin ? "metrics" : "http");
	}
	snprintf(num, sizeof(num), "%ld", (long)getpid());
	setenv("LISTEN_PID", num, 1);
	snprintf(num, sizeof(num), "%d", n);
	setenv("LISTEN_FDS", num, 1);
	setenv("LISTEN_FDNAMES", names, 1);
	snprintf(num, sizeof(num), "%d", report_fd);
	setenv(UPGRADE_ENV_FD, num, 1);
	if (ls->ls_activated)
		setenv(UPGRADE_ENV_ACTIVATED, "1", 1);
	execv(upgrade_exe, upgrade_argv);
	log_warn("binary upgrade: execv %s", upgrade_exe);
	_exit(127);
}

int
upgrade_start(const struct listen_set *ls, pid_t *pid, int *fd)
{
	int p[2];

	if (upgrade_exe[0] == '\0' || upgrade_argv == NULL) {
		log_warnx("binary upgrade: the path of the binary is unknown");
		return -1;
	}
	if (access(upgrade_exe, X_OK) == -1) {
		log_warn("binary upgrade: %s", upgrade_exe);
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		log_warn("pipe2");
		return -1;
	}
	*pid = fork();
	if (*pid == -1) {
		log_warn("fork");
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (*pid == 0) {
		close(p[0]);
		upgrade_exec(ls, p[1]);
	}
	close(p[1]);
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) == -1)
		log_warn("fcntl O_NONBLOCK");
	*fd = p[0];
	log_info("binary upgrade: started %s as pid %ld", upgrade_exe,
	    (long)*pid);
	return 0;
}

int
upgrade_poll(int fd, pid_t *newpid)
{
	char buf[32];
	ssize_t n;
	char *end;
	long pid;

	/* The report is one short write, "PID\n": atomic on a pipe. */
	n = read(fd, buf, sizeof(buf) - 1);
	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	if (pid <= 0 || *end != '\n') {
		log_warnx("binary upgrade: bad report from the new master");
		return -1;
	}
	*newpid = (pid_t)pid;
	return 1;
}

int
upgrade_inherited(int *activated)
{
	const char *s = getenv(UPGRADE_ENV_FD);
	char *end;
	long fd = -1;

	*activated = s != NULL && getenv(UPGRADE_ENV_ACTIVATED) != NULL;
	if (s != NULL) {
		fd = strtol(s, &end, 10);
		if (*end != '\0' || fd < 3 || fd > INT_MAX ||
		    fcntl((int)fd, F_SETFD, FD_CLOEXEC) == -1) {
			log_warnx("%s=%s: not an open descriptor; not "
			    "reporting to the old master", UPGRADE_ENV_FD, s);
			fd = -1;
		}
	}
	unsetenv(UPGRADE_ENV_FD);
	unsetenv(UPGRADE_ENV_ACTIVATED);
	return (int)fd;
}

int
upgrade_report_ready(int fd)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		log_warn("binary upgrade: report to the old master");
		return -1;
	}
	return 0;
}
