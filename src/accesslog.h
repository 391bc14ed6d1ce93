/*
 * accesslog.h - the access log of a worker.
 */
#ifndef HITCOUNTD_ACCESSLOG_H
#define HITCOUNTD_ACCESSLOG_H

#include <stddef.h>
#include <netinet/in.h>

struct http_request;
struct sockaddr_storage;

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

/*
 * What the line of a connection's request needs, kept while the request
 * waits for Redis (the bytes it points into move meanwhile).  Zeroed to
 * start; the members are accesslog.c's.
 */
struct accesslog_req {
	char *ar_buf;                   /* request line, Referer, User-Agent */
	size_t ar_cap;
	unsigned short ar_req, ar_ref, ar_ua;   /* their lengths */
	unsigned char ar_has;           /* bit 0 Referer, bit 1 User-Agent */
	char ar_client[INET6_ADDRSTRLEN];       /* "" for "-" */
};

/* Keep the client's address ss (of a connection) as the log shows it. */
void accesslog_req_client(struct accesslog_req *r,
    const struct sockaddr_storage *ss);

/*
 * Keep what the line of req needs, cut to the field limits; the buffer
 * is reused from request to request.  Without memory, the line will show
 * "-" for them.
 */
void accesslog_req_keep(struct accesslog_req *r,
    const struct http_request *req);

/*
 * Add the line of the kept request, answered with status and bytes body
 * bytes (-1 for "-"), and forget the request.
 */
void accesslog_req_write(struct accesslog_req *r, int status,
    long long bytes);

/* Free what r holds. */
void accesslog_req_free(struct accesslog_req *r);

#endif
