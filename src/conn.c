/*
 * conn.c - a client connection's I/O state machine: reading requests,
 * skipping their bodies, writing responses, keep-alive and timeouts.
 *
 * A worker serves all its clients from one libevent loop and never blocks:
 * sockets are non-blocking, Redis is asynchronous (counter.c), and every
 * wait has a timeout.  Requests on a connection are answered strictly in
 * order; while a request waits for Redis, later pipelined bytes stay in the
 * connection's buffer.  An idle keep-alive connection owns no buffer at
 * all: reads go to a scratch buffer shared by the worker, and only bytes
 * left over after parsing are copied to the connection (connbuf.c holds a
 * connection's bytes and sends them), so thousands of idle clients cost
 * little memory.
 *
 * A connection ends in one place: every step returns 0, or -1 when the
 * connection is to close, and only the entries from outside,
 * conn_on_event() (libevent) and conn_resume(), then close it
 * (conn_close()); no step closes it behind its caller's back.  A failure
 * on one connection closes that connection, never the worker.
 *
 * What a request gets is the business of the handler installed from
 * above (route.c's, through conn_set_handler()): conn.c calls down into
 * http.c, chunked.c, connbuf.c, metrics.c and accesslog.c, never up.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "accesslog.h"
#include "clock.h"
#include "conf.h"
#include "conn.h"
#include "connbuf.h"
#include "chunked.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "timer.h"

#define CONN_MAX_BODY           (1024 * 1024)   /* bodies we read and discard */
#define CONN_LINGER_MS          2000
/*
 * On a graceful stop an idle keep-alive connection may already carry the
 * client's next request; closing it at once would fail that request (a
 * reload under load would cost requests).  It gets this long to send one,
 * which is answered with "Connection: close", before it is closed.
 */
#define CONN_STOP_GRACE_MS      1000
#define CONN_OUT_SIZE           65536
/* Room one response always has: the largest, /metrics, and its head. */
#define CONN_OUT_RESERVE        16384

struct conn {
	struct conn_set *c_set;
	int c_fd;
	struct event c_ev;
	short c_events;                 /* EV_READ, EV_WRITE or 0 */
	const struct timeval *c_tv;     /* its common timeout, NULL if other */
	struct connbuf c_buf;           /* input kept, output refused */
	struct http_scan c_scan;        /* where http_parse_request() resumes */
	long long c_discard;            /* request body bytes still to skip */
	struct chunked c_chunk;    /* a chunked body being skipped */
	uint64_t c_head_start_ms;       /* first byte of the pending head */
	uint64_t c_linger_start_ms;     /* when the lingering close began */
	int c_resp_flags;               /* for the request waiting on Redis */
	unsigned c_waiting : 1;         /* a Redis command is in flight */
	unsigned c_json : 1;
	unsigned c_dead : 1;            /* closed; freed when Redis answers */
	unsigned c_close : 1;           /* close once the output is sent */
	unsigned c_eof : 1;             /* the client sent FIN */
	unsigned c_linger : 1;          /* draining input before close */
	unsigned c_peer_closes : 1;     /* the client said close, sent no more */
	unsigned c_more : 1;            /* c_buf holds requests not yet answered */
	unsigned c_chunked : 1;         /* skipping a chunked body */
	unsigned c_admin : 1;           /* came in on a metrics_listen address */
	struct accesslog_req c_log;     /* for the line of the request */
	struct conn *c_prev, *c_next;
};

static void conn_on_event(evutil_socket_t, short, void *);
static int conn_process(struct conn *, const char *, size_t);
static int conn_process_buffered(struct conn *);

/* The input buffer a connection gets: a whole head, and some more. */
static size_t
conn_in_cap(const struct conn_set *cs)
{
	return (size_t)cs->cs_cf->cf_max_header_size + 1024;
}

/*
 * Set what the connection waits for, and for how long.  tv is one of the
 * set's common timeouts, or a one-off (common 0).  Setting again what
 * is already set costs nothing: a persistent event's timeout restarts by
 * itself each time the event fires.
 */
static void
conn_set_events_tv(struct conn *c, short events, const struct timeval *tv,
    int common)
{
	if (events == c->c_events && common && tv == c->c_tv)
		return;
	c->c_tv = common ? tv : NULL;
	if (events != c->c_events) {
		if (c->c_events)
			event_del(&c->c_ev);
		c->c_events = events;
		if (events == 0)
			return;
		event_assign(&c->c_ev, c->c_set->cs_base, c->c_fd,
		    events | EV_PERSIST, conn_on_event, c);
	}
	if (events)
		event_add(&c->c_ev, tv);
}

static void
conn_set_events(struct conn *c, short events, const struct timeval *tv)
{
	conn_set_events_tv(c, events, tv, 1);
}

static void
conn_free(struct conn *c)
{
	connbuf_free(&c->c_buf);
	accesslog_req_free(&c->c_log);
	free(c);
}

/*
 * Close the socket now; the conn itself goes when Redis no longer refers
 * to it.  The one place a connection ends: called by the entries from
 * outside (conn_on_event(), conn_resume()) when a step returned -1, and
 * by conn_set_free().
 */
static void
conn_close(struct conn *c)
{
	struct conn_set *cs = c->c_set;

	if (c->c_fd == -1)
		return;
	conn_set_events(c, 0, NULL);
	close(c->c_fd);
	c->c_fd = -1;
	METRICS_ADD(mw_conns_open, -1);
	if (c->c_prev)
		c->c_prev->c_next = c->c_next;
	else
		cs->cs_conns = c->c_next;
	if (c->c_next)
		c->c_next->c_prev = c->c_prev;
	cs->cs_nconns--;
	if (c->c_waiting)
		c->c_dead = 1;
	else
		conn_free(c);
	cs->cs_on_close(cs->cs_arg);
}

/*
 * Close after a response that may leave unread input behind: a plain
 * close() would then send RST, which can destroy the response before the
 * client reads it.  Send FIN and drain for a while instead.  Returns 0,
 * or -1 if the connection is to close at once.
 */
static int
conn_linger(struct conn *c)
{
	/*
	 * Unless the client itself asked to close and sent nothing after its
	 * request: then no input is left to provoke a reset (nginx's
	 * lingering_close auto), and the close costs no drain.
	 */
	if ((c->c_peer_closes && c->c_buf.cb_inlen == 0) ||
	    shutdown(c->c_fd, SHUT_WR) == -1 || c->c_eof)
		return -1;
	c->c_linger = 1;
	c->c_linger_start_ms = clock_coarse_ms();
	conn_set_events(c, EV_READ, c->c_set->cs_linger_tv);
	return 0;
}

/*
 * The connection has nothing to send: decide what it waits for next.
 * Returns 0, or -1 if it is to close.
 */
static int
conn_idle(struct conn *c)
{
	struct conn_set *cs = c->c_set;
	const struct connbuf *b = &c->c_buf;

	if (c->c_close || (c->c_eof && b->cb_inlen == 0 && !c->c_waiting))
		return conn_linger(c);
	if (c->c_waiting) {
		/*
		 * Keep reading pipelined bytes while there is room.  The counter
		 * answers within timeout_ms, so a timeout here is ignored.
		 */
		if (c->c_eof || (b->cb_in && b->cb_inlen == b->cb_incap))
			conn_set_events(c, 0, NULL);
		else if (c->c_events != EV_READ)
			conn_set_events(c, EV_READ, cs->cs_hdr_tv);
		return 0;
	}
	if (cs->cs_stopping && b->cb_inlen == 0 && c->c_discard == 0 &&
	    !c->c_chunked) {
		conn_set_events(c, EV_READ, cs->cs_grace_tv);
		return 0;
	}
	if (b->cb_inlen > 0 || c->c_discard > 0 || c->c_chunked) {
		/* A request is partly here: the header timeout runs from its start. */
		uint64_t now = clock_coarse_ms(), limit, spent;
		struct timeval tv;

		if (c->c_head_start_ms == 0)
			c->c_head_start_ms = now;
		limit = (uint64_t)cs->cs_cf->cf_header_timeout * 1000;
		spent = now - c->c_head_start_ms;
		if (spent >= limit)
			spent = limit - 1;
		tv = timer_tv_ms((long)(limit - spent));
		conn_set_events_tv(c, EV_READ, &tv, 0);
	} else {
		c->c_head_start_ms = 0;         /* the next head starts afresh */
		conn_set_events(c, EV_READ, cs->cs_ka_tv);
	}
	return 0;
}

/*
 * Send what the processing pass produced (connbuf.c keeps what the socket
 * refuses), then carry on.  Returns 0, or -1 if the connection is to close.
 */
static int
conn_flush(struct conn *c)
{
	struct conn_set *cs = c->c_set;
	int rc;

	rc = connbuf_send(&c->c_buf, c->c_fd, cs->cs_out, cs->cs_outlen);
	cs->cs_outlen = 0;
	if (rc == -1)
		return -1;
	if (c->c_buf.cb_outlen > 0) {
		conn_set_events(c, EV_WRITE, cs->cs_hdr_tv);
		return 0;
	}
	if (c->c_more && !c->c_waiting && !c->c_close)
		return conn_process_buffered(c);        /* what was held back */
	return conn_idle(c);
}

void
conn_respond(struct conn *c, int status, const char *ctype, const char *body,
    size_t bodylen, size_t content_length, int flags)
{
	struct conn_set *cs = c->c_set;
	size_t n;

	if (c->c_close)
		return;         /* the previous response ended the connection */
	/* conn_process() leaves CONN_OUT_RESERVE free for each response. */
	n = http_format_response(cs->cs_out + cs->cs_outlen,
	    cs->cs_outcap - cs->cs_outlen, status, ctype, body, bodylen,
	    content_length, flags);
	if (n == 0) {
		/*
		 * A bug (the answer is larger than the reserve), which costs
		 * this connection only.  It is not counted as sent: the
		 * client gets a 500 if that fits, else the connection closes.
		 */
		log_warnx("conn: a %d answer of %zu bytes does not fit in %zu",
		    status, bodylen, cs->cs_outcap - cs->cs_outlen);
		if (status != 500)
			conn_respond_text(c, 500, "Internal Server Error\n",
			    (flags & HTTP_F_HEAD) | HTTP_F_CLOSE);
		c->c_close = 1;
		return;
	}
	cs->cs_outlen += n;
	if (flags & HTTP_F_CLOSE)
		c->c_close = 1;
	metrics_count_status(status);
	if (accesslog_enabled())
		accesslog_req_write(&c->c_log, status,
		    (flags & HTTP_F_HEAD) ? 0 : (long long)bodylen);
}

/*
 * Append bytes that are already a response: an interim 1xx, which may be
 * left out (RFC 9110 15.2), and is when there is no room for it.
 */
static void
conn_respond_raw(struct conn *c, const char *text)
{
	struct conn_set *cs = c->c_set;
	size_t len = strlen(text);

	if (len > cs->cs_outcap - cs->cs_outlen)
		return;
	memcpy(cs->cs_out + cs->cs_outlen, text, len);
	cs->cs_outlen += len;
}

void
conn_respond_text(struct conn *c, int status, const char *text, int flags)
{
	size_t len = strlen(text);

	conn_respond(c, status, "text/plain; charset=utf-8", text, len, len,
	    flags);
}

void
conn_wait(struct conn *c, int flags, int json)
{
	c->c_resp_flags = flags;
	c->c_json = json;
	c->c_waiting = 1;
}

int
conn_wake(struct conn *c, int *flags, int *json)
{
	c->c_waiting = 0;
	if (c->c_dead) {
		conn_free(c);
		return -1;
	}
	*flags = c->c_resp_flags;
	if (c->c_set->cs_stopping)
		*flags = (*flags & ~HTTP_F_KEEPALIVE) | HTTP_F_CLOSE;
	*json = c->c_json;
	return 0;
}

void
conn_resume(struct conn *c)
{
	int rc;

	/* Carry on with pipelined requests that arrived meanwhile. */
	if (c->c_buf.cb_inlen > 0 && !c->c_close)
		rc = conn_process_buffered(c);
	else
		rc = conn_flush(c);
	if (rc == -1)
		conn_close(c);
}

/*
 * The flag an answer to method takes: one to HEAD has no body, an error
 * included (route.c sets it for the answers it gives).
 */
static int
conn_head_flag(int method)
{
	return method == HTTP_HEAD ? HTTP_F_HEAD : 0;
}

/*
 * Skip request body bytes at buf (len bytes).  Returns how many were
 * body, or -1 if a chunked body is malformed (its answer is out; the next
 * request cannot be found, so the connection is to close).
 */
static ssize_t
conn_skip_body(struct conn *c, const char *buf, size_t len)
{
	ssize_t n;
	int done;

	if (c->c_discard > 0) {
		if ((long long)len > c->c_discard)
			len = (size_t)c->c_discard;
		c->c_discard -= len;
		return (ssize_t)len;
	}
	n = chunked_skip(&c->c_chunk, buf, len, CONN_MAX_BODY, &done);
	if (n >= 0)
		c->c_chunked = !done;
	return n;
}

/*
 * Answer a parsed request (head bytes; more is whether bytes follow it in
 * this pass).  An answer that ends the connection sets c_close.
 */
static void
conn_request(struct conn *c, const struct http_request *req, int more)
{
	struct conn_set *cs = c->c_set;
	int flags = 0;

	if (!req->r_keepalive || cs->cs_cf->cf_keepalive_timeout == 0 ||
	    cs->cs_stopping || c->c_eof)
		flags |= HTTP_F_CLOSE;
	else if (req->r_minor == 0)
		flags |= HTTP_F_KEEPALIVE;
	if (!req->r_keepalive && !more && req->r_content_length <= 0 &&
	    !req->r_chunked)
		c->c_peer_closes = 1;
	/*
	 * No resource here takes a body: it is read and thrown away, so
	 * that the next request on the connection starts at the right
	 * byte.  A body too large to be worth reading ends the connection.
	 */
	if (req->r_content_length > CONN_MAX_BODY) {
		conn_respond_text(c, 413, "Content Too Large\n", HTTP_F_CLOSE |
		    conn_head_flag(req->r_method));
		return;
	}
	if (req->r_chunked) {
		memset(&c->c_chunk, 0, sizeof(c->c_chunk));
		c->c_chunked = 1;
	} else if (req->r_content_length > 0)
		c->c_discard = req->r_content_length;
	/* The client waits for a go-ahead before it sends the body. */
	if (req->r_expect_continue && req->r_minor == 1 && !more &&
	    (c->c_chunked || c->c_discard > 0))
		conn_respond_raw(c, "HTTP/1.1 100 Continue\r\n\r\n");
	if (accesslog_enabled())
		accesslog_req_keep(&c->c_log, req);
	cs->cs_handler(cs->cs_handler_arg, c, req, flags, c->c_admin);
}

/*
 * Parse and answer the requests in buf (len bytes; not the connection's
 * own buffer), stopping at one that waits for Redis.  What is left is
 * kept in the connection's input.  Ends by flushing the output.
 * Returns 0, or -1 if the connection is to close.
 */
static int
conn_process(struct conn *c, const char *buf, size_t len)
{
	struct conn_set *cs = c->c_set;
	size_t off = 0;

	c->c_more = 0;
	while (off < len && !c->c_waiting && !c->c_close) {
		struct http_request req;
		ssize_t head;
		int status;

		if ((cs->cs_outlen > 0 &&
		    cs->cs_outcap - cs->cs_outlen < CONN_OUT_RESERVE) ||
		    c->c_buf.cb_outlen > CONN_OUT_SIZE) {
			/* Enough output for now: the rest once it is sent. */
			c->c_more = 1;
			break;
		}
		if (c->c_discard > 0 || c->c_chunked) {
			ssize_t n = conn_skip_body(c, buf + off, len - off);

			if (n < 0) {
				c->c_close = 1;
				off = len;
				break;
			}
			off += n;
			continue;
		}
		head = http_parse_request(buf + off, len - off, &c->c_scan,
		    &cs->cs_lim, &req, &status);
		if (head == 0)
			break;
		memset(&c->c_scan, 0, sizeof(c->c_scan));
		c->c_head_start_ms = 0;
		if (head < 0) {
			char text[64];

			snprintf(text, sizeof(text), "%s\n", http_reason(status));
			conn_respond_text(c, status, text, HTTP_F_CLOSE |
			    conn_head_flag(req.r_method));
			off = len;
			break;
		}
		off += head;
		conn_request(c, &req, off < len);   /* c_close ends the loop */
	}

	/* Keep what is not yet processed. */
	if (off < len && !c->c_close && connbuf_keep_in(&c->c_buf, buf + off,
	    len - off, conn_in_cap(cs)) == -1) {
		cs->cs_outlen = 0;
		return -1;
	}
	return conn_flush(c);
}

/*
 * Process the bytes the connection holds (conn_process() keeps the rest
 * again).  Returns 0, or -1 if the connection is to close.
 */
static int
conn_process_buffered(struct conn *c)
{
	size_t inlen;
	char *in = connbuf_take_in(&c->c_buf, &inlen);
	int rc;

	rc = conn_process(c, in, inlen);
	free(in);
	return rc;
}

/*
 * The client closed its side: answer what was asked, then close.
 * Returns 0, or -1 if the connection is to close now.
 */
static int
conn_on_eof(struct conn *c)
{
	c->c_eof = 1;
	if (c->c_buf.cb_outlen > 0) {
		conn_set_events(c, EV_WRITE, c->c_set->cs_hdr_tv);
		return 0;
	}
	if (c->c_waiting)
		return conn_idle(c);
	return -1;
}

/* The socket is readable.  Returns 0, or -1 if the connection is to close. */
static int
conn_read(struct conn *c)
{
	struct conn_set *cs = c->c_set;
	ssize_t n;

	if (c->c_linger) {
		/*
		 * The linger timeout restarts with each read: a client that
		 * keeps sending is cut CONN_LINGER_MS after the close began.
		 */
		n = recv(c->c_fd, cs->cs_scratch, cs->cs_scratch_size, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
		    clock_coarse_ms() - c->c_linger_start_ms >= CONN_LINGER_MS)
			return -1;
		return 0;
	}
	if (c->c_buf.cb_in == NULL && !c->c_waiting) {
		/* Into the shared scratch: an idle connection owns no buffer. */
		n = recv(c->c_fd, cs->cs_scratch, cs->cs_scratch_size, 0);
		if (n > 0)
			return conn_process(c, cs->cs_scratch, (size_t)n);
	} else {
		if (connbuf_reserve_in(&c->c_buf, conn_in_cap(cs)) == -1)
			return -1;
		if (c->c_buf.cb_inlen == c->c_buf.cb_incap)
			return conn_idle(c);    /* full: wait for Redis to drain it */
		n = connbuf_read(&c->c_buf, c->c_fd);
		if (n > 0)
			return c->c_waiting ? conn_idle(c) :
			    conn_process_buffered(c);
	}
	if (n == 0)
		return conn_on_eof(c);
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	if (errno != ECONNRESET)
		log_debug("recv: %s", strerror(errno));
	return -1;
}

/*
 * The connection's timeout has run out.  Returns 0, or -1 if it is to
 * close.
 */
static int
conn_timeout(struct conn *c)
{
	const struct connbuf *b = &c->c_buf;

	if (c->c_waiting)
		return 0;
	if (c->c_linger || b->cb_outlen > 0 ||
	    (b->cb_inlen == 0 && c->c_discard == 0 && !c->c_chunked))
		return -1;      /* idle keep-alive, or a client not reading */
	if (c->c_discard > 0 || c->c_chunked) {
		/*
		 * The body of a request answered already has stalled.  A 408
		 * now would be a second answer to that request (the client
		 * would take it for its next one's): end the connection
		 * instead, lingering so that unread input does not reset it
		 * under the answer.
		 */
		c->c_close = 1;
		return conn_linger(c);
	}
	conn_respond_text(c, 408, "Request Timeout\n", HTTP_F_CLOSE |
	    conn_head_flag(http_request_method(b->cb_in, b->cb_inlen)));
	connbuf_drop_in(&c->c_buf);
	return conn_flush(c);
}

/*
 * libevent's entry: each step below returns -1 when the connection is to
 * close, and it is closed here (or in conn_resume()), never inside a step
 * behind its caller's back.
 */
static void
conn_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int rc = 0;

	(void)fd;
	if (what & EV_TIMEOUT)
		rc = conn_timeout(c);
	else if (what & EV_WRITE)
		rc = conn_flush(c);
	else if (what & EV_READ)
		rc = conn_read(c);
	if (rc == -1)
		conn_close(c);
}

int
conn_new(struct conn_set *cs, int fd, const struct sockaddr_storage *ss,
    int admin)
{
	struct conn *c;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_warn("calloc");
		close(fd);
		return -1;
	}
	c->c_set = cs;
	c->c_fd = fd;
	c->c_admin = admin;
	if (accesslog_enabled())
		accesslog_req_client(&c->c_log, ss);
	METRICS_ADD(mw_conns_open, 1);
	c->c_next = cs->cs_conns;
	if (cs->cs_conns)
		cs->cs_conns->c_prev = c;
	cs->cs_conns = c;
	cs->cs_nconns++;
	c->c_head_start_ms = clock_coarse_ms();
	conn_set_events(c, EV_READ, cs->cs_hdr_tv);
	return 0;
}

/* A timeout in milliseconds as a libevent common timeout (one heap each). */
static const struct timeval *
conn_common_timeout(struct event_base *base, long ms)
{
	struct timeval tv = timer_tv_ms(ms);

	return event_base_init_common_timeout(base, &tv);
}

int
conn_set_init(struct conn_set *cs, struct event_base *base,
    const struct conf *cf, void (*on_close)(void *), void *arg)
{
	memset(cs, 0, sizeof(*cs));
	cs->cs_base = base;
	cs->cs_cf = cf;
	cs->cs_on_close = on_close;
	cs->cs_arg = arg;
	cs->cs_lim.hl_max_head = cf->cf_max_header_size;
	cs->cs_lim.hl_max_headers = cf->cf_max_headers;
	cs->cs_scratch_size = (size_t)cf->cf_max_header_size + 1024;
	if (cs->cs_scratch_size < 16384)
		cs->cs_scratch_size = 16384;
	cs->cs_scratch = malloc(cs->cs_scratch_size);
	cs->cs_outcap = CONN_OUT_SIZE;
	cs->cs_out = malloc(cs->cs_outcap);
	if (cs->cs_scratch == NULL || cs->cs_out == NULL) {
		log_warn("malloc");
		return -1;
	}
	cs->cs_ka_tv = conn_common_timeout(base,
	    cf->cf_keepalive_timeout * 1000L);
	cs->cs_hdr_tv = conn_common_timeout(base, cf->cf_header_timeout * 1000L);
	cs->cs_linger_tv = conn_common_timeout(base, CONN_LINGER_MS);
	cs->cs_grace_tv = conn_common_timeout(base, CONN_STOP_GRACE_MS);
	return 0;
}

void
conn_set_handler(struct conn_set *cs, conn_handler *handler, void *arg)
{
	cs->cs_handler = handler;
	cs->cs_handler_arg = arg;
}

void
conn_set_stop(struct conn_set *cs)
{
	struct conn *c;

	cs->cs_stopping = 1;
	for (c = cs->cs_conns; c != NULL; c = c->c_next) {
		/*
		 * Idle keep-alive connections get a short grace for a request
		 * already on its way; the others close after their answer.
		 */
		if (!c->c_waiting && c->c_buf.cb_inlen == 0 &&
		    c->c_buf.cb_outlen == 0 &&
		    c->c_discard == 0 && !c->c_chunked && !c->c_linger)
			conn_set_events(c, EV_READ, cs->cs_grace_tv);
	}
}

void
conn_set_free(struct conn_set *cs)
{
	struct conn *c, *next;

	for (c = cs->cs_conns; c != NULL; c = next) {
		next = c->c_next;
		conn_close(c);
	}
	free(cs->cs_scratch);
	cs->cs_scratch = NULL;
	free(cs->cs_out);
	cs->cs_out = NULL;
}
