/*
 * main.c - command line, configuration check, detaching.
 *
 * hitcountd [-dDHtTVh] [-f file]: everything up to the fork of the workers
 * happens here or in master_listen(), so every start-up error (a bad
 * config, a port in use, a second instance) reaches the terminal and the
 * exit status before the daemon detaches.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "accesslog.h"
#include "conf.h"
#include "confdump.h"
#include "log.h"
#include "listen.h"
#include "master.h"
#include "pidfile.h"
#include "probe.h"
#include "redistls.h"
#include "upgrade.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONF SYSCONFDIR "/hitcountd.conf"

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: hitcountd [-dDHtTVh] [-f file]\n"
	    "  -f file  configuration file (default %s)\n"
	    "  -D       do not detach; log to stderr\n"
	    "  -d       debug: do not detach, verbose log to stderr\n"
	    "  -H       health check: ask the running daemon's /healthz\n"
	    "  -t       check the configuration file and exit\n"
	    "  -T       print the effective configuration and exit\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n", DEFAULT_CONF);
}

/*
 * Classic detach: fork so the shell gets its prompt back, setsid to lose
 * the terminal, chdir / so no mount is kept busy, stdio to /dev/null.
 */
static int
main_daemonize(void)
{
	pid_t pid;
	int fd;

	pid = fork();
	if (pid == -1)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() == -1)
		return -1;
	if (chdir("/") == -1)
		return -1;
	fd = open("/dev/null", O_RDWR);
	if (fd == -1)
		return -1;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	return 0;
}

/*
 * A detached daemon runs in /, where a relative -f names another file
 * than the one it started with: a HUP would read that, and a USR2 execute
 * the binary with it.  Returns path made absolute (allocated), also put
 * into the argument of argv that holds it (kept for the upgrade), or
 * NULL after saying why.
 */
static char *
main_absolute_conf(int argc, char **argv, const char *path)
{
	char cwd[PATH_MAX], *abs = NULL, *arg;
	uintptr_t at = (uintptr_t)path;
	int i;

	if (getcwd(cwd, sizeof(cwd)) == NULL ||
	    asprintf(&abs, "%s/%s", cwd, path) == -1) {
		fprintf(stderr, "hitcountd: -f %s: %s\n", path, strerror(errno));
		return NULL;
	}
	for (i = 1; i < argc; i++) {
		uintptr_t from = (uintptr_t)argv[i];

		if (at < from || at > from + strlen(argv[i]))
			continue;
		/* "-f FILE", "-fFILE" or "-DfFILE": keep what comes before. */
		if (asprintf(&arg, "%.*s%s", (int)(at - from), argv[i],
		    abs) == -1) {
			fprintf(stderr, "hitcountd: asprintf: %s\n",
			    strerror(errno));
			free(abs);
			return NULL;
		}
		argv[i] = arg;
		break;
	}
	return abs;
}

/* Raise the soft limit on open files to the hard limit: each client is one. */
static void
main_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit");
	}
}

/*
 * The listening sockets: those handed over (socket activation, or the
 * old master of a binary upgrade), then cf's addresses.  Sockets handed
 * over by an upgrade that cf no longer names are closed.  Returns 0 or -1.
 */
static int
main_listen(struct listen_set *ls, const struct conf *cf, int upgraded,
    int activated)
{
	int n = listen_adopt(ls, !upgraded || activated);

	if (n == -1)
		return -1;
	if (n > 0 && ls->ls_activated)
		log_info("socket activation: the 'listen' addresses of %s are "
		    "not used", cf->cf_path);
	if (listen_bind(ls, cf, LISTEN_CUR) == -1)
		return -1;
	listen_abort(ls);       /* nothing is pending: drops what cf does not use */
	return 0;
}

/*
 * The systemd unit shipped with hitcountd (etc/hitcountd.service.in) sends
 * KILL TimeoutStopSec seconds after TERM; tests/systemd-verify.sh checks
 * that it says MAIN_UNIT_STOP_TIMEOUT.  A shutdown_delay and
 * shutdown_timeout that, with the master's own 2 s, do not fit would be
 * cut short without a word, so -t, the unit's ExecStartPre, says so.
 */
#define MAIN_UNIT_STOP_TIMEOUT 15
static void
main_check_stop_timeout(const struct conf *cf)
{
	int need = cf->cf_shutdown_delay + cf->cf_shutdown_timeout + 2;

	if (need <= MAIN_UNIT_STOP_TIMEOUT)
		return;
	fprintf(stderr, "hitcountd: warning: %s: shutdown_delay %d s plus "
	    "shutdown_timeout %d s do not fit in the shipped systemd unit's "
	    "TimeoutStopSec=%d: under systemd, set TimeoutStopSec=%d or more "
	    "(systemctl edit hitcountd)\n", cf->cf_path, cf->cf_shutdown_delay,
	    cf->cf_shutdown_timeout, MAIN_UNIT_STOP_TIMEOUT, need);
}

/* Become the daemon: pidfile, sockets, detach, then the master's loop. */
static int
main_serve(struct conf *cf, int foreground, int debug, char **argv)
{
	struct listen_set ls;
	int rc = 1, report_fd, activated;

	memset(&ls, 0, sizeof(ls));
	log_init(1, debug ? LOG_DEBUG : cf->cf_log_level);
	log_setformat(cf->cf_log_format);
	if (upgrade_init(argv) == -1)
		log_warn("readlink /proc/self/exe (USR2 cannot upgrade)");
	report_fd = upgrade_inherited(&activated);
	if (cf->cf_pidfile[0] != '\0' && pidfile_open(cf->cf_pidfile) == -1)
		goto out;               /* not ours to remove */
	main_raise_nofile();
	if (main_listen(&ls, cf, report_fd != -1, activated) == -1) {
		log_errorx("cannot listen on every address; not starting");
		goto out_pidfile;
	}
	if (!foreground) {
		/* A binary upgrade's new master was started detached. */
		if (report_fd == -1 && main_daemonize() == -1)
			fatal("daemonize");
		log_init(0, debug ? LOG_DEBUG : cf->cf_log_level);
	}
	if (pidfile_write() == -1)
		goto out_pidfile;
	rc = master_run(cf, &ls, report_fd, debug); /* owns cf, report_fd */
	cf = NULL;
	report_fd = -1;
out_pidfile:
	pidfile_remove();
out:
	listen_close_all(&ls);
	if (report_fd != -1)
		close(report_fd);
	conf_free(cf);
	return rc;
}

int
main(int argc, char *argv[])
{
	const char *path = DEFAULT_CONF;
	char *abs = NULL;
	int ch, foreground = 0, debug = 0, test = 0, dump = 0, health = 0;
	int rc;
	struct conf *cf;
	char err[512];

	while ((ch = getopt(argc, argv, "dDf:HhTtV")) != -1) {
		switch (ch) {
		case 'd':
			debug = foreground = 1;
			break;
		case 'D':
			foreground = 1;
			break;
		case 'f':
			path = optarg;
			break;
		case 'H':
			health = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'T':
			dump = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}

	if (!test && !dump && !health && path[0] != '/') {
		abs = main_absolute_conf(argc, argv, path);
		if (abs == NULL)
			return 1;
		path = abs;
	}
	cf = conf_load(path, err, sizeof(err));
	if (cf != NULL && redistls_attach(cf, err, sizeof(err)) == -1) {
		conf_free(cf);
		cf = NULL;
	}
	if (cf == NULL) {
		fprintf(stderr, "%s\n", err);
		free(abs);
		return 1;
	}
	if (health) {
		rc = probe_healthz(cf, 3000);
		conf_free(cf);
		return rc;
	}
	if (test)
		main_check_stop_timeout(cf);
	if (test || dump) {
		if (dump && confdump_print(cf, stdout) == -1)
			rc = 1;
		else if (test && accesslog_check(cf->cf_access_log, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "%s\n", err);
			conf_free(cf);
			return 1;
		} else
			rc = 0;
		if (test && !dump)
			printf("hitcountd: configuration file %s is valid\n",
			    path);
		conf_free(cf);
		return rc;
	}

	rc = main_serve(cf, foreground, debug, argv);
	free(abs);      /* only set when serving */
	return rc;
}
