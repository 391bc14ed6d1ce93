/*
 * accesslog.c - one line per request in the combined log format.
 *
 * Lines are collected in a buffer and written with one write() when it
 * fills, once a second, and when the worker stops; a slow disk then costs
 * the event loop at most one write of a buffer, never a write per request.
 * The log is a file (opened with O_APPEND, so the lines of several
 * workers never mix within a write) or stderr.  USR1 reopens the file by
 * name, for logrotate.
 *
 * Stderr is often a pipe (Docker's default), shared by every worker, and
 * only a write of at most PIPE_BUF bytes to a pipe is atomic: a longer one
 * is split when the pipe fills, and another worker's lines land in the
 * middle of a line.  So a line is never longer than PIPE_BUF (a field cut
 * to its limit ends with "..."), and the buffer goes to stderr in writes
 * of at most PIPE_BUF bytes that end at a line's end.
 *
 * A connection (conn.c) keeps what the line of its request needs in a
 * struct accesslog_req, written here; this file reads struct http_request
 * (http.h) and calls log.c and clock.c, nothing above them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "accesslog.h"
#include "clock.h"
#include "http.h"
#include "log.h"

#define ACCESSLOG_BUF   32768
#define ACCESSLOG_FLUSH 28672   /* flush when a line might not fit */
#define ACCESSLOG_LINE  3072    /* longest line: the field limits below */

_Static_assert(ACCESSLOG_LINE <= PIPE_BUF, "a line must fit one atomic "
    "write to a pipe");
_Static_assert(ACCESSLOG_FLUSH + ACCESSLOG_LINE <= ACCESSLOG_BUF,
    "a line must fit the buffer after a flush check");

static char *accesslog_path;    /* NULL when logging to stderr */
static int accesslog_fd = -1;
static char *accesslog_buf;
static size_t accesslog_len;

int
accesslog_open(const char *spec)
{
	accesslog_close();
	if (spec == NULL || *spec == '\0')
		return 0;
	accesslog_buf = malloc(ACCESSLOG_BUF);
	if (accesslog_buf == NULL) {
		log_warn("malloc");
		return -1;
	}
	if (strcmp(spec, "stderr") == 0) {
		accesslog_fd = STDERR_FILENO;
		return 0;
	}
	accesslog_path = strdup(spec);
	if (accesslog_path == NULL) {
		log_warn("strdup");
		return -1;
	}
	accesslog_fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0640);
	if (accesslog_fd == -1) {
		log_warn("access_log %s", spec);
		return -1;
	}
	return 0;
}

int
accesslog_check(const char *spec, char *err, size_t errlen)
{
	char *dir, *slash;
	int fd, rc = 0;

	if (spec[0] == '\0' || strcmp(spec, "stderr") == 0)
		return 0;
	fd = open(spec, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd != -1) {
		close(fd);
		return 0;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "access_log %s: %s", spec, strerror(errno));
		return -1;
	}
	dir = strdup(spec);
	if (dir == NULL) {
		snprintf(err, errlen, "access_log %s: %s", spec, strerror(errno));
		return -1;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (access(dir, W_OK | X_OK) == -1) {
		snprintf(err, errlen, "access_log %s: cannot create it in %s: %s",
		    spec, dir, strerror(errno));
		rc = -1;
	}
	free(dir);
	return rc;
}

int
accesslog_enabled(void)
{
	return accesslog_fd != -1;
}

/*
 * The length of the next write of the buffer from off: the rest to the
 * file (O_APPEND keeps it whole), to stderr whole lines up to PIPE_BUF.
 */
static size_t
accesslog_chunk(size_t off)
{
	size_t left = accesslog_len - off, n = PIPE_BUF;

	if (accesslog_path != NULL || left <= PIPE_BUF)
		return left;
	while (n > 0 && accesslog_buf[off + n - 1] != '\n')
		n--;
	return n > 0 ? n : PIPE_BUF;    /* never: lines fit PIPE_BUF */
}

void
accesslog_flush(void)
{
	size_t off = 0, end = 0;

	while (accesslog_fd != -1 && off < accesslog_len) {
		ssize_t n;

		if (off == end)
			end = off + accesslog_chunk(off);
		n = write(accesslog_fd, accesslog_buf + off, end - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("access_log write");
			break;  /* the lines are dropped, the worker goes on */
		}
		off += n;
	}
	accesslog_len = 0;
}

int
accesslog_reopen(void)
{
	int fd;

	accesslog_flush();
	if (accesslog_path == NULL)
		return 0;
	fd = open(accesslog_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0640);
	if (fd == -1) {
		log_warn("access_log %s", accesslog_path);
		return -1;      /* keep writing to the old file */
	}
	close(accesslog_fd);
	accesslog_fd = fd;
	return 0;
}

void
accesslog_close(void)
{
	accesslog_flush();
	if (accesslog_fd != -1 && accesslog_fd != STDERR_FILENO)
		close(accesslog_fd);
	accesslog_fd = -1;
	free(accesslog_path);
	accesslog_path = NULL;
	free(accesslog_buf);
	accesslog_buf = NULL;
	accesslog_len = 0;
}

/*
 * Copy a client-supplied value into a quoted field of at most cap bytes,
 * escaped (log_escape()) so that a client cannot forge or break a log
 * line; a value cut to fit ends with "..." so that a reader knows it is
 * not whole.
 */
static size_t
accesslog_quote(char *out, size_t cap, const char *s, size_t len)
{
	size_t n, used;

	if (s == NULL || len == 0) {
		out[0] = '-';
		return 1;
	}
	n = log_escape(out, cap - 3, s, len, LOG_ESC_HEX, &used);
	if (used < len) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	return n;
}

void
accesslog_write(const struct accesslog_entry *e)
{
	char line[ACCESSLOG_LINE];
	size_t n;
	int k;

	if (accesslog_fd == -1)
		return;
	k = snprintf(line, sizeof(line), "%s - - [%s] \"", e->a_client,
	    clock_log_date());
	if (k < 0)
		return;
	n = (size_t)k;
	n += accesslog_quote(line + n, 1024, e->a_request, e->a_request_len);
	if (e->a_bytes >= 0)
		k = snprintf(line + n, sizeof(line) - n, "\" %d %lld \"",
		    e->a_status, e->a_bytes);
	else
		k = snprintf(line + n, sizeof(line) - n, "\" %d - \"",
		    e->a_status);
	if (k < 0)
		return;
	n += (size_t)k;
	n += accesslog_quote(line + n, 700, e->a_referer, e->a_referer_len);
	line[n++] = '"';
	line[n++] = ' ';
	line[n++] = '"';
	n += accesslog_quote(line + n, 700, e->a_agent, e->a_agent_len);
	line[n++] = '"';
	line[n++] = '\n';
	if (accesslog_len + n > ACCESSLOG_FLUSH)
		accesslog_flush();
	memcpy(accesslog_buf + accesslog_len, line, n);
	accesslog_len += n;
}

void
accesslog_req_client(struct accesslog_req *r,
    const struct sockaddr_storage *ss)
{
	const void *a;

	if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	else if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	else {
		snprintf(r->ar_client, sizeof(r->ar_client), "-");
		return;
	}
	if (inet_ntop(ss->ss_family, a, r->ar_client,
	    sizeof(r->ar_client)) == NULL)
		snprintf(r->ar_client, sizeof(r->ar_client), "-");
}

/* Forget the kept request: its line is written, or it cannot be kept. */
static void
accesslog_req_forget(struct accesslog_req *r)
{
	r->ar_req = r->ar_ref = r->ar_ua = 0;
	r->ar_has = 0;
}

void
accesslog_req_keep(struct accesslog_req *r, const struct http_request *req)
{
	size_t req_len = req->r_line_len > 2048 ? 2048 : req->r_line_len;
	size_t ref_len = req->r_referer_len > 1024 ? 1024 : req->r_referer_len;
	size_t ua_len = req->r_agent_len > 1024 ? 1024 : req->r_agent_len;
	size_t need = req_len + ref_len + ua_len;

	if (need > r->ar_cap) {
		char *p = realloc(r->ar_buf, need);

		if (p == NULL) {
			accesslog_req_forget(r);
			return;
		}
		r->ar_buf = p;
		r->ar_cap = need;
	}
	if (req_len)
		memcpy(r->ar_buf, req->r_line, req_len);
	if (ref_len)
		memcpy(r->ar_buf + req_len, req->r_referer, ref_len);
	if (ua_len)
		memcpy(r->ar_buf + req_len + ref_len, req->r_agent, ua_len);
	r->ar_req = req_len;
	r->ar_ref = ref_len;
	r->ar_ua = ua_len;
	r->ar_has = (req->r_referer ? 1 : 0) | (req->r_agent ? 2 : 0);
}

void
accesslog_req_write(struct accesslog_req *r, int status, long long bytes)
{
	struct accesslog_entry e;

	e.a_client = r->ar_client[0] ? r->ar_client : "-";
	e.a_request = r->ar_req ? r->ar_buf : NULL;
	e.a_request_len = r->ar_req;
	e.a_referer = (r->ar_has & 1) ? r->ar_buf + r->ar_req : NULL;
	e.a_referer_len = r->ar_ref;
	e.a_agent = (r->ar_has & 2) ? r->ar_buf + r->ar_req + r->ar_ref :
	    NULL;
	e.a_agent_len = r->ar_ua;
	e.a_status = status;
	e.a_bytes = bytes;
	accesslog_write(&e);
	accesslog_req_forget(r);
}

void
accesslog_req_free(struct accesslog_req *r)
{
	free(r->ar_buf);
	r->ar_buf = NULL;
	r->ar_cap = 0;
	accesslog_req_forget(r);
}
