/*
 * log.c - the one place where hitcountd writes its own log.
 *
 * In the foreground (-D, -d, containers, systemd) every event is one line
 * on stderr carrying the program name, the pid and the level, so that
 * journald and `docker logs` keep it readable.  Detached, the same
 * messages go to syslog with facility daemon.  Failed system calls are
 * logged by the call's name followed by the errno text, as OpenBSD
 * daemons do: log_warn("accept") -> "accept: Too many open files".
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int log_to_stderr = 1;
static int log_level = LOG_INFO;
static int log_syslog_open;

static const struct {
	const char *name;
	int level;
} log_levels[] = {
	{ "error", LOG_ERR },
	{ "warning", LOG_WARNING },
	{ "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
};

void
log_init(int to_stderr, int level)
{
	log_to_stderr = to_stderr;
	log_level = level;
	if (!to_stderr && !log_syslog_open) {
		openlog("hitcountd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_syslog_open = 1;
	}
}

void
log_setlevel(int level)
{
	log_level = level;
}

int
log_getlevel(void)
{
	return log_level;
}

int
log_level_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (strcmp(name, log_levels[i].name) == 0)
			return log_levels[i].level;
	return -1;
}

const char *
log_level_name(int level)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (log_levels[i].level == level)
			return log_levels[i].name;
	return "info";
}

static void
log_vwrite(int level, const char *errtext, const char *fmt, va_list ap)
{
	char msg[1024];
	int saved = errno;

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_to_stderr) {
		/* One write per line so lines of several processes never interleave. */
		char line[1200];
		int n;

		n = snprintf(line, sizeof(line), "hitcountd[%ld]: %s: %s%s%s\n",
		    (long)getpid(), log_level_name(level), msg,
		    errtext ? ": " : "", errtext ? errtext : "");
		if (n > (int)sizeof(line) - 1) {
			n = sizeof(line) - 1;
			line[n - 1] = '\n';
		}
		if (n > 0 && write(STDERR_FILENO, line, n) < 0) {
			/* Nowhere left to report it. */
		}
	} else if (errtext)
		syslog(level, "%s: %s", msg, errtext);
	else
		syslog(level, "%s", msg);
	errno = saved;
}

#define LOG_BODY(level, errtext)                   \
	do {                                        \
		va_list ap;                         \
		va_start(ap, fmt);                  \
		log_vwrite(level, errtext, fmt, ap); \
		va_end(ap);                         \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	LOG_BODY(LOG_WARNING, strerror(errno));
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_WARNING, NULL);
}

void
log_errorx(const char *fmt, ...)
{
	LOG_BODY(LOG_ERR, NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_INFO, NULL);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_DEBUG, NULL);
}

void
fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_ERR, strerror(errno));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_ERR, NULL);
	exit(1);
}
