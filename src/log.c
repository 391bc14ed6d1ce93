/*
 * log.c - the one place where hitcountd writes its own log.
 *
 * In the foreground (-D, -d, containers) every event is one line on
 * stderr carrying the program name, the pid and the level, so that
 * `docker logs` and a terminal keep it readable.  When stderr is the
 * journal (systemd's JOURNAL_STREAM names it), the journal records the
 * name and pid itself and reads the priority from a "<N>" prefix
 * (sd-daemon(3)): lines then start with that prefix instead, so that
 * `journalctl -p warning` finds the warnings and nothing is said twice.
 * Detached, the same messages go to syslog with facility daemon.  Failed
 * system calls are logged by the call's name followed by the errno text,
 * as OpenBSD daemons do: log_warn("accept") -> "accept: Too many open
 * files".  A complaint that repeats while its cause lasts goes through a
 * limiter (struct log_limit): a warning once, or once a second, and
 * debug lines in between, so that a Redis that is down does not flood
 * the log with one line per attempt or per request.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

/*
 * The longest line written to stderr.  Stderr is often a pipe shared by
 * the master and every worker, where only a write of at most PIPE_BUF
 * bytes is atomic: each line is one write() no longer than that, so the
 * lines of several processes never tear each other.
 */
#define LOG_LINE 2400
_Static_assert(LOG_LINE <= PIPE_BUF, "a log line must fit one atomic write "
    "to a pipe");

static int log_to_stderr = 1;
static int log_journal;                 /* stderr is the journal's stream */
static int log_level = LOG_INFO;
static int log_syslog_open;
static int log_format = LOG_FORMAT_TEXT;

static const char *const log_formats[] = { "text", "kv", "json" };

static const struct {
	const char *name;
	int level;
} log_levels[] = {
	{ "error", LOG_ERR },
	{ "warning", LOG_WARNING },
	{ "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
};

/*
 * Whether fd 2 is the stream journald gave this process: JOURNAL_STREAM
 * holds "DEV:INO" of that stream (systemd.exec(5)) and must match fd 2
 * itself, so that a stderr redirected elsewhere by a child of the service
 * (or by a shell started from it) keeps the plain format.
 */
static int
log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (env == NULL || *env < '0' || *env > '9')
		return 0;
	errno = 0;
	dev = strtoull(env, &end, 10);
	if (errno != 0 || *end != ':' || end[1] < '0' || end[1] > '9')
		return 0;
	ino = strtoull(end + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	if (fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(int to_stderr, int level)
{
	int saved = errno;

	log_to_stderr = to_stderr;
	log_journal = to_stderr && log_stderr_is_journal();
	errno = saved;
	log_level = level;
	if (!to_stderr && !log_syslog_open) {
		openlog("hitcountd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_syslog_open = 1;
	}
}

int
log_is_journal(void)
{
	return log_journal;
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

	for (i = 0; i < nitems(log_levels); i++)
		if (strcmp(name, log_levels[i].name) == 0)
			return log_levels[i].level;
	return -1;
}

const char *
log_level_name(int level)
{
	size_t i;

	for (i = 0; i < nitems(log_levels); i++)
		if (log_levels[i].level == level)
			return log_levels[i].name;
	return "info";
}

int
log_format_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(log_formats); i++)
		if (strcmp(name, log_formats[i]) == 0)
			return (int)i;
	return -1;
}

const char *
log_format_name(int format)
{
	return format >= 0 && (size_t)format < nitems(log_formats) ?
	    log_formats[format] : "text";
}

void
log_setformat(int format)
{
	log_format = format;
}

/*
 * Copy s into out as the inside of a double-quoted string: backslash
 * escapes for quote, backslash and control characters, valid for JSON and
 * for a key="value" pair alike.  Returns the length written.
 */
static size_t
log_escape(char *out, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s && n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			memcpy(out + n, "\\u00", 4);
			out[n + 4] = hex[c >> 4];
			out[n + 5] = hex[c & 15];
			n += 6;
		} else
			out[n++] = (char)c;
	}
	out[n] = '\0';
	return n;
}

/*
 * Write one structured line (kv or json) for msg into line, after the
 * "<N>" priority prefix when stderr is the journal.
 */
static int
log_structured(char *line, size_t cap, int level, const char *msg)
{
	char esc[2200], ts[32], pri[8];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	log_escape(esc, sizeof(esc), msg);
	if (log_journal)
		snprintf(pri, sizeof(pri), "<%d>", level);
	else
		pri[0] = '\0';
	if (log_format == LOG_FORMAT_JSON)
		return snprintf(line, cap, "%s{\"ts\":\"%s.%03ldZ\",\"level\":"
		    "\"%s\",\"pid\":%ld,\"msg\":\"%s\"}\n", pri, ts,
		    now.tv_nsec / 1000000, log_level_name(level), (long)getpid(),
		    esc);
	return snprintf(line, cap, "%sts=%s.%03ldZ level=%s pid=%ld "
	    "msg=\"%s\"\n", pri, ts, now.tv_nsec / 1000000,
	    log_level_name(level), (long)getpid(), esc);
}

static void
log_vwrite(int level, const char *errtext, const char *fmt, va_list ap)
{
	char msg[1024], full[1200], line[LOG_LINE];
	int saved = errno, n;

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_format != LOG_FORMAT_TEXT) {
		snprintf(full, sizeof(full), "%s%s%s", msg, errtext ? ": " : "",
		    errtext ? errtext : "");
		n = log_structured(line, sizeof(line), level, full);
		if (n > (int)sizeof(line) - 1) {
			n = sizeof(line) - 1;
			line[n - 1] = '\n';
		}
		if (log_to_stderr) {
			if (n > 0 && write(STDERR_FILENO, line, n) < 0) {
				/* Nowhere left to report it. */
			}
		} else {
			line[n > 0 ? n - 1 : 0] = '\0';
			syslog(level, "%s", line);
		}
		errno = saved;
		return;
	}
	if (log_to_stderr) {
		/* One write per line so lines of several processes never interleave. */
		if (log_journal)
			n = snprintf(line, sizeof(line), "<%d>%s: %s%s%s\n",
			    level, log_level_name(level), msg,
			    errtext ? ": " : "", errtext ? errtext : "");
		else
			n = snprintf(line, sizeof(line),
			    "hitcountd[%ld]: %s: %s%s%s\n", (long)getpid(),
			    log_level_name(level), msg, errtext ? ": " : "",
			    errtext ? errtext : "");
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
log_at(int level, const char *fmt, ...)
{
	LOG_BODY(level, NULL);
}

void
log_limit_init(struct log_limit *l, uint64_t period_ms)
{
	l->ll_period_ms = period_ms;
	l->ll_last_ms = 0;
	l->ll_said = 0;
}

int
log_limit_pass(struct log_limit *l, uint64_t now_ms)
{
	if (l->ll_period_ms == 0 ? l->ll_said :
	    now_ms - l->ll_last_ms < l->ll_period_ms)
		return 0;
	l->ll_last_ms = now_ms;
	l->ll_said = 1;
	return 1;
}

int
log_limit_level(struct log_limit *l, int level, uint64_t now_ms)
{
	return log_limit_pass(l, now_ms) ? level : LOG_DEBUG;
}

int
log_limit_reset(struct log_limit *l)
{
	int said = l->ll_said;

	l->ll_said = 0;
	l->ll_last_ms = 0;
	return said;
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
