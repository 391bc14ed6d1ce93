/*
 * fuzz_http.c - libFuzzer target for the HTTP request parser and the
 * chunked body skipper, the code that reads what clients send.
 *
 * Besides "no crash, no sanitizer report", it checks two properties that
 * keep pipelining safe: feeding a request in pieces gives the same answer
 * as feeding it whole (incomplete, refused with the same status, or
 * taken with the same framing), and a chunked body ends at the same
 * byte, or is refused, however it is split.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunked.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_parse(const char *buf, size_t size)
{
	struct http_limits lim = { 512, 16 };
	struct http_request whole, piece;
	struct http_scan scan = { 0, 0 };
	size_t split;
	int st_whole = 0, st_piece = 0;
	ssize_t rw, rp;

	rw = http_parse_request(buf, size, &scan, &lim, &whole, &st_whole);
	if (rw > 0) {
		int inside = whole.r_path >= buf &&
		    whole.r_path + whole.r_pathlen <= buf + (size_t)rw;

		/* The path is in the head, or "/" for "http://host" alone. */
		if ((size_t)rw > size || whole.r_path == NULL || (!inside &&
		    (whole.r_pathlen != 1 || whole.r_path[0] != '/')))
			abort();
		(void)http_accept_prefers_json(buf, (size_t)rw);
	}
	/* The same bytes arriving in two pieces. */
	split = size ? (unsigned char)buf[0] % (size + 1) : 0;
	memset(&scan, 0, sizeof(scan));
	rp = http_parse_request(buf, split, &scan, &lim, &piece, &st_piece);
	if (rp == 0)
		rp = http_parse_request(buf, size, &scan, &lim, &piece,
		    &st_piece);
	/*
	 * The same answer however the bytes came: complete, incomplete or
	 * refused alike (one refusing what the other takes is a request
	 * answered by one worker and smuggled past another), the same
	 * status, the same framing.
	 */
	if (rw != rp || (rw < 0 && st_whole != st_piece) ||
	    (rw != 0 && whole.r_method != piece.r_method))
		abort();
	if (rw > 0 && (whole.r_pathlen != piece.r_pathlen ||
	    whole.r_content_length != piece.r_content_length ||
	    whole.r_chunked != piece.r_chunked ||
	    whole.r_keepalive != piece.r_keepalive))
		abort();
}

static void
fuzz_chunked(const char *buf, size_t size)
{
	struct chunked a, b;
	ssize_t ra, rb1, rb2 = 0;
	size_t split;
	int done_a, done_b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	ra = chunked_skip(&a, buf, size, 1 << 20, &done_a);
	split = size ? (unsigned char)buf[size - 1] % (size + 1) : 0;
	rb1 = chunked_skip(&b, buf, split, 1 << 20, &done_b);
	if (rb1 >= 0 && !done_b)
		rb2 = chunked_skip(&b, buf + rb1, size - rb1, 1 << 20,
		    &done_b);
	/* Malformed whole, malformed in pieces: never one of the two. */
	if ((ra < 0) != (rb1 < 0 || rb2 < 0))
		abort();
	if (ra < 0)
		return;         /* the connection closes */
	if ((size_t)ra > size)
		abort();
	if (done_a != done_b || (done_a && ra != rb1 + rb2))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);        /* an exact-size copy, for ASan */
	fuzz_parse(buf, size);
	fuzz_chunked(buf, size);
	free(buf);
	return 0;
}
