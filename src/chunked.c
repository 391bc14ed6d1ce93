/*
 * chunked.c - skipping a request body in the chunked transfer coding
 * (RFC 9112 7.1), byte by byte across reads.
 *
 * No resource of hitcountd takes a body, so a body is only skipped, but
 * its end must be found exactly where every other parser would find it:
 * that is where the next request on the connection starts, and a
 * disagreement is how requests get smuggled.  So the framing is as strict
 * as the head's (http.c, whose character classes it uses): a bare LF or
 * CR, BWS before an extension, obs-fold in a trailer, or a size past 15
 * hex digits is refused.  It keeps its state in struct chunked, which
 * conn.c holds per connection; nothing here does I/O or allocates, so the
 * unit tests and the fuzzer drive it directly.
 */
#include "config.h"

#include <string.h>

#include "chunked.h"
#include "http.h"

enum {
	CH_SIZE = 0,    /* hex digits of the chunk size */
	CH_EXT,         /* chunk extensions, up to the end of the line */
	CH_SIZE_LF,     /* LF after the CR of the size line */
	CH_DATA,
	CH_DATA_CR,     /* the CRLF after the data */
	CH_DATA_LF,
	CH_TRAILER,     /* at the start of a trailer line (or the end) */
	CH_TRAILER_NAME,
	CH_TRAILER_VALUE,
	CH_TRAILER_LF,  /* LF after the CR of a trailer line */
	CH_END_LF       /* LF of the final empty line */
};

static int
chunked_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * One byte of a trailer field line after its first: the name's tchars,
 * the colon, the value's characters (the head's rules), the CR.
 * Returns 0, or -1 if the line is malformed or too long.
 */
static int
chunked_trailer_byte(struct chunked *st, char c,
    unsigned long long max_total)
{
	if (++st->ch_linelen > CHUNKED_LINE_MAX ||
	    ++st->ch_total > max_total)
		return -1;
	if (st->ch_state == CH_TRAILER_NAME) {
		if (c == ':')
			st->ch_state = CH_TRAILER_VALUE;
		else if (!http_is_tchar((unsigned char)c))
			return -1;
	} else if (c == '\r')
		st->ch_state = CH_TRAILER_LF;
	else if (!http_is_vchar((unsigned char)c))
		return -1;
	return 0;
}

/*
 * One byte of a chunked body outside chunk data: of a size line, of the
 * CRLF after data, or of the trailer section.  Every line ends in CRLF:
 * a bare LF, which the head may use (RFC 9112 2.2), is refused here as
 * RFC 9112 7.1 writes it, so that no parser in front of us can find
 * the body's end elsewhere.  Returns 0, 1 when the
 * body has ended with this byte, or -1 if the framing is malformed.
 */
static int
chunked_byte(struct chunked *st, char c,
    unsigned long long max_total)
{
	int v;

	switch (st->ch_state) {
	case CH_SIZE:
		if ((v = chunked_hexval(c)) >= 0) {
			/* 15 hex digits already exceed any sane body. */
			if (++st->ch_linelen > 15)
				return -1;
			st->ch_left = st->ch_left * 16 + v;
			return 0;
		}
		if (st->ch_linelen == 0)
			return -1;      /* no digits */
		if (c == ';')   /* no BWS before it: parsers differ on that */
			st->ch_state = CH_EXT;
		else if (c == '\r')
			st->ch_state = CH_SIZE_LF;
		else
			return -1;      /* a bare LF too */
		return 0;
	case CH_EXT:
		if (++st->ch_linelen > CHUNKED_LINE_MAX || c == '\0' ||
		    c == '\n')
			return -1;
		if (c == '\r')
			st->ch_state = CH_SIZE_LF;
		return 0;
	case CH_SIZE_LF:
		if (c != '\n')
			return -1;      /* bare CR */
		st->ch_linelen = 0;
		if (st->ch_left == 0) {
			st->ch_state = CH_TRAILER;
			return 0;
		}
		st->ch_total += st->ch_left;
		if (st->ch_total > max_total)
			return -1;
		st->ch_state = CH_DATA;
		return 0;
	case CH_DATA_CR:
		if (c != '\r')
			return -1;
		st->ch_state = CH_DATA_LF;
		return 0;
	case CH_DATA_LF:
		if (c != '\n')
			return -1;
		st->ch_state = CH_SIZE;
		return 0;
	case CH_TRAILER:
		if (c == '\r')
			st->ch_state = CH_END_LF;
		else if (http_is_tchar((unsigned char)c)) {
			st->ch_linelen = 1;
			st->ch_state = CH_TRAILER_NAME;
		} else
			return -1;      /* obs-fold, bare LF, no name */
		return 0;
	case CH_TRAILER_NAME:
	case CH_TRAILER_VALUE:
		return chunked_trailer_byte(st, c, max_total);
	case CH_TRAILER_LF:
		if (c != '\n')
			return -1;
		st->ch_state = CH_TRAILER;
		return 0;
	case CH_END_LF:
		return c == '\n' ? 1 : -1;
	default:
		return -1;
	}
}

ssize_t
chunked_skip(struct chunked *st, const char *buf, size_t len,
    unsigned long long max_total, int *done)
{
	size_t i = 0;
	int rc;

	*done = 0;
	while (i < len) {
		if (st->ch_state == CH_DATA) {
			size_t n = len - i;

			if (n > st->ch_left)
				n = (size_t)st->ch_left;
			i += n;
			st->ch_left -= n;
			if (st->ch_left == 0)
				st->ch_state = CH_DATA_CR;
			continue;
		}
		/* Every other state takes one byte at a time. */
		rc = chunked_byte(st, buf[i++], max_total);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			*done = 1;
			memset(st, 0, sizeof(*st));
			break;
		}
	}
	return (ssize_t)i;
}
