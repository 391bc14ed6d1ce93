/*
 * http.h - HTTP/1.x request parsing and response formatting (RFC 9112);
 * a chunked body's framing is chunked.h's.
 */
#ifndef HITCOUNTD_HTTP_H
#define HITCOUNTD_HTTP_H

#include <stddef.h>
#include <sys/types.h>

enum http_method {
	HTTP_GET = 1,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_OTHER
};

struct http_limits {
	size_t hl_max_head;     /* request line + header fields, bytes */
	int hl_max_headers;     /* header fields */
};

struct http_request {
	int r_method;                   /* enum http_method */
	const char *r_path;             /* points into the caller's buffer */
	size_t r_pathlen;               /* without the query string */
	int r_minor;                    /* HTTP/1.r_minor */
	int r_keepalive;                /* the client allows a persistent connection */
	int r_json;                     /* Accept prefers application/json */
	int r_expect_continue;          /* Expect: 100-continue */
	int r_chunked;                  /* Transfer-Encoding: chunked */
	long long r_content_length;     /* -1 when absent */
	const char *r_line;             /* the request line, for the access log */
	size_t r_line_len;
	const char *r_referer;          /* NULL when absent */
	size_t r_referer_len;
	const char *r_agent;            /* User-Agent; NULL when absent */
	size_t r_agent_len;
};

/*
 * Where the parsing of a request head that is still arriving resumes:
 * zero it for a new request and keep it while more bytes arrive, so that
 * a slow client costs linear time.
 */
struct http_scan {
	size_t hs_off;          /* bytes before it were searched */
	int hs_line;            /* the request line has come and is valid */
};

/*
 * Parse one request head (request line and header fields) at the start of
 * buf, resuming at *scan.  Returns the length of the head (the body, if
 * any, starts there), 0 when more bytes are needed, or -1 with *status
 * set to the error to answer (400, 414, 417, 431, 501, 505) and
 * req->r_method as http_request_method() says.  A request line that is
 * wrong is an error as soon as it is complete, whether or not the rest of
 * the head has come.  req points into buf.
 */
ssize_t http_parse_request(const char *buf, size_t len,
    struct http_scan *scan, const struct http_limits *lim,
    struct http_request *req, int *status);

/*
 * The method (enum http_method) of the request whose head starts at buf
 * (len bytes, complete or not), once its method token and the space
 * after it are there; 0 before, or if they are no method.  An error
 * answer to HEAD must have no body either (RFC 9110 9.3.2), even when
 * the rest of the head is refused or never comes.
 */
int http_request_method(const char *buf, size_t len);

/*
 * Whether an Accept field value prefers application/json over text/html
 * (RFC 9110 12.5.1 quality values; the most specific range wins).
 * Returns 1 or 0.
 */
int http_accept_prefers_json(const char *v, size_t len);

/*
 * The character classes of RFC 9110 5.6.2 and 5.5: a token's character,
 * and a field value's (VCHAR, obs-text, SP and HTAB).  1 or 0.
 */
int http_is_tchar(unsigned char c);
int http_is_vchar(unsigned char c);

/* Flags for http_format_response(). */
#define HTTP_F_HEAD      0x01   /* headers only (HEAD) */
#define HTTP_F_CLOSE     0x02   /* Connection: close */
#define HTTP_F_KEEPALIVE 0x04   /* Connection: keep-alive (HTTP/1.0 client) */
#define HTTP_F_NOSTORE   0x08   /* Cache-Control: no-store, Vary: Accept */
#define HTTP_F_RETRY     0x10   /* Retry-After: 1 */
#define HTTP_F_ALLOW     0x20   /* Allow: GET, HEAD */

/*
 * Write a whole response into out (cap bytes).  status is a three-digit
 * code; content_length is what the Content-Length field says; body
 * (bodylen bytes) is copied unless HTTP_F_HEAD is set.  HTTP_F_CLOSE wins
 * over HTTP_F_KEEPALIVE.  Returns the length written, or 0 (and nothing
 * written) if it does not fit in cap.
 */
size_t http_format_response(char *out, size_t cap, int status,
    const char *ctype, const char *body, size_t bodylen,
    size_t content_length, int flags);

/*
 * The status codes this server answers with: the one table of them,
 * which metrics.c counts by too.  hst_series says whether /metrics
 * counts the code in a series of its own (the others count as "other").
 */
struct http_status {
	int hst_code;
	const char *hst_reason;
	int hst_series;
};
#define HTTP_STATUS_N 14
extern const struct http_status http_statuses[HTTP_STATUS_N];

/* The index of status in http_statuses, or -1 if it is not there. */
int http_status_index(int status);

/* The reason phrase of a status code ("Unknown" if not in the table). */
const char *http_reason(int status);

/* Write v in decimal at buf (at least 20 bytes); returns the length. */
size_t http_format_uint(char *buf, unsigned long long v);

#endif
