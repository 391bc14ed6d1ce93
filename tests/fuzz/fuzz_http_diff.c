/*
 * fuzz_http_diff.c - differential libFuzzer target: hitcountd's request
 * parser (http.c, driven as conn.c drives it) against llhttp, Node's
 * parser, in its strict mode (no lenient flag set).
 *
 * Request smuggling is two parsers framing the same bytes differently.
 * Each input is a stream on one connection, fed to both whole and one
 * byte at a time (a split at every byte); the two must take or refuse
 * the same requests and frame each alike: its method, target and
 * version, keep-alive, the length of a Content-Length body, and the
 * byte where the next request starts.  Where hitcountd stops reading (a
 * request that closes the connection, a refusal) the comparison stops.
 * A difference aborts, unless diff_explained() names it as one of the
 * deliberate ones that hitcountd.8 lists under STANDARDS, with why.
 * A refusal against an incomplete request is no difference: the other
 * parser would judge it once more bytes came.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* llhttp.h and http.h both name methods HTTP_GET, HTTP_HEAD, HTTP_POST. */
#define HTTP_GET        LLHTTP_GET
#define HTTP_HEAD       LLHTTP_HEAD
#define HTTP_POST       LLHTTP_POST
#include <llhttp.h>
#undef HTTP_GET
#undef HTTP_HEAD
#undef HTTP_POST

#include "chunked.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIFF_MSGS       16              /* requests compared per input */
#define DIFF_MAX_BODY   (1024 * 1024)   /* conn.c's CONN_MAX_BODY */

enum { DIFF_MORE = 0, DIFF_DONE, DIFF_REFUSED, DIFF_UPGRADE };

/* One request as a parser framed it; spans are offsets in the input. */
struct diff_msg {
	size_t m_method[2], m_target[2];
	int m_head;                     /* the head has been parsed */
	int m_major, m_minor, m_keepalive, m_chunked;
	unsigned long long m_body;      /* data bytes (llhttp: all bodies) */
	size_t m_end;                   /* just past it; 0 while incomplete */
	/* What llhttp saw of the header fields, for diff_explained(). */
	int m_host, m_host_bad, m_cl, m_te, m_expect;
};

struct diff_run {
	struct diff_msg r_msg[DIFF_MSGS];
	int r_n;                /* requests begun */
	int r_state;            /* DIFF_MORE, ... */
	int r_why;              /* refused: hitcountd's status, llhttp's errno */
	size_t r_at;            /* refused: llhttp's error position */
};

/* ---------------------------------------------------------------- hitcountd */

/* A request head http.c took: fill m from req (r_line points into in). */
static void
diff_hc_msg(struct diff_msg *m, const char *in, const struct http_request *req)
{
	size_t line = (size_t)(req->r_line - in), mlen = 0;

	while (req->r_line[mlen] != ' ')
		mlen++;
	m->m_head = 1;
	m->m_method[0] = line;
	m->m_method[1] = line + mlen;
	m->m_target[0] = line + mlen + 1;
	m->m_target[1] = line + req->r_line_len - 9;
	m->m_major = req->r_line[req->r_line_len - 3] - '0';
	m->m_minor = req->r_line[req->r_line_len - 1] - '0';
	m->m_keepalive = req->r_keepalive;
	m->m_chunked = req->r_chunked;
	m->m_body = req->r_content_length > 0 ?
	    (unsigned long long)req->r_content_length : 0;
}

/*
 * Feed in to http.c step bytes at a time, as conn.c does: parse a head,
 * refuse a body over 1 MiB (413), skip the body, stop after a request
 * that closes the connection.
 */
static void
diff_hc_run(const char *in, size_t len, size_t step, struct diff_run *r)
{
	struct http_limits lim = { 1 << 20, 1 << 20 };  /* no 414, 431 */
	struct http_scan scan = { 0, 0 };
	struct chunked ch;
	struct http_request req;
	size_t have = 0, off = 0;
	long long left = 0;
	int chunked = 0, stop = 0, status, done;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	while (have < len) {
		have = have + step < len ? have + step : len;
		for (;;) {
			if (left > 0 || chunked) {
				if (chunked) {
					n = chunked_skip(&ch, in + off,
					    have - off, DIFF_MAX_BODY, &done);
					if (n < 0) {
						r->r_state = DIFF_REFUSED;
						r->r_why = 400;
						return;
					}
				} else {
					n = have - off < (size_t)left ?
					    (ssize_t)(have - off) : left;
					left -= n;
					done = left == 0;
				}
				off += n;
				if (!done)
					break;
				chunked = 0;
				r->r_msg[r->r_n - 1].m_end = off;
				if (stop || r->r_n == DIFF_MSGS) {
					r->r_state = DIFF_DONE;
					return;
				}
			}
			if (off == have)
				break;
			n = http_parse_request(in + off, have - off, &scan, &lim,
			    &req, &status);
			if (n == 0)
				break;
			memset(&scan, 0, sizeof(scan));
			if (n < 0 || req.r_content_length > DIFF_MAX_BODY) {
				r->r_state = DIFF_REFUSED;
				r->r_why = n < 0 ? status : 413;
				return;
			}
			diff_hc_msg(&r->r_msg[r->r_n++], in, &req);
			off += n;
			stop = !req.r_keepalive;
			if (req.r_chunked) {
				memset(&ch, 0, sizeof(ch));
				chunked = 1;
			} else if (req.r_content_length > 0)
				left = req.r_content_length;
			else {
				r->r_msg[r->r_n - 1].m_end = off;
				if (stop || r->r_n == DIFF_MSGS) {
					r->r_state = DIFF_DONE;
					return;
				}
			}
		}
	}
}

/* ------------------------------------------------------------------- llhttp */

struct diff_ll {
	struct diff_run *l_run;
	const char *l_in;
	int l_ended;                    /* on_message_complete has come */
	char l_name[24];                /* the field being read, lower case */
	size_t l_namelen;
	size_t l_value[2];              /* its value's span */
};

static struct diff_msg *
diff_ll_msg(llhttp_t *p)
{
	struct diff_ll *ll = p->data;

	return &ll->l_run->r_msg[ll->l_run->r_n - 1];
}

/* Grow a span with the piece at..at+len of a callback's data. */
static void
diff_span(size_t span[2], const struct diff_ll *ll, const char *at, size_t len)
{
	if (span[1] == 0)
		span[0] = (size_t)(at - ll->l_in);
	span[1] = (size_t)(at - ll->l_in) + len;
}

static int
diff_ll_begin(llhttp_t *p)
{
	struct diff_ll *ll = p->data;

	if (ll->l_run->r_n == DIFF_MSGS)
		abort();        /* diff_ll_piece() stops at DIFF_MSGS */
	memset(&ll->l_run->r_msg[ll->l_run->r_n++], 0, sizeof(struct diff_msg));
	return 0;
}

static int
diff_ll_method(llhttp_t *p, const char *at, size_t len)
{
	diff_span(diff_ll_msg(p)->m_method, p->data, at, len);
	return 0;
}

static int
diff_ll_url(llhttp_t *p, const char *at, size_t len)
{
	diff_span(diff_ll_msg(p)->m_target, p->data, at, len);
	return 0;
}

static int
diff_ll_field(llhttp_t *p, const char *at, size_t len)
{
	struct diff_ll *ll = p->data;
	size_t i;

	for (i = 0; i < len && ll->l_namelen < sizeof(ll->l_name) - 1; i++)
		ll->l_name[ll->l_namelen++] = (char)(at[i] | 0x20);
	ll->l_name[ll->l_namelen] = '\0';
	ll->l_value[0] = ll->l_value[1] = 0;
	return 0;
}

static int
diff_ll_value(llhttp_t *p, const char *at, size_t len)
{
	struct diff_ll *ll = p->data;

	diff_span(ll->l_value, ll, at, len);
	return 0;
}

/* Whether http.c takes v as a Host value, asked with a request of its own. */
static int
diff_host_ok(const char *v, size_t len)
{
	struct http_limits lim = { 1 << 20, 1 << 20 };
	struct http_scan scan = { 0, 0 };
	struct http_request req;
	char buf[4200];
	int n, status;

	if (len > 4096 || memchr(v, '\r', len) || memchr(v, '\n', len))
		return 0;
	n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %.*s\r\n\r\n",
	    (int)len, v);
	return http_parse_request(buf, (size_t)n, &scan, &lim, &req,
	    &status) > 0;
}

/* A field has ended: count what diff_explained() needs. */
static int
diff_ll_value_done(llhttp_t *p)
{
	struct diff_ll *ll = p->data;
	struct diff_msg *m = diff_ll_msg(p);
	size_t vlen = ll->l_value[1] - ll->l_value[0];

	if (m->m_head)
		;               /* a trailer field: it frames nothing */
	else if (strcmp(ll->l_name, "host") == 0) {
		m->m_host++;
		if (!diff_host_ok(ll->l_in + ll->l_value[0], vlen))
			m->m_host_bad = 1;
	} else if (strcmp(ll->l_name, "content-length") == 0)
		m->m_cl++;
	else if (strcmp(ll->l_name, "transfer-encoding") == 0)
		m->m_te++;
	else if (strcmp(ll->l_name, "expect") == 0)
		m->m_expect++;
	ll->l_namelen = 0;
	ll->l_value[0] = ll->l_value[1] = 0;
	return 0;
}

static int
diff_ll_headers_done(llhttp_t *p)
{
	struct diff_msg *m = diff_ll_msg(p);

	m->m_head = 1;
	m->m_major = llhttp_get_http_major(p);
	m->m_minor = llhttp_get_http_minor(p);
	m->m_keepalive = llhttp_should_keep_alive(p);
	m->m_chunked = (p->flags & F_CHUNKED) != 0;
	return 0;
}

static int
diff_ll_body(llhttp_t *p, const char *at, size_t len)
{
	(void)at;
	diff_ll_msg(p)->m_body += len;
	return 0;
}

/* Pause, so that the caller learns the byte where the request ended. */
static int
diff_ll_done(llhttp_t *p)
{
	struct diff_ll *ll = p->data;

	ll->l_ended = 1;
	return HPE_PAUSED;
}

static llhttp_settings_t diff_settings = {
	.on_message_begin = diff_ll_begin,
	.on_method = diff_ll_method,
	.on_url = diff_ll_url,
	.on_header_field = diff_ll_field,
	.on_header_value = diff_ll_value,
	.on_header_value_complete = diff_ll_value_done,
	.on_headers_complete = diff_ll_headers_done,
	.on_body = diff_ll_body,
	.on_message_complete = diff_ll_done,
};

/*
 * Execute llhttp on the piece s..e.  Returns 0 to go on with the next
 * piece, 1 when the comparison ends (r->r_state says how).
 */
static int
diff_ll_piece(llhttp_t *p, struct diff_run *r, const char *in, const char *s,
    const char *e)
{
	struct diff_ll *ll = p->data;
	llhttp_errno_t err;

	while (s < e) {
		err = llhttp_execute(p, s, (size_t)(e - s));
		if (err == HPE_OK)
			return 0;
		if (err == HPE_PAUSED_UPGRADE) {
			r->r_state = DIFF_UPGRADE;
			return 1;
		}
		if (err != HPE_PAUSED) {
			r->r_state = DIFF_REFUSED;
			r->r_why = err;
			r->r_at = (size_t)(llhttp_get_error_pos(p) - in);
			return 1;
		}
		s = llhttp_get_error_pos(p);
		if (!ll->l_ended)
			abort();        /* only diff_ll_done() pauses */
		ll->l_ended = 0;
		r->r_msg[r->r_n - 1].m_end = (size_t)(s - in);
		if (!r->r_msg[r->r_n - 1].m_keepalive || r->r_n == DIFF_MSGS) {
			r->r_state = DIFF_DONE;
			return 1;
		}
		llhttp_resume(p);
	}
	return 0;
}

static void
diff_ll_run(const char *in, size_t len, size_t step, struct diff_run *r)
{
	struct diff_ll ll;
	llhttp_t p;
	size_t off;

	memset(r, 0, sizeof(*r));
	memset(&ll, 0, sizeof(ll));
	ll.l_run = r;
	ll.l_in = in;
	llhttp_init(&p, HTTP_REQUEST, &diff_settings);
	p.data = &ll;
	for (off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;

		if (diff_ll_piece(&p, r, in, in + off, in + off + n))
			return;
	}
}

/* ------------------------------------------------------------- comparison */

/* Requests a run has read to their end. */
static int
diff_complete(const struct diff_run *r)
{
	int i = 0;

	while (i < r->r_n && r->r_msg[i].m_end != 0)
		i++;
	return i;
}

/* Whether two parsers framed request a and b alike, as far as both got. */
static int
diff_same_msg(const struct diff_msg *a, const struct diff_msg *b)
{
	if (a->m_head && b->m_head &&
	    (memcmp(a->m_method, b->m_method, sizeof(a->m_method)) != 0 ||
	    memcmp(a->m_target, b->m_target, sizeof(a->m_target)) != 0 ||
	    a->m_major != b->m_major || a->m_minor != b->m_minor ||
	    a->m_keepalive != b->m_keepalive || a->m_chunked != b->m_chunked))
		return 0;
	if (a->m_end != 0 && b->m_end != 0 && (a->m_end != b->m_end ||
	    (!a->m_chunked && a->m_body != b->m_body)))
		return 0;
	return 1;
}

/*
 * Whether h (hitcountd) and l (llhttp) agree; *at is the request where
 * they part.
 */
static int
diff_agree(const struct diff_run *h, const struct diff_run *l, int *at)
{
	int hc = diff_complete(h), lc = diff_complete(l), i;
	int n = h->r_n < l->r_n ? h->r_n : l->r_n;

	for (i = 0; i < n; i++)
		if (!diff_same_msg(&h->r_msg[i], &l->r_msg[i])) {
			*at = i;
			return 0;
		}
	*at = hc < lc ? hc : lc;
	if (l->r_state == DIFF_UPGRADE)
		return hc >= lc;        /* llhttp hands the connection over */
	if (hc != lc)
		return 0;
	if (h->r_state == l->r_state)
		return 1;
	/* Refused by one while the other waits for more of that request. */
	return (h->r_state == DIFF_REFUSED && l->r_state == DIFF_MORE) ||
	    (l->r_state == DIFF_REFUSED && h->r_state == DIFF_MORE);
}

/*
 * The deliberate differences, each stated in hitcountd.8 (STANDARDS).
 * hitcountd refuses more: what RFC 9112 makes a MUST of, and its limits.
 * llhttp refuses more: what RFC 9110 and 9112 let a server take.
 */
enum {
	DIFF_SAME = 0,
	DIFF_X_HOST,            /* Host missing (1.1), twice or invalid */
	DIFF_X_VERSION,         /* 505 to major != 1; llhttp: 1.2 to 1.9 */
	DIFF_X_CODING,          /* 501 to a coding other than chunked */
	DIFF_X_TE10,            /* Transfer-Encoding in HTTP/1.0 */
	DIFF_X_EXPECT,          /* 417 */
	DIFF_X_BODY,            /* 413: a body over 1 MiB */
	DIFF_X_TARGET,          /* authority-form, asterisk but for OPTIONS */
	DIFF_X_METHOD,          /* llhttp knows a list of methods only */
	DIFF_X_BARE_LF,         /* a head's lines may end in LF alone */
	DIFF_X_SAME_CL,         /* Content-Length twice, the same value */
	DIFF_X_CHUNK_EXT,       /* a chunk extension's syntax is not judged */
	DIFF_X_CLOSE10,         /* HTTP/1.0 keep-alive and close: close wins */
	DIFF_X_BLANK,           /* over 16 bytes of empty lines, or a CR */
	DIFF_X_TRAILER,         /* framing fields in a trailer are ignored */
	DIFF_X_SPACES,          /* one SP between the request line's parts */
	DIFF_X_CL_TAB,          /* llhttp: no HTAB after a Content-Length */
	DIFF_X_CONN_TAB,        /* llhttp: no HTAB around a Connection token */
	DIFF_X_NONE             /* no reason: a defect */
};

static const char *const diff_names[] = {
	"same", "host", "version", "coding", "te-in-1.0", "expect", "body",
	"target", "method", "bare-lf", "same-cl", "chunk-ext", "close-1.0", "blank-lines", "trailer", "spaces", "cl-tab", "conn-tab",
	"UNEXPLAINED"
};

/* Does the head of the request starting at from have a bare LF before to? */
static int
diff_bare_lf(const char *in, size_t from, size_t to)
{
	size_t i;

	for (i = from; i <= to; i++)
		if (in[i] == '\n' && (i == from || in[i - 1] != '\r'))
			return 1;
	return 0;
}

/* Is at after the ";" of a chunk-size line (hex digits, then ";")? */
static int
diff_in_chunk_ext(const char *in, size_t start, size_t at)
{
	size_t i = at;

	while (i > start && in[i - 1] != '\n')
		i--;
	if (i == at || !isxdigit((unsigned char)in[i]))
		return 0;
	while (i < at && isxdigit((unsigned char)in[i]))
		i++;
	return i < at && in[i] == ';';
}

/* How often name: occurs at a line start between from and to. */
static int
diff_count_field(const char *in, size_t from, size_t to, const char *name)
{
	size_t i, n = strlen(name);
	int count = 0;

	for (i = from; i + n < to; i++)
		if (in[i] == '\n' && strncasecmp(in + i + 1, name, n) == 0)
			count++;
	return count;
}

/*
 * Whether the CR and LF bytes llhttp skipped before the method at method
 * are more than 16, or have a CR not followed by LF (hitcountd skips 16
 * bytes of empty lines, each CRLF or LF).
 */
static int
diff_blank(const char *in, size_t method)
{
	size_t n = 0, i;

	while (n < method && (in[method - n - 1] == '\r' ||
	    in[method - n - 1] == '\n'))
		n++;
	for (i = method - n; i < method; i++)
		if (in[i] == '\r' && in[i + 1] != '\n')
			return 1;
	return n > 16;
}

/* hitcountd refused request i, which llhttp took (its head at least). */
static int
diff_hc_refuses(const char *in, const struct diff_run *h,
    const struct diff_msg *m)
{
	const char *t = in + m->m_target[0];
	size_t tlen = m->m_target[1] - m->m_target[0];

	if (!m->m_head)
		return DIFF_X_NONE;
	if (h->r_why == 400 && diff_blank(in, m->m_method[0]))
		return DIFF_X_BLANK;
	if (h->r_why == 400 && (in[m->m_target[0] - 2] == ' ' ||
	    in[m->m_target[1] + 1] == ' '))
		return DIFF_X_SPACES;
	if ((h->r_why == 505 && m->m_major != 1) ||
	    (h->r_why == 400 && m->m_major == 0 && m->m_minor == 9))
		return DIFF_X_VERSION;  /* HTTP/0.9 has no version to refuse */
	if (h->r_why == 501 && m->m_te > 0)
		return DIFF_X_CODING;
	if (h->r_why == 417 && m->m_expect > 0)
		return DIFF_X_EXPECT;
	if (h->r_why == 413)
		return DIFF_X_BODY;
	if (h->r_why != 400)
		return DIFF_X_NONE;
	if ((m->m_minor == 1 && m->m_host == 0) || m->m_host > 1 ||
	    m->m_host_bad)
		return DIFF_X_HOST;
	if (m->m_te > 0 && m->m_minor == 0)
		return DIFF_X_TE10;
	if (tlen > 0 && t[0] != '/' && !(tlen == 1 && t[0] == '*' &&
	    m->m_method[1] - m->m_method[0] == 7 &&
	    memcmp(in + m->m_method[0], "OPTIONS", 7) == 0))
		return DIFF_X_TARGET;
	return DIFF_X_NONE;
}

/* llhttp refused request i (at byte l->r_at), which hitcountd took. */
static int
diff_ll_refuses(const char *in, const struct diff_run *l,
    const struct diff_msg *m, size_t start)
{
	size_t at = l->r_at;

	if (!m->m_head)
		return DIFF_X_NONE;
	if (l->r_why == HPE_INVALID_METHOD)
		return DIFF_X_METHOD;
	if (diff_bare_lf(in, start, at))
		return DIFF_X_BARE_LF;
	if (l->r_why == HPE_INVALID_VERSION && m->m_major == 1)
		return DIFF_X_VERSION;
	if (l->r_why == HPE_INVALID_CONTENT_LENGTH && in[at] == '\t')
		return DIFF_X_CL_TAB;   /* OWS, RFC 9110 5.6.3 */
	if (m->m_chunked && diff_in_chunk_ext(in, start, at))
		return DIFF_X_CHUNK_EXT;
	if (m->m_chunked && l->r_msg[l->r_n - 1].m_head &&
	    (l->r_why == HPE_INVALID_TRANSFER_ENCODING ||
	    l->r_why == HPE_UNEXPECTED_CONTENT_LENGTH ||
	    l->r_why == HPE_INVALID_CONTENT_LENGTH))
		return DIFF_X_TRAILER;  /* the head was taken: a trailer */
	if (l->r_why == HPE_UNEXPECTED_CONTENT_LENGTH &&
	    diff_count_field(in, start, at + 1, "content-length:") >= 2 &&
	    !m->m_chunked)
		return DIFF_X_SAME_CL;
	return DIFF_X_NONE;
}

/*
 * Whether a and b framed a request alike but for keep-alive; with ends
 * 0, also but for where it ended.
 */
static int
diff_same_but_keepalive(const struct diff_msg *a, const struct diff_msg *b,
    int ends)
{
	struct diff_msg c = *b;

	c.m_keepalive = a->m_keepalive;
	if (!ends)
		c.m_end = 0;
	return diff_same_msg(a, &c);
}

/*
 * Both took request i, but llhttp keeps an HTTP/1.0 connection alive
 * that says both keep-alive and close; RFC 9112 9.3 has close win.
 */
static int
diff_close10(const struct diff_msg *a, const struct diff_msg *b)
{
	if (!a->m_head || !b->m_head || a->m_minor != 0 || a->m_keepalive ||
	    !b->m_keepalive)
		return 0;
	/* hitcountd does not read on: a body ends it */
	return diff_same_but_keepalive(a, b, 0);
}

/*
 * Whether a Connection field of the head whose request line starts at
 * from has a HTAB in its value: optional whitespace around its tokens to
 * RFC 9110 (5.5, 5.6.1), which llhttp reads as part of the token.
 */
static int
diff_conn_has_tab(const char *in, size_t len, size_t from)
{
	static const char name[] = "connection:";
	size_t i = from, n = sizeof(name) - 1;
	int tab;

	while (i < len) {
		/* i is at the start of a line; an empty one ends the head */
		if (i != from && (in[i] == '\r' || in[i] == '\n'))
			return 0;
		tab = 0;
		if (len - i > n && strncasecmp(in + i, name, n) == 0)
			tab = 1;
		for (; i < len && in[i] != '\n'; i++)
			if (tab && in[i] == '\t')
				return 1;
		i++;
	}
	return 0;
}

/*
 * Both took request i alike but for keep-alive, and a tab stands next to
 * a Connection token: hitcountd takes "keep-alive<TAB>" as keep-alive and
 * "close<TAB>" as close, llhttp as neither.
 */
static int
diff_conn_tab(const char *in, size_t len, const struct diff_msg *a,
    const struct diff_msg *b)
{
	if (!a->m_head || !b->m_head || a->m_keepalive == b->m_keepalive)
		return 0;
	return diff_same_but_keepalive(a, b, 1) &&
	    diff_conn_has_tab(in, len, a->m_method[0]);
}

/* Why h and l part at request i: one of DIFF_X_*. */
static int
diff_explained(const char *in, size_t len, const struct diff_run *h,
    const struct diff_run *l, int i)
{
	size_t start = i > 0 ? h->r_msg[i - 1].m_end : 0;

	if (i < h->r_n && i < l->r_n && diff_close10(&h->r_msg[i],
	    &l->r_msg[i]))
		return DIFF_X_CLOSE10;
	if (i < h->r_n && i < l->r_n && diff_conn_tab(in, len, &h->r_msg[i],
	    &l->r_msg[i]))
		return DIFF_X_CONN_TAB;

	if (h->r_state == DIFF_REFUSED && i < l->r_n &&
	    (i >= h->r_n || !h->r_msg[i].m_end))
		return diff_hc_refuses(in, h, &l->r_msg[i]);
	if (l->r_state == DIFF_REFUSED && i < h->r_n &&
	    (i >= l->r_n || !l->r_msg[i].m_end))
		return diff_ll_refuses(in, l, &h->r_msg[i], start);
	return DIFF_X_NONE;
}

static unsigned long long diff_runs, diff_seen[DIFF_X_NONE + 1];

static void
diff_report(void)
{
	size_t i;

	fprintf(stderr, "fuzz_http_diff: %llu inputs, %llu with no difference "
	    "whole and split at every byte", diff_runs, diff_seen[DIFF_SAME]);
	for (i = 1; i < DIFF_X_NONE; i++)
		if (diff_seen[i])
			fprintf(stderr, ", %s %llu", diff_names[i], diff_seen[i]);
	fprintf(stderr, "\n");
}

/* Print both runs and abort: a difference nobody explained. */
static void
diff_fail(const char *in, size_t len, const char *how,
    const struct diff_run *h, const struct diff_run *l, int i)
{
	fprintf(stderr, "fuzz_http_diff: %s, request %d: hitcountd state %d "
	    "(%d), %d requests; llhttp state %d (%s at %zu), %d requests\n",
	    how, i, h->r_state, h->r_why, h->r_n, l->r_state,
	    llhttp_errno_name(l->r_why), l->r_at, l->r_n);
	fprintf(stderr, "input: \"");
	for (; len > 0; len--, in++)
		fprintf(stderr, (*in >= 0x20 && *in < 0x7f && *in != '"' &&
		    *in != '\\') ? "%c" : "\\x%02x", (unsigned char)*in);
	fprintf(stderr, "\"\n");
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const how[] = { "whole", "split at every byte" };
	static int registered;
	struct diff_run h, l;
	char *buf = malloc(size ? size : 1);
	int k, i, why = DIFF_SAME, w;

	if (buf == NULL)
		return 0;
	if (!registered++)
		atexit(diff_report);
	memcpy(buf, data, size);        /* an exact-size copy, for ASan */
	for (k = 0; k < 2; k++) {
		size_t step = k == 0 ? (size ? size : 1) : 1;

		diff_hc_run(buf, size, step, &h);
		diff_ll_run(buf, size, step, &l);
		if (diff_agree(&h, &l, &i))
			continue;
		w = diff_explained(buf, size, &h, &l, i);
		if (w == DIFF_X_NONE)
			diff_fail(buf, size, how[k], &h, &l, i);
		why = w;
	}
	diff_runs++;
	diff_seen[why]++;
	free(buf);
	return 0;
}
