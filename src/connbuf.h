/*
 * connbuf.h - the bytes one client connection holds: input not yet
 * parsed, output the socket has not taken yet.
 */
#ifndef HITCOUNTD_CONNBUF_H
#define HITCOUNTD_CONNBUF_H

#include <stddef.h>
#include <sys/types.h>

/*
 * A connection's buffers.  connbuf.c alone changes the members; conn.c
 * reads the lengths to decide what the connection waits for.
 */
struct connbuf {
	char *cb_in;                    /* unparsed bytes, NULL when none */
	size_t cb_inlen, cb_incap;
	char *cb_out;                   /* unsent response bytes, NULL when none */
	size_t cb_outlen, cb_outoff;
};

/*
 * Keep a copy of the len bytes at buf as the input, in a buffer of at
 * least cap bytes; b holds no input yet.  Returns 0, or -1 after logging
 * (no memory: nothing is kept).
 */
int connbuf_keep_in(struct connbuf *b, const char *buf, size_t len,
    size_t cap);

/*
 * Make sure b has an input buffer (of cap bytes if it has none yet) for
 * connbuf_read().  Returns 0, or -1 after logging (no memory).
 */
int connbuf_reserve_in(struct connbuf *b, size_t cap);

/*
 * Read from fd into the room left in the input buffer (there must be
 * some).  Returns what recv() does: the bytes read, 0 at end of file,
 * -1 with errno set.
 */
ssize_t connbuf_read(struct connbuf *b, int fd);

/*
 * Hand the input over to the caller, who frees it: returns it (NULL when
 * none) with its length in *len, and b holds no input afterwards.
 */
char *connbuf_take_in(struct connbuf *b, size_t *len);

/* Throw the input away. */
void connbuf_drop_in(struct connbuf *b);

/*
 * Send the output: first what b holds, then the len bytes at pass (the
 * responses of a processing pass, copied into b if the socket does not
 * take them all now, so that the caller may reuse pass at once).
 * Returns 0 (what fd refused is kept in b), or -1 if the connection is
 * broken or there is no memory to keep the rest (logged): it is to
 * close.  Closes nothing itself.
 */
int connbuf_send(struct connbuf *b, int fd, const char *pass, size_t len);

/* Free what b holds. */
void connbuf_free(struct connbuf *b);

#endif
