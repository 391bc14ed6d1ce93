/*
 * log.h - logging for the master and the workers.
 */
#ifndef HITCOUNTD_LOG_H
#define HITCOUNTD_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <syslog.h>

#if defined(__GNUC__)
#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define LOG_NORETURN __attribute__((noreturn))
#else
#define LOG_PRINTF(a, b)
#define LOG_NORETURN
#endif

/*
 * Start logging.  With to_stderr set, lines go to stderr as
 * "hitcountd[PID]: LEVEL: message", or as "<N>LEVEL: message" (N the
 * syslog priority, sd-daemon(3) style) when stderr is the journal
 * stream named by JOURNAL_STREAM; otherwise to syslog, facility daemon.
 * level is a syslog priority (LOG_ERR .. LOG_DEBUG): messages above it are
 * dropped.  May be called again to switch destination or level; the
 * journal is detected at each call.  Leaves errno unchanged.
 */
void log_init(int to_stderr, int level);

/* Whether the last log_init() found stderr to be the journal. */
int log_is_journal(void);

/* Change only the level (LOG_ERR, LOG_WARNING, LOG_INFO or LOG_DEBUG). */
void log_setlevel(int level);

/* The current level. */
int log_getlevel(void);

/*
 * Map "error", "warning", "info", "debug" to a syslog priority.
 * Returns -1 for any other name.
 */
int log_level_from_name(const char *name);

/* The name of a syslog priority as log_level_from_name() accepts it. */
const char *log_level_name(int level);

/* Line formats: readable text, key=value pairs, or one JSON object. */
#define LOG_FORMAT_TEXT 0
#define LOG_FORMAT_KV   1
#define LOG_FORMAT_JSON 2

/* "text", "kv" or "json" to LOG_FORMAT_*, or -1. */
int log_format_from_name(const char *name);
const char *log_format_name(int format);

/* Choose the line format of the log. */
void log_setformat(int format);

/* A failed system call: appends ": strerror(errno)" to the message. */
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
/* A warning without errno. */
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
/* An error that is not fatal to the process. */
void log_errorx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);

/* A message at level, a syslog priority (LOG_ERR .. LOG_DEBUG). */
void log_at(int level, const char *fmt, ...) LOG_PRINTF(2, 3);

/*
 * A complaint that repeats while its cause lasts (a server down, a
 * pipeline's worth of errors) is logged at its level only now and then,
 * and at debug level, or not at all, in between.  With ll_period_ms 0
 * (a zeroed struct, or log_limit_init(l, 0)) it passes once, until
 * log_limit_reset(): "warn once, then debug".  With a period it passes
 * when the last one that passed is at least that old (the first once
 * now_ms reaches the period: at once on the monotonic clock_ms()).
 */
struct log_limit {
	uint64_t ll_period_ms;
	uint64_t ll_last_ms;            /* when one last passed */
	int ll_said;                    /* one passed since the last reset */
};

/* Pass once per period_ms, or once until log_limit_reset() for 0. */
void log_limit_init(struct log_limit *l, uint64_t period_ms);

/*
 * Whether a complaint made now (now_ms, from clock_ms(); not looked at
 * for a period of 0) goes out at its own level.  It is counted as said
 * when it does.
 */
int log_limit_pass(struct log_limit *l, uint64_t now_ms);

/* level if log_limit_pass(l, now_ms), else LOG_DEBUG: for log_at(). */
int log_limit_level(struct log_limit *l, int level, uint64_t now_ms);

/*
 * The cause is gone: the next complaint passes.  Returns 1 if one was
 * said since the last reset (for a line that says it is over), else 0.
 */
int log_limit_reset(struct log_limit *l);

/*
 * Log at error level (fatal with errno text, fatalx without) and exit 1.
 * Only for the master before workers exist, or for a worker's start-up.
 */
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) LOG_NORETURN;
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) LOG_NORETURN;

#endif
