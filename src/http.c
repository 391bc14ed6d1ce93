/*
 * http.c - the HTTP/1.x wire format: parsing a request head and writing a
 * response.
 *
 * The parser is strict, as RFC 9112 asks of a server that faces the
 * internet: anything ambiguous (bare CR, NUL, obsolete line folding, a
 * space before the colon, two Host fields, Content-Length beside
 * Transfer-Encoding, ...) is refused rather than guessed at, because two
 * parsers that guess differently are how requests get smuggled.  It works
 * on the bytes of a head in a buffer, judging the request line as soon as
 * it is complete and the rest once the head is, and allocates nothing;
 * the connection keeps the bytes.  Nothing here does I/O, so the unit
 * tests and the fuzzer drive it directly.  A chunked body's framing is
 * chunked.c's (it uses the character classes here); the status codes
 * answered, with their reason phrases, are the one table here.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "http.h"
#include "util.h"

/*
 * Character classes, as a constant table: nothing is built on the request
 * path, and nothing depends on the locale (isalnum() in a Latin-1 locale
 * takes 0xe9 for a letter).
 */
#define HTTP_C_TCHAR    0x01    /* RFC 9110 5.6.2 tchar: the token's */
#define HTTP_C_REGNAME  0x02    /* RFC 3986 reg-name's, but pct-encoded */
#define T               HTTP_C_TCHAR
#define R               HTTP_C_REGNAME
#define TR              (HTTP_C_TCHAR | HTTP_C_REGNAME)
static const unsigned char http_class[256] = {
	['!'] = TR, ['#'] = T, ['$'] = TR, ['%'] = T, ['&'] = TR, ['\''] = TR,
	['('] = R, [')'] = R, ['*'] = TR, ['+'] = TR, [','] = R, ['-'] = TR,
	['.'] = TR, [';'] = R, ['='] = R, ['^'] = T, ['_'] = TR, ['`'] = T,
	['|'] = T, ['~'] = TR,
	['0'] = TR, ['1'] = TR, ['2'] = TR, ['3'] = TR, ['4'] = TR, ['5'] = TR,
	['6'] = TR, ['7'] = TR, ['8'] = TR, ['9'] = TR,
	['A'] = TR, ['B'] = TR, ['C'] = TR, ['D'] = TR, ['E'] = TR, ['F'] = TR,
	['G'] = TR, ['H'] = TR, ['I'] = TR, ['J'] = TR, ['K'] = TR, ['L'] = TR,
	['M'] = TR, ['N'] = TR, ['O'] = TR, ['P'] = TR, ['Q'] = TR, ['R'] = TR,
	['S'] = TR, ['T'] = TR, ['U'] = TR, ['V'] = TR, ['W'] = TR, ['X'] = TR,
	['Y'] = TR, ['Z'] = TR,
	['a'] = TR, ['b'] = TR, ['c'] = TR, ['d'] = TR, ['e'] = TR, ['f'] = TR,
	['g'] = TR, ['h'] = TR, ['i'] = TR, ['j'] = TR, ['k'] = TR, ['l'] = TR,
	['m'] = TR, ['n'] = TR, ['o'] = TR, ['p'] = TR, ['q'] = TR, ['r'] = TR,
	['s'] = TR, ['t'] = TR, ['u'] = TR, ['v'] = TR, ['w'] = TR, ['x'] = TR,
	['y'] = TR, ['z'] = TR,
};
#undef T
#undef R
#undef TR

int
http_is_tchar(unsigned char c)
{
	return http_class[c] & HTTP_C_TCHAR;
}

int
http_is_vchar(unsigned char c)
{
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

static int
http_ieq(const char *a, size_t alen, const char *lit)
{
	size_t n = strlen(lit);

	return alen == n && strncasecmp(a, lit, n) == 0;
}

/*
 * Find the end of the head: the empty line after the header fields.
 * Returns the offset just past it, or 0 if it is not in buf yet.
 */
static size_t
http_find_head_end(const char *buf, size_t len, size_t *scan)
{
	size_t i = *scan;

	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);

		if (nl == NULL) {
			i = len;
			break;
		}
		i = (size_t)(nl - buf);
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
		if (i + 2 >= len)
			break;  /* the empty line may still be arriving */
		i++;
	}
	*scan = i;
	return 0;
}

/* Parse a Content-Length value: digits only, no overflow. */
static long long
http_parse_length(const char *v, size_t len)
{
	long long n = 0;
	size_t i;

	if (len == 0 || len > 18)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

/* Parse a qvalue (RFC 9110 12.4.2) as thousandths; -1 if malformed. */
static int
http_parse_q(const char *v, size_t len)
{
	int q, scale = 100;
	size_t i;

	if (len == 0 || (v[0] != '0' && v[0] != '1'))
		return -1;
	q = (v[0] - '0') * 1000;
	if (len == 1)
		return q;
	if (v[1] != '.' || len > 5)
		return -1;
	for (i = 2; i < len; i++, scale /= 10) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		q += (v[i] - '0') * scale;
	}
	return q > 1000 ? -1 : q;
}

int
http_accept_prefers_json(const char *v, size_t len)
{
	/* Best quality seen for each type, with the specificity it came from. */
	int q_json = 0, spec_json = -1, q_html = 0, spec_html = -1;
	size_t i = 0;

	while (i < len) {
		size_t start, end, tend;
		int q = 1000, spec;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',')
			i++;
		end = i;
		/* media range up to ';' */
		for (tend = start; tend < end && v[tend] != ';' &&
		    v[tend] != ' ' && v[tend] != '\t'; tend++)
			;
		/* parameters: look for q= */
		{
			size_t p = tend;

			while (p < end) {
				size_t ps, pe;

				while (p < end && v[p] != ';')
					p++;
				if (p >= end)
					break;
				p++;
				while (p < end && (v[p] == ' ' || v[p] == '\t'))
					p++;
				ps = p;
				while (p < end && v[p] != ';' && v[p] != ' ' &&
				    v[p] != '\t')
					p++;
				pe = p;
				if (pe - ps >= 2 && (v[ps] == 'q' || v[ps] == 'Q')
				    && v[ps + 1] == '=') {
					q = http_parse_q(v + ps + 2, pe - ps - 2);
					if (q < 0)
						q = 0;
				}
			}
		}
		if (tend == start)
			continue;
		if (http_ieq(v + start, tend - start, "application/json"))
			spec = 2;
		else if (http_ieq(v + start, tend - start, "application/*"))
			spec = 1;
		else if (http_ieq(v + start, tend - start, "*/*"))
			spec = 0;
		else
			spec = -1;
		if (spec > spec_json) {
			spec_json = spec;
			q_json = q;
		}
		if (http_ieq(v + start, tend - start, "text/html"))
			spec = 2;
		else if (http_ieq(v + start, tend - start, "text/*"))
			spec = 1;
		else if (http_ieq(v + start, tend - start, "*/*"))
			spec = 0;
		else
			spec = -1;
		if (spec > spec_html) {
			spec_html = spec;
			q_html = q;
		}
	}
	if (spec_json < 0)
		return 0;
	if (spec_html < 0)
		return q_json > 0;
	return q_json > q_html;
}

/* Does a comma-separated list field value contain token tok? */
static int
http_list_has(const char *v, size_t len, const char *tok)
{
	size_t i = 0;

	while (i < len) {
		size_t s, e;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < len && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s && http_ieq(v + s, e - s, tok))
			return 1;
	}
	return 0;
}

/*
 * Transfer-Encoding: only chunked alone is understood; any other coding
 * (gzip, chunked) gets 501 rather than a body we would frame wrongly.
 */
static int
http_te_is_chunked(const char *v, size_t len)
{
	return http_ieq(v, len, "chunked");
}

/*
 * RFC 9112 3.2: Host is uri-host [ ":" port ]; anything else is a 400.
 * An empty value is allowed (a target without authority).
 */
static int
http_valid_host(const char *v, size_t len)
{
	size_t i = 0;

	if (len > 0 && v[0] == '[') {
		for (i = 1; i < len && v[i] != ']'; i++)
			if (!isxdigit((unsigned char)v[i]) && v[i] != ':' &&
			    v[i] != '.')
				return 0;
		if (i == len || i == 1)
			return 0;
		i++;
	} else {
		for (; i < len && v[i] != ':'; i++) {
			unsigned char c = (unsigned char)v[i];

			if (http_class[c] & HTTP_C_REGNAME)
				continue;
			if (c == '%' && i + 2 < len &&
			    isxdigit((unsigned char)v[i + 1]) &&
			    isxdigit((unsigned char)v[i + 2])) {
				i += 2;
				continue;
			}
			return 0;
		}
	}
	if (i == len)
		return 1;
	if (v[i] != ':')
		return 0;
	for (i++; i < len; i++)
		if (!isdigit((unsigned char)v[i]))
			return 0;
	return 1;
}

/* The enum http_method of a method token (case-sensitive, RFC 9110 9.1). */
static int
http_method_id(const char *m, size_t mlen)
{
	if (mlen == 3 && memcmp(m, "GET", 3) == 0)
		return HTTP_GET;
	if (mlen == 4 && memcmp(m, "HEAD", 4) == 0)
		return HTTP_HEAD;
	if (mlen == 4 && memcmp(m, "POST", 4) == 0)
		return HTTP_POST;
	return HTTP_OTHER;
}

/*
 * RFC 9112 2.2: the empty lines a client may send before a request line
 * are skipped, up to 16 bytes of them.  Returns where the line starts.
 */
static size_t
http_skip_empty_lines(const char *buf, size_t len)
{
	size_t start = 0;

	while (start < len && start < 16 &&
	    (buf[start] == '\n' || (buf[start] == '\r' &&
	    start + 1 < len && buf[start + 1] == '\n')))
		start += buf[start] == '\r' ? 2 : 1;
	return start;
}

int
http_request_method(const char *buf, size_t len)
{
	size_t start = http_skip_empty_lines(buf, len), i;

	for (i = start; i < len && http_is_tchar((unsigned char)buf[i]); i++)
		;
	if (i == start || i == len || buf[i] != ' ')
		return 0;
	return http_method_id(buf + start, i - start);
}

/*
 * Parse the request line at buf (len bytes, CR LF already stripped).
 * Returns 0, or an HTTP status for the error.
 */
static int
http_parse_request_line(const char *buf, size_t len, struct http_request *req)
{
	const char *p = buf, *end = buf + len, *m, *t, *q;
	size_t mlen, tlen;

	m = p;
	while (p < end && http_is_tchar((unsigned char)*p))
		p++;
	mlen = p - m;
	if (mlen == 0 || p >= end || *p != ' ')
		return 400;
	p++;
	t = p;
	/* Visible ASCII: a URI has no other bytes (RFC 3986 2). */
	while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
		p++;
	tlen = p - t;
	if (tlen == 0 || p >= end || *p != ' ')
		return 400;
	p++;
	if (end - p != 8 || memcmp(p, "HTTP/", 5) != 0 ||
	    p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' || p[7] > '9')
		return 400;
	if (p[5] != '1')
		return 505;
	req->r_minor = p[7] - '0';
	if (req->r_minor > 1)
		req->r_minor = 1;       /* a later 1.x is answered as 1.1 */
	req->r_method = http_method_id(m, mlen);

	/* absolute-form (RFC 9112 3.2.2): keep only the path. */
	if (tlen > 7 && (strncasecmp(t, "http://", 7) == 0 ||
	    (tlen > 8 && strncasecmp(t, "https://", 8) == 0))) {
		const char *a = t + (t[4] == ':' ? 7 : 8), *s = a;

		while (s < t + tlen && *s != '/' && *s != '?')
			s++;
		if (s == a || !http_valid_host(a, (size_t)(s - a)))
			return 400;     /* the authority, as a Host value */
		tlen -= s - t;
		t = s;
		if (tlen == 0 || *t == '?') {
			req->r_path = "/";
			req->r_pathlen = 1;
			return 0;
		}
	} else if (tlen == 1 && *t == '*') {
		if (req->r_method != HTTP_OTHER || mlen != 7 ||
		    memcmp(m, "OPTIONS", 7) != 0)
			return 400;
	} else if (*t != '/')
		return 400;
	q = memchr(t, '?', tlen);
	req->r_path = t;
	req->r_pathlen = q ? (size_t)(q - t) : tlen;
	return 0;
}

/*
 * The request line: from line to its LF at nl.  Fills req's method,
 * target, version and r_line.  Returns 0, or an HTTP status for the error.
 */
static int
http_request_line(const char *line, const char *nl, struct http_request *req)
{
	size_t llen = (size_t)(nl - line);

	if (llen > 0 && line[llen - 1] == '\r')
		llen--;
	req->r_line = line;
	req->r_line_len = llen;
	if (memchr(line, '\r', llen) != NULL)
		return 400;             /* bare CR */
	return http_parse_request_line(line, llen, req);
}

/* What the header fields say that is judged once all are read. */
struct http_seen {
	int se_host, se_cl, se_te;      /* Host, Content-Length, T-E fields */
	int se_close, se_keepalive;     /* Connection options */
};

/*
 * One header field that matters: name (nlen bytes) with the value v to
 * ve.  Returns 0, or an HTTP status for the error.
 */
static int
http_field(const char *name, size_t nlen, const char *v, const char *ve,
    struct http_request *req, struct http_seen *se)
{
	if (http_ieq(name, nlen, "host")) {
		if (se->se_host++ || !http_valid_host(v, ve - v))
			return 400;
	} else if (http_ieq(name, nlen, "content-length")) {
		long long n = http_parse_length(v, ve - v);

		if (n < 0 || (se->se_cl && n != req->r_content_length))
			return 400;
		se->se_cl = 1;
		req->r_content_length = n;
	} else if (http_ieq(name, nlen, "transfer-encoding")) {
		/* A second field makes the list "chunked, ...": not chunked alone. */
		if (se->se_te++ || !http_te_is_chunked(v, ve - v))
			return 501;
	} else if (http_ieq(name, nlen, "connection")) {
		se->se_close |= http_list_has(v, ve - v, "close");
		se->se_keepalive |= http_list_has(v, ve - v, "keep-alive");
	} else if (http_ieq(name, nlen, "referer")) {
		req->r_referer = v;
		req->r_referer_len = ve - v;
	} else if (http_ieq(name, nlen, "user-agent")) {
		req->r_agent = v;
		req->r_agent_len = ve - v;
	} else if (http_ieq(name, nlen, "accept")) {
		req->r_json = http_accept_prefers_json(v, ve - v);
	} else if (http_ieq(name, nlen, "expect")) {
		if (!http_ieq(v, ve - v, "100-continue"))
			return 417;
		req->r_expect_continue = 1;
	}
	return 0;
}

/*
 * Parse the header fields from pos to the end of the head (head, just
 * past its empty line) into req.  Returns head, or -1 with *status set.
 */
static ssize_t
http_parse_fields(const char *buf, size_t pos, size_t head,
    const struct http_limits *lim, struct http_request *req, int *status)
{
	struct http_seen se;
	size_t nfields = 0, nlen;
	int rc;

	memset(&se, 0, sizeof(se));

	for (;;) {
		const char *line = buf + pos, *nl, *colon, *v, *ve;
		size_t llen;

		nl = memchr(line, '\n', head - pos);
		llen = nl - line;
		pos += llen + 1;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (memchr(line, '\r', llen) != NULL) {
			*status = 400;          /* bare CR */
			return -1;
		}
		if (llen == 0)
			break;                  /* the empty line ends the head */
		if (++nfields > (size_t)lim->hl_max_headers) {
			*status = 431;
			return -1;
		}
		if (line[0] == ' ' || line[0] == '\t') {
			*status = 400;          /* obs-fold */
			return -1;
		}
		for (colon = line; colon < line + llen &&
		    http_is_tchar((unsigned char)*colon); colon++)
			;
		if (colon == line || colon == line + llen || *colon != ':') {
			*status = 400;
			return -1;
		}
		for (v = colon + 1; v < line + llen && (*v == ' ' || *v == '\t');
		    v++)
			;
		for (ve = line + llen; ve > v && (ve[-1] == ' ' ||
		    ve[-1] == '\t'); ve--)
			;
		{
			const char *c;

			for (c = v; c < ve; c++)
				if (!http_is_vchar((unsigned char)*c)) {
					*status = 400;
					return -1;
				}
		}
		/* Only a few names matter; their lengths tell them apart cheaply. */
		nlen = colon - line;
		if (nlen != 4 && nlen != 6 && nlen != 7 && nlen != 10 &&
		    nlen != 14 && nlen != 17)
			continue;
		if ((rc = http_field(line, nlen, v, ve, req, &se)) != 0) {
			*status = rc;
			return -1;
		}
	}
	if (se.se_te && (se.se_cl || req->r_minor == 0)) {
		*status = 400;          /* RFC 9112 6.1: smuggling vector */
		return -1;
	}
	if (req->r_minor == 1 && se.se_host == 0) {
		*status = 400;
		return -1;
	}
	req->r_chunked = se.se_te;
	if (req->r_minor == 1)
		req->r_keepalive = !se.se_close;
	else
		req->r_keepalive = se.se_keepalive && !se.se_close;
	return (ssize_t)head;
}

/* http_parse_request() but for the method of a refused request. */
static ssize_t
http_parse_head(const char *buf, size_t len, struct http_scan *scan,
    const struct http_limits *lim, struct http_request *req, int *status)
{
	const char *nl = NULL;
	size_t head, start = http_skip_empty_lines(buf, len);
	int rc;

	if (scan->hs_off < start)
		scan->hs_off = start;
	memset(req, 0, sizeof(*req));
	req->r_content_length = -1;

	/*
	 * The request line is checked as soon as its LF is here: a line that
	 * is no request line is answered at once, not at header_timeout.
	 * Only the bytes not seen before are searched, as below.
	 */
	if (!scan->hs_line) {
		nl = memchr(buf + scan->hs_off, '\n', len - scan->hs_off);
		if (nl == NULL && len - start <= lim->hl_max_head) {
			scan->hs_off = len;
			return 0;
		}
		if (nl == NULL || (size_t)(nl - buf) - start > lim->hl_max_head) {
			*status = 414;
			return -1;
		}
		if ((rc = http_request_line(buf + start, nl, req)) != 0) {
			*status = rc;
			return -1;
		}
		scan->hs_line = 1;
		scan->hs_off = (size_t)(nl - buf);
	}

	head = http_find_head_end(buf, len, &scan->hs_off);
	if ((head == 0 ? len : head) - start > lim->hl_max_head) {
		*status = 431;
		return -1;
	}
	if (head == 0)
		return 0;
	if (memchr(buf, '\0', head) != NULL) {
		*status = 400;
		return -1;
	}
	if (nl == NULL) {
		/* Checked when it came; parsed again into this req. */
		nl = memchr(buf + start, '\n', head - start);
		if ((rc = http_request_line(buf + start, nl, req)) != 0) {
			*status = rc;
			return -1;
		}
	}
	return http_parse_fields(buf, (size_t)(nl - buf) + 1, head, lim, req,
	    status);
}

ssize_t
http_parse_request(const char *buf, size_t len, struct http_scan *scan,
    const struct http_limits *lim, struct http_request *req, int *status)
{
	ssize_t head = http_parse_head(buf, len, scan, lim, req, status);

	/* The answer to a refused HEAD has no body either. */
	if (head < 0)
		req->r_method = http_request_method(buf, len);
	return head;
}

/*
 * In ascending order, which is the order of the /metrics series.  100 is
 * interim (never counted) and 500 a bug's answer: both count as "other".
 */
const struct http_status http_statuses[HTTP_STATUS_N] = {
	{ 100, "Continue", 0 },
	{ 200, "OK", 1 },
	{ 400, "Bad Request", 1 },
	{ 404, "Not Found", 1 },
	{ 405, "Method Not Allowed", 1 },
	{ 408, "Request Timeout", 1 },
	{ 413, "Content Too Large", 1 },
	{ 414, "URI Too Long", 1 },
	{ 417, "Expectation Failed", 1 },
	{ 431, "Request Header Fields Too Large", 1 },
	{ 500, "Internal Server Error", 0 },
	{ 501, "Not Implemented", 1 },
	{ 503, "Service Unavailable", 1 },
	{ 505, "HTTP Version Not Supported", 1 },
};

int
http_status_index(int status)
{
	int i;

	for (i = 0; i < HTTP_STATUS_N; i++)
		if (http_statuses[i].hst_code == status)
			return i;
	return -1;
}

const char *
http_reason(int status)
{
	int i = http_status_index(status);

	return i < 0 ? "Unknown" : http_statuses[i].hst_reason;
}

/* Copy n bytes to p and return the end: the response is built with memcpy. */
static char *
http_put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define HTTP_LIT_LEN(lit)       (sizeof(lit) - 1)
#define HTTP_PUT_LIT(p, lit)    http_put((p), (lit), HTTP_LIT_LEN(lit))

size_t
http_format_uint(char *buf, unsigned long long v)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

/* How many digits http_format_uint() writes for v. */
static size_t
http_uint_len(unsigned long long v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* The parts of every response head, in the order they are written. */
#define HTTP_R_VERSION  "HTTP/1.1 "             /* then a 3-digit code, SP */
#define HTTP_R_SERVER   "\r\nServer: " PACKAGE_NAME "/" PACKAGE_VERSION \
	"\r\nDate: "                            /* then CLOCK_HTTP_DATE_LEN */
#define HTTP_R_CTYPE    "\r\nContent-Type: "
#define HTTP_R_CLEN     "\r\nContent-Length: "
#define HTTP_R_EOL      "\r\n"

/*
 * The length of every head, without the reason phrase, the Content-Type
 * value, the Content-Length digits and the optional fields: the sum of
 * the parts above, so it follows them when one changes.
 */
#define HTTP_HEAD_FIXED (HTTP_LIT_LEN(HTTP_R_VERSION) + 3 + 1 +          \
	HTTP_LIT_LEN(HTTP_R_SERVER) + CLOCK_HTTP_DATE_LEN +             \
	HTTP_LIT_LEN(HTTP_R_CTYPE) + HTTP_LIT_LEN(HTTP_R_CLEN) +        \
	2 * HTTP_LIT_LEN(HTTP_R_EOL))

/* The optional fields: written in this order when their flag is set. */
#define HTTP_R_NOSTORE  "Cache-Control: no-store\r\nVary: Accept\r\n"
#define HTTP_R_RETRY    "Retry-After: 1\r\n"
#define HTTP_R_ALLOW    "Allow: GET, HEAD\r\n"
#define HTTP_R_CLOSE    "Connection: close\r\n"
#define HTTP_R_KEEP     "Connection: keep-alive\r\n"
static const struct {
	int rf_flag;
	const char *rf_text;
	size_t rf_len;
} http_fields[] = {
#define HTTP_FIELD(flag, text)  { flag, text, HTTP_LIT_LEN(text) }
	HTTP_FIELD(HTTP_F_NOSTORE, HTTP_R_NOSTORE),
	HTTP_FIELD(HTTP_F_RETRY, HTTP_R_RETRY),
	HTTP_FIELD(HTTP_F_ALLOW, HTTP_R_ALLOW),
	HTTP_FIELD(HTTP_F_CLOSE, HTTP_R_CLOSE),
	HTTP_FIELD(HTTP_F_KEEPALIVE, HTTP_R_KEEP),
#undef HTTP_FIELD
};
/* Every optional field at once: more than any response carries. */
#define HTTP_FIELDS_ALL (HTTP_LIT_LEN(HTTP_R_NOSTORE) +                 \
	HTTP_LIT_LEN(HTTP_R_RETRY) + HTTP_LIT_LEN(HTTP_R_ALLOW) +      \
	HTTP_LIT_LEN(HTTP_R_CLOSE) + HTTP_LIT_LEN(HTTP_R_KEEP))
#define HTTP_UINT_MAX_LEN 20    /* digits of the largest unsigned long long */

/* The exact length of a response; see http_format_response(). */
static size_t
http_response_len(size_t rlen, size_t ctlen, size_t content_length,
    size_t bodylen, int flags)
{
	size_t need, i;

	need = HTTP_HEAD_FIXED + rlen + ctlen + http_uint_len(content_length) +
	    bodylen;
	for (i = 0; i < nitems(http_fields); i++)
		if (flags & http_fields[i].rf_flag)
			need += http_fields[i].rf_len;
	return need;
}

/*
 * Built by hand rather than with snprintf(), which took a third of a
 * worker's instructions per request in a callgrind profile.  The check
 * against cap is exact; it is only computed field by field when the
 * worst case (every field, the longest number) does not fit, which a
 * worker's output buffer almost never meets.
 */
size_t
http_format_response(char *out, size_t cap, int status, const char *ctype,
    const char *body, size_t bodylen, size_t content_length, int flags)
{
	const char *reason = "OK";
	size_t ctlen = strlen(ctype), rlen = 2, i;
	char *p = out;

	if (status < 100 || status > 999)
		return 0;
	if (status != 200) {
		reason = http_reason(status);
		rlen = strlen(reason);
	}
	if (flags & HTTP_F_CLOSE)
		flags &= ~HTTP_F_KEEPALIVE;
	if (flags & HTTP_F_HEAD)
		bodylen = 0;
	if (cap < HTTP_HEAD_FIXED + rlen + ctlen + HTTP_UINT_MAX_LEN +
	    HTTP_FIELDS_ALL + bodylen && cap < http_response_len(rlen, ctlen,
	    content_length, bodylen, flags))
		return 0;

	if (status == 200)
		p = HTTP_PUT_LIT(p, HTTP_R_VERSION "200 OK");
	else {
		p = HTTP_PUT_LIT(p, HTTP_R_VERSION);
		p += http_format_uint(p, (unsigned)status);
		*p++ = ' ';
		p = http_put(p, reason, rlen);
	}
	p = HTTP_PUT_LIT(p, HTTP_R_SERVER);
	p = http_put(p, clock_http_date(), CLOCK_HTTP_DATE_LEN);
	p = HTTP_PUT_LIT(p, HTTP_R_CTYPE);
	p = http_put(p, ctype, ctlen);
	p = HTTP_PUT_LIT(p, HTTP_R_CLEN);
	p += http_format_uint(p, content_length);
	p = HTTP_PUT_LIT(p, HTTP_R_EOL);
	for (i = 0; i < nitems(http_fields); i++)
		if (flags & http_fields[i].rf_flag)
			p = http_put(p, http_fields[i].rf_text,
			    http_fields[i].rf_len);
	p = HTTP_PUT_LIT(p, HTTP_R_EOL);
	if (bodylen > 0)
		p = http_put(p, body, bodylen);
	return (size_t)(p - out);
}
