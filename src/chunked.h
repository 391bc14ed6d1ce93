/*
 * chunked.h - skipping a chunked request body (RFC 9112 7.1).
 */
#ifndef HITCOUNTD_CHUNKED_H
#define HITCOUNTD_CHUNKED_H

#include <stddef.h>
#include <sys/types.h>

/* Where a chunked request body (RFC 9112 7.1) is being skipped. */
struct chunked {
	int ch_state;
	unsigned long long ch_left;     /* data bytes left in this chunk */
	size_t ch_linelen;              /* bytes of the current size/trailer line */
	unsigned long long ch_total;    /* data bytes seen so far */
};

/* The longest chunk-size line or trailer line accepted. */
#define CHUNKED_LINE_MAX 4096

/*
 * Skip a chunked body: consume as much of buf as belongs to it.  Start
 * with *st zeroed.  Returns the number of bytes consumed, with *done set
 * once the last chunk and the trailer section have been consumed, or -1
 * if the framing is malformed (a bare LF included): close the connection,
 * the next request cannot be found.  max_total bounds the data bytes (-1 beyond it too).
 */
ssize_t chunked_skip(struct chunked *st, const char *buf,
    size_t len, unsigned long long max_total, int *done);

#endif
