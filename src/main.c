/*
 * main.c - command line, configuration check, detaching, pidfile.
 *
 * hitcountd [-dDHtTVh] [-f file]: everything up to the fork of the workers
 * happens here or in master_listen(), so every start-up error (a bad
 * config, a port in use, a second instance) reaches the terminal and the
 * exit status before the daemon detaches.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "conf.h"
#include "log.h"
#include "master.h"
#include "probe.h"

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
 * Open and lock the pidfile before anything else, so that a second
 * instance is refused with a clear message (rather than "address in
 * use") while the first still runs.  The lock is held for the life of the
 * process and survives the fork of main_daemonize(); a stale file left by
 * a dead process is not locked and is simply taken over.  Returns the
 * descriptor or -1.
 */
static int
main_pidfile_lock(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_warn("pidfile %s", path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			n = read(fd, buf, sizeof(buf) - 1);
			buf[n > 0 ? n : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			log_warnx("pidfile %s: another hitcountd is running "
			    "(pid %s)", path, buf[0] ? buf : "unknown");
		} else
			log_warn("flock %s", path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Write the (final, after detaching) pid into the locked pidfile. */
static int
main_pidfile_write(int fd, const char *path)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, n, 0) != n) {
		log_warn("pidfile %s", path);
		return -1;
	}
	return 0;
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

int
main(int argc, char *argv[])
{
	const char *path = DEFAULT_CONF;
	int ch, foreground = 0, debug = 0, test = 0, dump = 0, health = 0;
	int pidfd = -1, rc;
	char *pidpath = NULL;
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

	cf = conf_load(path, err, sizeof(err));
	if (cf == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (health) {
		rc = probe_healthz(cf, 3000);
		conf_free(cf);
		return rc;
	}
	if (test || dump) {
		if (dump && conf_print(cf, stdout) == -1)
			rc = 1;
		else
			rc = 0;
		if (test && !dump)
			printf("hitcountd: configuration file %s is valid\n",
			    path);
		conf_free(cf);
		return rc;
	}

	master_debug = debug;
	log_init(1, debug ? LOG_DEBUG : cf->cf_log_level);
	log_setformat(cf->cf_log_format);
	rc = 1;
	if (cf->cf_pidfile[0] != '\0') {
		pidpath = strdup(cf->cf_pidfile);
		if (pidpath == NULL)
			fatal("strdup");
		pidfd = main_pidfile_lock(pidpath);
		if (pidfd == -1)
			goto out;       /* not ours to remove */
	}
	main_raise_nofile();
	if (master_listen(cf) == -1) {
		log_errorx("cannot listen on every address; not starting");
		goto out_pidfile;
	}
	if (!foreground) {
		if (main_daemonize() == -1)
			fatal("daemonize");
		log_init(0, debug ? LOG_DEBUG : cf->cf_log_level);
	}
	if (pidfd != -1 && main_pidfile_write(pidfd, pidpath) == -1)
		goto out_pidfile;
	rc = master_run(cf);    /* owns cf from here */
	cf = NULL;
out_pidfile:
	if (pidfd != -1) {
		unlink(pidpath);
		close(pidfd);
	}
out:
	conf_free(cf);
	free(pidpath);
	return rc;
}
