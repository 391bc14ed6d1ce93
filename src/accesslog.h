/*
 * accesslog.h - the access log of a worker.
 */
#ifndef HITCOUNTD_ACCESSLOG_H
#define HITCOUNTD_ACCESSLOG_H

#include <stddef.h>

/* What one line says.  Strings need not be NUL-terminated. */
struct accesslog_entry {
	const char *a_client;           /* address text, NUL-terminated */
	const char *a_request;          /* the request line */
	size_t a_request_len;
	const char *a_referer;          /* NULL when absent */
	size_t a_referer_len;
	const char *a_agent;            /* NULL when absent */
	size_t a_agent_len;
	int a_status;
	long long a_bytes;              /* body bytes sent; -1 for "-" */
};

/*
 * Log to spec: "" (no access log), "stderr", or a file name (created if
 * missing, appended to).  Returns 0, or -1 after logging why.
 */
int accesslog_open(const char *spec);

/*
 * For -t: can spec be written where this process runs (the same sandbox,
 * as systemd's ExecStartPre)?  An existing file is opened for appending,
 * a missing one's directory must be writable; nothing is created.
 * Returns 0, or -1 with the reason in err.
 */
int accesslog_check(const char *spec, char *err, size_t errlen);

/* 1 when an access log is open. */
int accesslog_enabled(void);

/* Add one line in the combined log format; written by accesslog_flush(). */
void accesslog_write(const struct accesslog_entry *e);

/* Write out the buffered lines. */
void accesslog_flush(void);

/* Flush, then open the file again by name (USR1).  Returns 0 or -1. */
int accesslog_reopen(void);

/* Flush and close. */
void accesslog_close(void);

#endif
