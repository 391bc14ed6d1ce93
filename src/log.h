/*
 * log.h - logging for the master and the workers.
 */
#ifndef HITCOUNTD_LOG_H
#define HITCOUNTD_LOG_H

#include <stdarg.h>
#include <stddef.h>
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

/* How log_escape() writes a byte that a quoted log field must not carry. */
#define LOG_ESC_JSON    0       /* \" \\ and \u00XX: JSON and key="value" */
#define LOG_ESC_HEX     1       /* \xXX, bytes >= 0x7f too: the access log */

/*
 * Escape the len bytes at s into out as the inside of a double-quoted
 * field of a log line, in the style LOG_ESC_*: as many whole bytes of s
 * as leave room for the style's longest escape within room bytes.
 * Writes no NUL.  Returns the length written, and how many bytes of s
 * it took in *used.
 */
size_t log_escape(char *out, size_t room, const char *s, size_t len,
    int style, size_t *used);

/* A failed system call: appends ": strerror(errno)" to the message. */
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
/* A warning without errno. */
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
/* An error that is not fatal to the process. */
void log_errorx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);

/*
 * Log at error level (fatal with errno text, fatalx without) and exit 1.
 * Only for the master before workers exist, or for a worker's start-up.
 */
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) LOG_NORETURN;
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) LOG_NORETURN;

#endif
