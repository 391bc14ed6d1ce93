/*
 * connbuf.c - the bytes a client connection holds, and the socket calls
 * that move them: input kept for a later pass, output the socket refused.
 *
 * Most connections hold nothing here: a read lands in the worker's
 * scratch buffer and a pass's responses in the worker's output buffer
 * (conn.c owns both), and only what is left over (a partial request, a
 * response the socket would not take) is copied into the connection's
 * own buffers, so that thousands of idle keep-alive clients cost little
 * memory.  As pgbouncer's sbuf.c, this file knows nothing of HTTP; it
 * never closes a socket either: a failure comes back as -1, and conn.c
 * closes the connection in its one place for it.  It calls only log.c.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "connbuf.h"
#include "log.h"

int
connbuf_keep_in(struct connbuf *b, const char *buf, size_t len, size_t cap)
{
	if (cap < len)
		cap = len;
	b->cb_in = malloc(cap);
	if (b->cb_in == NULL) {
		log_warn("malloc");
		return -1;
	}
	memcpy(b->cb_in, buf, len);
	b->cb_inlen = len;
	b->cb_incap = cap;
	return 0;
}

int
connbuf_reserve_in(struct connbuf *b, size_t cap)
{
	if (b->cb_in != NULL)
		return 0;
	b->cb_in = malloc(cap);
	if (b->cb_in == NULL) {
		log_warn("malloc");
		return -1;
	}
	b->cb_incap = cap;
	return 0;
}

ssize_t
connbuf_read(struct connbuf *b, int fd)
{
	ssize_t n;

	n = recv(fd, b->cb_in + b->cb_inlen, b->cb_incap - b->cb_inlen, 0);
	if (n > 0)
		b->cb_inlen += n;
	return n;
}

char *
connbuf_take_in(struct connbuf *b, size_t *len)
{
	char *in = b->cb_in;

	*len = b->cb_inlen;
	b->cb_in = NULL;
	b->cb_inlen = b->cb_incap = 0;
	return in;
}

void
connbuf_drop_in(struct connbuf *b)
{
	free(b->cb_in);
	b->cb_in = NULL;
	b->cb_inlen = b->cb_incap = 0;
}

/* Append the len bytes at p to the output b holds.  Returns 0 or -1. */
static int
connbuf_keep_out(struct connbuf *b, const char *p, size_t len)
{
	char *out = realloc(b->cb_out, b->cb_outlen + len);

	if (out == NULL) {
		log_warn("realloc");
		return -1;
	}
	memcpy(out + b->cb_outlen, p, len);
	b->cb_out = out;
	b->cb_outlen += len;
	return 0;
}

/* Whether a send() failure breaks the connection (not just "not now"). */
static int
connbuf_send_failed(ssize_t n)
{
	return n < 0 && errno != EAGAIN && errno != EINTR;
}

int
connbuf_send(struct connbuf *b, int fd, const char *pass, size_t len)
{
	ssize_t n;

	if (b->cb_outlen == 0 && len > 0) {
		/* The common case: straight from the pass, nothing copied. */
		n = send(fd, pass, len, MSG_NOSIGNAL);
		if (connbuf_send_failed(n))
			return -1;
		if (n < 0)
			n = 0;
		if ((size_t)n < len) {
			b->cb_outoff = 0;
			return connbuf_keep_out(b, pass + n, len - (size_t)n);
		}
		return 0;
	}
	if (b->cb_outlen == 0)
		return 0;
	/* Behind what was refused before: the order of the bytes holds. */
	if (len > 0 && connbuf_keep_out(b, pass, len) == -1)
		return -1;
	n = send(fd, b->cb_out + b->cb_outoff, b->cb_outlen - b->cb_outoff,
	    MSG_NOSIGNAL);
	if (connbuf_send_failed(n))
		return -1;
	if (n > 0)
		b->cb_outoff += n;
	if (b->cb_outoff == b->cb_outlen) {
		free(b->cb_out);
		b->cb_out = NULL;
		b->cb_outlen = b->cb_outoff = 0;
	}
	return 0;
}

void
connbuf_free(struct connbuf *b)
{
	free(b->cb_in);
	free(b->cb_out);
	memset(b, 0, sizeof(*b));
}
