/*
 * worker.c - a worker's event loop: accepting, reading requests, asking
 * the counter, writing responses.
 *
 * A worker serves all its clients from one libevent loop and never blocks:
 * sockets are non-blocking, Redis is asynchronous (counter.c), and every
 * wait has a timeout.  Requests on a connection are answered strictly in
 * order; while a request waits for Redis, later pipelined bytes stay in the
 * connection's buffer.  An idle keep-alive connection owns no buffer at
 * all: reads go to a scratch buffer shared by the worker, and only bytes
 * left over after parsing are copied to the connection, so thousands of
 * idle clients cost little memory.  A failure on one connection closes
 * that connection, never the worker.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "conf.h"
#include "counter.h"
#include "accesslog.h"
#include "channel.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"
#include "util.h"

#define WORKER_ACCEPT_BATCH     8
#define WORKER_MAX_BODY         (1024 * 1024)   /* bodies we read and discard */
#define WORKER_LINGER_MS        2000
/*
 * On a graceful stop an idle keep-alive connection may already carry the
 * client's next request; closing it at once would fail that request (a
 * reload under load would cost requests).  It gets this long to send one,
 * which is answered with "Connection: close", before it is closed.
 */
#define WORKER_STOP_GRACE_MS    1000
#define WORKER_OUT_SIZE         65536
#define WORKER_OUT_RESERVE      16384   /* room one response always has */
#define WORKER_METRICS_MAX      12288   /* the /metrics body */

struct worker;

struct conn {
	struct worker *c_w;
	int c_fd;
	struct event c_ev;
	short c_events;                 /* EV_READ, EV_WRITE or 0 */
	const struct timeval *c_tv;     /* its common timeout, NULL if other */
	char *c_in;                     /* unparsed bytes, NULL when none */
	size_t c_inlen, c_incap;
	size_t c_scan;                  /* http_parse_request() resume point */
	char *c_out;                    /* unsent response bytes */
	size_t c_outlen, c_outoff;
	long long c_discard;            /* request body bytes still to skip */
	struct http_chunked c_chunk;    /* a chunked body being skipped */
	uint64_t c_head_start_ms;       /* first byte of the pending head */
	int c_resp_flags;               /* for the request waiting on Redis */
	unsigned c_waiting : 1;         /* a Redis command is in flight */
	unsigned c_json : 1;
	unsigned c_dead : 1;            /* closed; freed when Redis answers */
	unsigned c_close : 1;           /* close once the output is sent */
	unsigned c_eof : 1;             /* the client sent FIN */
	unsigned c_linger : 1;          /* draining input before close */
	unsigned c_more : 1;            /* c_in holds requests not yet answered */
	unsigned c_chunked : 1;         /* skipping a chunked body */
	unsigned c_admin : 1;           /* came in on a metrics_listen address */
	char *c_log;                    /* request line, Referer, User-Agent */
	size_t c_logcap;
	unsigned short c_log_req, c_log_ref, c_log_ua;  /* their lengths */
	unsigned char c_log_has;        /* bit 0 Referer, bit 1 User-Agent */
	char c_client[INET6_ADDRSTRLEN];
	struct conn *c_prev, *c_next;
};

/* A listening socket as the worker sees it. */
struct wlisten {
	struct worker *wl_w;
	int wl_fd;
	int wl_admin;
};

struct worker {
	const struct conf *w_cf;
	struct event_base *w_base;
	struct counter *w_counter;
	struct http_limits w_lim;
	const int *w_fds;
	size_t w_nfds;
	struct wlisten *w_wl;
	int w_has_admin;                /* /metrics only on admin listeners */
	char *w_metrics;                /* where /metrics is rendered */
	struct event *w_logflush_ev;
	struct event **w_listen_ev;
	size_t w_nlisten_ev;
	int w_accept_epfd;              /* EPOLLEXCLUSIVE set of the listeners */
	int w_accepting;
	struct conn *w_conns;
	int w_nconns;                   /* open client sockets */
	int w_stopping;
	const struct timeval *w_ka_tv, *w_hdr_tv, *w_linger_tv, *w_grace_tv;
	char *w_scratch;                /* reads land here first */
	size_t w_scratch_size;
	char *w_out;                    /* responses of one processing pass */
	size_t w_outlen;
	struct event *w_sig[4];
	struct event *w_stop_ev;        /* deadline of a graceful stop */
	struct event *w_resume_ev;      /* accept again after EMFILE */
	int w_chan;                     /* the master's commands (channel.c) */
	struct event *w_chan_ev;
};

static void conn_on_event(evutil_socket_t, short, void *);
static void conn_process(struct conn *, const char *, size_t);
static void conn_process_buffered(struct conn *);
static void worker_check_done(struct worker *);

/*
 * Set what the connection waits for, and for how long.  tv is one of the
 * worker's common timeouts, or a one-off (common 0).  Setting again what
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
		event_assign(&c->c_ev, c->c_w->w_base, c->c_fd,
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
worker_set_accepting(struct worker *w, int on)
{
	size_t i;

	if (w->w_accepting == on)
		return;
	for (i = 0; i < w->w_nlisten_ev; i++) {
		if (on)
			event_add(w->w_listen_ev[i], NULL);
		else
			event_del(w->w_listen_ev[i]);
	}
	w->w_accepting = on;
}

static void
conn_free(struct conn *c)
{
	free(c->c_in);
	free(c->c_out);
	free(c->c_log);
	free(c);
}

/* Close the socket now; the conn itself goes when Redis no longer refers to it. */
static void
conn_close(struct conn *c)
{
	struct worker *w = c->c_w;

	if (c->c_fd == -1)
		return;
	conn_set_events(c, 0, NULL);
	close(c->c_fd);
	c->c_fd = -1;
	METRICS_ADD(mw_conns_open, -1);
	if (c->c_prev)
		c->c_prev->c_next = c->c_next;
	else
		w->w_conns = c->c_next;
	if (c->c_next)
		c->c_next->c_prev = c->c_prev;
	w->w_nconns--;
	if (c->c_waiting)
		c->c_dead = 1;
	else
		conn_free(c);
	if (!w->w_stopping && !w->w_accepting &&
	    w->w_nconns < w->w_cf->cf_max_connections &&
	    !evtimer_pending(w->w_resume_ev, NULL))
		worker_set_accepting(w, 1);
	worker_check_done(w);
}

/*
 * Close after a response that may leave unread input behind: a plain
 * close() would then send RST, which can destroy the response before the
 * client reads it.  Send FIN and drain for a while instead.
 */
static void
conn_linger(struct conn *c)
{
	if (shutdown(c->c_fd, SHUT_WR) == -1 || c->c_eof) {
		conn_close(c);
		return;
	}
	c->c_linger = 1;
	conn_set_events(c, EV_READ, c->c_w->w_linger_tv);
}

/* The connection has nothing to send: decide what it waits for next. */
static void
conn_idle(struct conn *c)
{
	struct worker *w = c->c_w;

	if (c->c_close || (c->c_eof && c->c_inlen == 0 && !c->c_waiting)) {
		conn_linger(c);
		return;
	}
	if (c->c_waiting) {
		/*
		 * Keep reading pipelined bytes while there is room.  The counter
		 * answers within timeout_ms, so a timeout here is ignored.
		 */
		if (c->c_eof || (c->c_in && c->c_inlen == c->c_incap))
			conn_set_events(c, 0, NULL);
		else if (c->c_events != EV_READ)
			conn_set_events(c, EV_READ, w->w_hdr_tv);
		return;
	}
	if (w->w_stopping && c->c_inlen == 0 && c->c_discard == 0 &&
	    !c->c_chunked) {
		conn_set_events(c, EV_READ, w->w_grace_tv);
		return;
	}
	if (c->c_inlen > 0 || c->c_discard > 0 || c->c_chunked) {
		/* A request is partly here: the header timeout runs from its start. */
		uint64_t now = clock_coarse_ms(), limit, spent;
		struct timeval tv;

		if (c->c_head_start_ms == 0)
			c->c_head_start_ms = now;
		limit = (uint64_t)w->w_cf->cf_header_timeout * 1000;
		spent = now - c->c_head_start_ms;
		if (spent >= limit)
			spent = limit - 1;
		tv.tv_sec = (limit - spent) / 1000;
		tv.tv_usec = ((limit - spent) % 1000) * 1000;
		conn_set_events_tv(c, EV_READ, &tv, 0);
	} else {
		c->c_head_start_ms = 0;         /* the next head starts afresh */
		conn_set_events(c, EV_READ, w->w_ka_tv);
	}
}

/* Send what the processing pass produced, keeping what the socket refuses. */
static void
conn_flush(struct conn *c)
{
	struct worker *w = c->c_w;
	ssize_t n;

	if (c->c_outlen == 0 && w->w_outlen > 0) {
		n = send(c->c_fd, w->w_out, w->w_outlen, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			w->w_outlen = 0;
			conn_close(c);
			return;
		}
		if (n < 0)
			n = 0;
		if ((size_t)n < w->w_outlen) {
			c->c_out = malloc(w->w_outlen - n);
			if (c->c_out == NULL) {
				log_warn("malloc");
				w->w_outlen = 0;
				conn_close(c);
				return;
			}
			memcpy(c->c_out, w->w_out + n, w->w_outlen - n);
			c->c_outlen = w->w_outlen - n;
			c->c_outoff = 0;
		}
		w->w_outlen = 0;
	} else if (c->c_outlen > 0) {
		if (w->w_outlen > 0) {
			char *p = realloc(c->c_out, c->c_outlen + w->w_outlen);

			if (p == NULL) {
				log_warn("realloc");
				w->w_outlen = 0;
				conn_close(c);
				return;
			}
			memcpy(p + c->c_outlen, w->w_out, w->w_outlen);
			c->c_out = p;
			c->c_outlen += w->w_outlen;
			w->w_outlen = 0;
		}
		n = send(c->c_fd, c->c_out + c->c_outoff,
		    c->c_outlen - c->c_outoff, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			conn_close(c);
			return;
		}
		if (n > 0)
			c->c_outoff += n;
		if (c->c_outoff == c->c_outlen) {
			free(c->c_out);
			c->c_out = NULL;
			c->c_outlen = c->c_outoff = 0;
		}
	}
	if (c->c_outlen > 0)
		conn_set_events(c, EV_WRITE, w->w_hdr_tv);
	else if (c->c_more && !c->c_waiting && !c->c_close)
		conn_process_buffered(c);       /* answer what was held back */
	else
		conn_idle(c);
}

/*
 * Keep what the access log needs of a request: the request may wait for
 * Redis while the bytes it points into move.  The buffer is reused from
 * request to request.
 */
static void
conn_log_keep(struct conn *c, const struct http_request *req)
{
	size_t req_len = req->r_line_len > 2048 ? 2048 : req->r_line_len;
	size_t ref_len = req->r_referer_len > 1024 ? 1024 : req->r_referer_len;
	size_t ua_len = req->r_agent_len > 1024 ? 1024 : req->r_agent_len;
	size_t need = req_len + ref_len + ua_len;

	if (need > c->c_logcap) {
		char *p = realloc(c->c_log, need);

		if (p == NULL) {
			c->c_log_req = c->c_log_ref = c->c_log_ua = 0;
			c->c_log_has = 0;
			return;
		}
		c->c_log = p;
		c->c_logcap = need;
	}
	if (req_len)
		memcpy(c->c_log, req->r_line, req_len);
	if (ref_len)
		memcpy(c->c_log + req_len, req->r_referer, ref_len);
	if (ua_len)
		memcpy(c->c_log + req_len + ref_len, req->r_agent, ua_len);
	c->c_log_req = req_len;
	c->c_log_ref = ref_len;
	c->c_log_ua = ua_len;
	c->c_log_has = (req->r_referer ? 1 : 0) | (req->r_agent ? 2 : 0);
}

/* One access log line for the response being sent. */
static void
conn_log(struct conn *c, int status, long long bytes)
{
	struct accesslog_entry e;

	e.a_client = c->c_client[0] ? c->c_client : "-";
	e.a_request = c->c_log_req ? c->c_log : NULL;
	e.a_request_len = c->c_log_req;
	e.a_referer = (c->c_log_has & 1) ? c->c_log + c->c_log_req : NULL;
	e.a_referer_len = c->c_log_ref;
	e.a_agent = (c->c_log_has & 2) ?
	    c->c_log + c->c_log_req + c->c_log_ref : NULL;
	e.a_agent_len = c->c_log_ua;
	e.a_status = status;
	e.a_bytes = bytes;
	accesslog_write(&e);
	c->c_log_req = c->c_log_ref = c->c_log_ua = 0;
	c->c_log_has = 0;
}

/* Append one response to the worker's output of this pass. */
static void
conn_respond(struct conn *c, int status, const char *ctype, const char *body,
    size_t bodylen, size_t content_length, int flags)
{
	struct worker *w = c->c_w;
	size_t n;

	if (c->c_close)
		return;         /* the previous response ended the connection */
	/* conn_process() leaves WORKER_OUT_RESERVE free for each response. */
	n = http_format_response(w->w_out + w->w_outlen,
	    WORKER_OUT_SIZE - w->w_outlen, status, ctype, body, bodylen,
	    content_length, flags);
	w->w_outlen += n;
	if (flags & HTTP_F_CLOSE)
		c->c_close = 1;
	metrics_count_status(status);
	if (accesslog_enabled())
		conn_log(c, status, (flags & HTTP_F_HEAD) ? 0 :
		    (long long)bodylen);
}

/* Append bytes that are already a response (an interim 1xx). */
static void
conn_respond_raw(struct conn *c, const char *text)
{
	struct worker *w = c->c_w;
	size_t len = strlen(text);

	memcpy(w->w_out + w->w_outlen, text, len);
	w->w_outlen += len;
}

static void
conn_respond_text(struct conn *c, int status, const char *text, int flags)
{
	size_t len = strlen(text);

	conn_respond(c, status, "text/plain; charset=utf-8", text, len, len,
	    flags);
}

/* Format the counter page into buf (64 bytes); returns its length. */
static size_t
conn_counter_body(char *buf, int json, long long n)
{
	static const char page[] = "Page visited ", times[] = " times";
	static const char jsonp[] = "{\"visits\": ";
	size_t len;
	char *p = buf;

	if (json) {
		memcpy(p, jsonp, sizeof(jsonp) - 1);
		p += sizeof(jsonp) - 1;
	} else {
		memcpy(p, page, sizeof(page) - 1);
		p += sizeof(page) - 1;
	}
	if (n < 0) {
		*p++ = '-';
		p += http_format_uint(p, -(unsigned long long)n);
	} else
		p += http_format_uint(p, (unsigned long long)n);
	if (json)
		*p++ = '}';
	else {
		memcpy(p, times, sizeof(times) - 1);
		p += sizeof(times) - 1;
	}
	len = (size_t)(p - buf);
	return len;
}

static void
conn_on_counter(void *arg, int ok, long long value)
{
	struct conn *c = arg;
	int flags = c->c_resp_flags;
	char body[64];
	size_t len;

	c->c_waiting = 0;
	if (c->c_dead) {
		conn_free(c);
		return;
	}
	if (c->c_w->w_stopping)
		flags = (flags & ~HTTP_F_KEEPALIVE) | HTTP_F_CLOSE;
	if (!ok) {
		conn_respond_text(c, 503, "Redis is unavailable\n",
		    (flags & ~HTTP_F_NOSTORE) | HTTP_F_RETRY);
	} else {
		/* HEAD: announce the length the next GET would have. */
		if (flags & HTTP_F_HEAD)
			value++;
		else
			METRICS_ADD(mw_visits, 1);
		len = conn_counter_body(body, c->c_json, value);
		conn_respond(c, 200, c->c_json ? "application/json" :
		    "text/html; charset=utf-8", body, len, len, flags);
	}
	/* Carry on with pipelined requests that arrived meanwhile. */
	if (c->c_inlen > 0 && !c->c_close)
		conn_process_buffered(c);
	else
		conn_flush(c);
}

/* Is the request's path the configured path p ("" never matches)? */
static int
conn_path_is(const struct http_request *req, const char *p)
{
	size_t n = strlen(p);

	return n > 0 && req->r_pathlen == n && memcmp(req->r_path, p, n) == 0;
}

/* Answer one parsed request; may leave it waiting on Redis. */
static void
conn_route(struct conn *c, const struct http_request *req, int flags)
{
	struct worker *w = c->c_w;
	int rc;

	if (req->r_method == HTTP_HEAD)
		flags |= HTTP_F_HEAD;
	if (req->r_pathlen == 1 && req->r_path[0] == '/' && !c->c_admin) {
		if (req->r_method != HTTP_GET && req->r_method != HTTP_HEAD) {
			conn_respond_text(c, 405, "Method Not Allowed\n",
			    flags | HTTP_F_ALLOW);
			return;
		}
		c->c_resp_flags = flags | HTTP_F_NOSTORE;
		c->c_json = req->r_json;
		if (req->r_method == HTTP_HEAD)
			rc = counter_get(w->w_counter, conn_on_counter, c);
		else
			rc = counter_incr(w->w_counter, conn_on_counter, c);
		if (rc == 0)
			c->c_waiting = 1;
		else
			conn_respond_text(c, 503, "Redis is unavailable\n",
			    flags | HTTP_F_RETRY);
		return;
	}
	if (req->r_pathlen == 8 && memcmp(req->r_path, "/healthz", 8) == 0) {
		if (req->r_method != HTTP_GET && req->r_method != HTTP_HEAD)
			conn_respond_text(c, 405, "Method Not Allowed\n",
			    flags | HTTP_F_ALLOW);
		else
			conn_respond_text(c, 200, "ok\n", flags);
		return;
	}
	if (conn_path_is(req, w->w_cf->cf_readyz_path)) {
		if (req->r_method != HTTP_GET && req->r_method != HTTP_HEAD)
			conn_respond_text(c, 405, "Method Not Allowed\n",
			    flags | HTTP_F_ALLOW);
		else if (counter_ready(w->w_counter))
			conn_respond_text(c, 200, "ready\n", flags);
		else
			conn_respond_text(c, 503, "Redis is unavailable\n",
			    flags | HTTP_F_RETRY);
		return;
	}
	if (conn_path_is(req, w->w_cf->cf_metrics_path) &&
	    (c->c_admin || !w->w_has_admin)) {
		size_t len;

		if (req->r_method != HTTP_GET && req->r_method != HTTP_HEAD) {
			conn_respond_text(c, 405, "Method Not Allowed\n",
			    flags | HTTP_F_ALLOW);
			return;
		}
		len = metrics_render(w->w_metrics, WORKER_METRICS_MAX);
		if (len == 0)
			conn_respond_text(c, 500, "Internal Server Error\n",
			    flags);
		else
			conn_respond(c, 200, METRICS_CONTENT_TYPE, w->w_metrics,
			    len, len, flags);
		return;
	}
	conn_respond_text(c, 404, "Not Found\n", flags);
}

/*
 * Parse and answer the requests in buf (len bytes; not the connection's
 * own buffer), stopping at one that waits for Redis.  What is left is
 * kept in c->c_in.  Ends by flushing the output.
 */
static void
conn_process(struct conn *c, const char *buf, size_t len)
{
	struct worker *w = c->c_w;
	const struct conf *cf = w->w_cf;
	size_t off = 0;

	c->c_more = 0;
	while (off < len && !c->c_waiting && !c->c_close) {
		struct http_request req;
		ssize_t head;
		int status, flags = 0;

		if (w->w_outlen > WORKER_OUT_SIZE - WORKER_OUT_RESERVE ||
		    c->c_outlen > WORKER_OUT_SIZE) {
			/* Enough output for now: the rest once it is sent. */
			c->c_more = 1;
			break;
		}

		if (c->c_discard > 0) {
			size_t skip = len - off;

			if ((long long)skip > c->c_discard)
				skip = (size_t)c->c_discard;
			off += skip;
			c->c_discard -= skip;
			continue;
		}
		if (c->c_chunked) {
			ssize_t n;
			int done;

			n = http_chunked_skip(&c->c_chunk, buf + off, len - off,
			    WORKER_MAX_BODY, &done);
			if (n < 0) {
				/* Its answer is out; the next request cannot be found. */
				c->c_close = 1;
				off = len;
				break;
			}
			off += n;
			c->c_chunked = !done;
			continue;
		}
		head = http_parse_request(buf + off, len - off, &c->c_scan,
		    &w->w_lim, &req, &status);
		if (head == 0)
			break;
		c->c_scan = 0;
		c->c_head_start_ms = 0;
		if (head < 0) {
			char text[64];

			snprintf(text, sizeof(text), "%s\n", http_reason(status));
			conn_respond_text(c, status, text, HTTP_F_CLOSE);
			off = len;
			break;
		}
		off += head;
		if (!req.r_keepalive || cf->cf_keepalive_timeout == 0 ||
		    w->w_stopping || c->c_eof)
			flags |= HTTP_F_CLOSE;
		else if (req.r_minor == 0)
			flags |= HTTP_F_KEEPALIVE;
		/*
		 * No resource here takes a body: it is read and thrown away, so
		 * that the next request on the connection starts at the right
		 * byte.  A body too large to be worth reading ends the connection.
		 */
		if (req.r_content_length > WORKER_MAX_BODY) {
			conn_respond_text(c, 413, "Content Too Large\n",
			    HTTP_F_CLOSE);
			off = len;
			break;
		}
		if (req.r_chunked) {
			memset(&c->c_chunk, 0, sizeof(c->c_chunk));
			c->c_chunked = 1;
		} else if (req.r_content_length > 0)
			c->c_discard = req.r_content_length;
		/* The client waits for a go-ahead before it sends the body. */
		if (req.r_expect_continue && req.r_minor == 1 && off == len &&
		    (c->c_chunked || c->c_discard > 0))
			conn_respond_raw(c, "HTTP/1.1 100 Continue\r\n\r\n");
		if (accesslog_enabled())
			conn_log_keep(c, &req);
		conn_route(c, &req, flags);
	}

	/* Keep what is not yet processed. */
	if (off < len && !c->c_close) {
		size_t left = len - off;
		size_t cap = (size_t)cf->cf_max_header_size + 1024;

		if (cap < left)
			cap = left;
		c->c_in = malloc(cap);
		if (c->c_in == NULL) {
			log_warn("malloc");
			w->w_outlen = 0;
			conn_close(c);
			return;
		}
		memcpy(c->c_in, buf + off, left);
		c->c_inlen = left;
		c->c_incap = cap;
	}
	conn_flush(c);
}

/* Process the bytes the connection holds (conn_process() re-stores the rest). */
static void
conn_process_buffered(struct conn *c)
{
	char *in = c->c_in;
	size_t inlen = c->c_inlen;

	c->c_in = NULL;
	c->c_inlen = c->c_incap = 0;
	conn_process(c, in, inlen);
	free(in);
}

static void
conn_read(struct conn *c)
{
	struct worker *w = c->c_w;
	ssize_t n;

	if (c->c_linger) {
		n = recv(c->c_fd, w->w_scratch, w->w_scratch_size, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			conn_close(c);
		return;
	}
	if (c->c_in == NULL && !c->c_waiting) {
		n = recv(c->c_fd, w->w_scratch, w->w_scratch_size, 0);
		if (n > 0) {
			conn_process(c, w->w_scratch, (size_t)n);
			return;
		}
	} else {
		if (c->c_in == NULL) {
			c->c_incap = (size_t)w->w_cf->cf_max_header_size + 1024;
			c->c_in = malloc(c->c_incap);
			if (c->c_in == NULL) {
				log_warn("malloc");
				conn_close(c);
				return;
			}
		}
		if (c->c_inlen == c->c_incap) {
			conn_idle(c);   /* full: wait for Redis to drain it */
			return;
		}
		n = recv(c->c_fd, c->c_in + c->c_inlen, c->c_incap - c->c_inlen,
		    0);
		if (n > 0) {
			c->c_inlen += n;
			if (c->c_waiting) {
				conn_idle(c);
				return;
			}
			conn_process_buffered(c);
			return;
		}
	}
	if (n == 0) {
		/* Half-closed: answer what was asked, then close. */
		c->c_eof = 1;
		if (c->c_outlen > 0)
			conn_set_events(c, EV_WRITE, w->w_hdr_tv);
		else if (c->c_waiting)
			conn_idle(c);
		else
			conn_close(c);
		return;
	}
	if (errno == EAGAIN || errno == EINTR)
		return;
	if (errno != ECONNRESET)
		log_debug("recv: %s", strerror(errno));
	conn_close(c);
}

static void
conn_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		if (c->c_waiting)
			return;
		if (c->c_linger || c->c_outlen > 0 ||
		    (c->c_inlen == 0 && c->c_discard == 0 && !c->c_chunked)) {
			conn_close(c);  /* idle keep-alive, or a client not reading */
			return;
		}
		conn_respond_text(c, 408, "Request Timeout\n", HTTP_F_CLOSE);
		free(c->c_in);
		c->c_in = NULL;
		c->c_inlen = c->c_incap = 0;
		conn_flush(c);
		return;
	}
	if (what & EV_WRITE)
		conn_flush(c);
	else if (what & EV_READ)
		conn_read(c);
}

/* The client's address as the access log shows it. */
static void
worker_client_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *a;

	if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	else if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	else {
		snprintf(buf, len, "-");
		return;
	}
	if (inet_ntop(ss->ss_family, a, buf, len) == NULL)
		snprintf(buf, len, "-");
}

/* Accept a batch of connections from one listening socket. */
static void
worker_accept_from(struct wlisten *wl)
{
	struct worker *w = wl->wl_w;
	int fd = wl->wl_fd, i;

	for (i = 0; i < WORKER_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen;
		struct conn *c;
		int s, one = 1;

		if (w->w_nconns >= w->w_cf->cf_max_connections) {
			worker_set_accepting(w, 0);
			return;
		}
		sslen = sizeof(ss);
		s = accept4(fd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s == -1) {
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			log_warn("accept");
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: pause instead of spinning. */
				struct timeval tv = { 0, 100000 };

				worker_set_accepting(w, 0);
				event_add(w->w_resume_ev, &tv);
			}
			return;
		}
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			log_warn("calloc");
			close(s);
			return;
		}
		c->c_w = w;
		c->c_fd = s;
		c->c_admin = wl->wl_admin;
		if (accesslog_enabled())
			worker_client_text(&ss, c->c_client,
			    sizeof(c->c_client));
		METRICS_ADD(mw_conns_open, 1);
		c->c_next = w->w_conns;
		if (w->w_conns)
			w->w_conns->c_prev = c;
		w->w_conns = c;
		w->w_nconns++;
		c->c_head_start_ms = clock_coarse_ms();
		conn_set_events(c, EV_READ, w->w_hdr_tv);
	}
}

static void
worker_on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_accept_from(arg);
}

/* The exclusive set is readable: accept from the listeners that are. */
static void
worker_on_accept_set(evutil_socket_t fd, short what, void *arg)
{
	struct epoll_event evs[16];
	int i, n;

	(void)what;
	(void)arg;
	n = epoll_wait(fd, evs, 16, 0);
	for (i = 0; i < n; i++) {
		struct epoll_event ev = evs[i];
		struct wlisten *wl = ev.data.ptr;

		worker_accept_from(wl);
		/*
		 * The kernel wakes the first exclusive waiter it finds, so one
		 * worker would take every connection.  Re-registering puts this
		 * worker at the back of the queue: connections go round.
		 */
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		if (epoll_ctl(fd, EPOLL_CTL_DEL, wl->wl_fd, NULL) == -1 ||
		    epoll_ctl(fd, EPOLL_CTL_ADD, wl->wl_fd, &ev) == -1)
			log_warn("epoll_ctl");
	}
}

/*
 * Wake only one worker per new connection.  Every worker polls the same
 * listening sockets; with plain epoll each connection wakes them all and
 * all but one find nothing to accept.  libevent 2.1 cannot ask for
 * EPOLLEXCLUSIVE, so the listeners go into an epoll set of the worker's
 * own, registered exclusive, and that set is what the loop watches.
 * Returns 0, or -1 if the kernel will not (the caller polls the sockets).
 */
static int
worker_listen_exclusive(struct worker *w)
{
	size_t i;

	w->w_accept_epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->w_accept_epfd == -1)
		return -1;
	for (i = 0; i < w->w_nfds; i++) {
		struct epoll_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.ptr = &w->w_wl[i];
		if (epoll_ctl(w->w_accept_epfd, EPOLL_CTL_ADD, w->w_fds[i],
		    &ev) == -1) {
			log_debug("epoll_ctl EPOLLEXCLUSIVE: %s",
			    strerror(errno));
			close(w->w_accept_epfd);
			w->w_accept_epfd = -1;
			return -1;
		}
	}
	w->w_listen_ev[0] = event_new(w->w_base, w->w_accept_epfd,
	    EV_READ | EV_PERSIST, worker_on_accept_set, w);
	if (w->w_listen_ev[0] == NULL)
		return -1;
	w->w_nlisten_ev = 1;
	return 0;
}

static void
worker_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (!w->w_stopping && w->w_nconns < w->w_cf->cf_max_connections)
		worker_set_accepting(w, 1);
}

/* Exit the loop once a graceful stop has nothing left to finish. */
static void
worker_check_done(struct worker *w)
{
	if (w->w_stopping && w->w_nconns == 0)
		event_base_loopbreak(w->w_base);
}

static void
worker_stop(struct worker *w, int graceful)
{
	struct conn *c, *next;
	struct timeval tv;
	size_t i;

	if (!graceful) {
		event_base_loopbreak(w->w_base);
		return;
	}
	if (w->w_stopping)
		return;
	w->w_stopping = 1;
	log_debug("worker stopping, %d connections open", w->w_nconns);
	worker_set_accepting(w, 0);
	event_del(w->w_resume_ev);
	for (i = 0; i < w->w_nfds; i++)
		close(w->w_fds[i]);
	for (c = w->w_conns; c != NULL; c = next) {
		next = c->c_next;
		/*
		 * Idle keep-alive connections get a short grace for a request
		 * already on its way; the others close after their answer.
		 */
		if (!c->c_waiting && c->c_inlen == 0 && c->c_outlen == 0 &&
		    c->c_discard == 0 && !c->c_chunked && !c->c_linger)
			conn_set_events(c, EV_READ, w->w_grace_tv);
	}
	tv.tv_sec = w->w_cf->cf_shutdown_timeout;
	tv.tv_usec = 0;
	event_add(w->w_stop_ev, &tv);
	worker_check_done(w);
}

/* Do what the master asked (channel.c), or what a signal meant the same. */
static void
worker_command(struct worker *w, int msg)
{
	switch (msg) {
	case CHANNEL_STOP:
		worker_stop(w, 1);
		break;
	case CHANNEL_HALT:
		worker_stop(w, 0);
		break;
	case CHANNEL_REOPEN:
		if (accesslog_reopen() == 0)
			log_debug("access log reopened");
		break;
	default:
		log_warnx("channel: unknown command 0x%02x", (unsigned)msg);
	}
}

/*
 * Signals reaching a worker directly (Ctrl-C, `systemctl kill`, or the
 * master's fallback when the channel is gone) mean what the channel's
 * commands mean.  The master's other signals are ignored in workers.
 */
static void
worker_on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	worker_command(arg, sig == SIGINT ? CHANNEL_HALT :
	    sig == SIGUSR1 ? CHANNEL_REOPEN : CHANNEL_STOP);
}

/*
 * The worker ends itself at shutdown_timeout, whether or not the master
 * may kill it (a master without CAP_KILL over another user's process).
 */
static void
worker_on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	log_warnx("shutdown_timeout reached with %d connections open",
	    w->w_nconns);
	event_base_loopbreak(w->w_base);
}

/* A command from the master, or end of file: the master is gone. */
static void
worker_on_channel(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	char buf[16];
	int i, n;

	(void)what;
	n = channel_recv(fd, buf, sizeof(buf));
	if (n == -1) {
		if (errno != EAGAIN)
			log_warn("channel");
		return;
	}
	if (n == 0) {
		log_warnx("master is gone, exiting");
		event_del(w->w_chan_ev);
		worker_stop(w, 0);
		return;
	}
	for (i = 0; i < n; i++)
		worker_command(w, (unsigned char)buf[i]);
}

static void
worker_free(struct worker *w)
{
	struct conn *c, *next;
	size_t i;

	for (c = w->w_conns; c != NULL; c = next) {
		next = c->c_next;
		conn_close(c);
	}
	/* Fails what is still in flight and frees the conns it refers to. */
	counter_free(w->w_counter);
	for (i = 0; w->w_listen_ev && i < w->w_nfds; i++)
		if (w->w_listen_ev[i])
			event_free(w->w_listen_ev[i]);
	free(w->w_listen_ev);
	if (w->w_accept_epfd != -1)
		close(w->w_accept_epfd);
	for (i = 0; i < nitems(w->w_sig); i++)
		if (w->w_sig[i])
			event_free(w->w_sig[i]);
	if (w->w_stop_ev)
		event_free(w->w_stop_ev);
	if (w->w_resume_ev)
		event_free(w->w_resume_ev);
	if (w->w_chan_ev)
		event_free(w->w_chan_ev);
	if (w->w_chan != -1)
		close(w->w_chan);
	if (w->w_logflush_ev)
		event_free(w->w_logflush_ev);
	accesslog_close();
	free(w->w_wl);
	free(w->w_metrics);
	free(w->w_scratch);
	free(w->w_out);
	if (w->w_base)
		event_base_free(w->w_base);
}

static void
worker_on_logflush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	accesslog_flush();
}

/*
 * The first attempt to reach Redis has ended: only now take clients and
 * tell the master this worker serves.  A worker that took clients while
 * it was still resolving the Redis host would answer them 503, which a
 * reload or a new worker (TTIN) must not cost.
 */
static void
worker_on_counter_settled(void *arg)
{
	struct worker *w = arg;

	if (!w->w_stopping)
		worker_set_accepting(w, 1);
	log_info("worker started");
	if (w->w_chan != -1 && channel_send(w->w_chan, CHANNEL_READY) == -1)
		log_warn("channel");
}

/*
 * The worker's own events: signals, the channel, timers.  The signals
 * were blocked since the fork (master.c); they are let in only now that
 * their handlers are in place.  Returns 0 or -1.
 */
static int
worker_init_events(struct worker *w)
{
	static const int sigs[] = { SIGTERM, SIGQUIT, SIGINT, SIGUSR1 };
	struct timeval tv = { 1, 0 };
	sigset_t none;
	size_t i;

	for (i = 0; i < nitems(sigs); i++) {
		w->w_sig[i] = evsignal_new(w->w_base, sigs[i], worker_on_signal,
		    w);
		if (w->w_sig[i] == NULL || event_add(w->w_sig[i], NULL) == -1)
			return -1;
	}
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) == -1) {
		log_warn("sigprocmask");
		return -1;
	}
	w->w_stop_ev = evtimer_new(w->w_base, worker_on_stop_deadline, w);
	w->w_resume_ev = evtimer_new(w->w_base, worker_on_resume, w);
	w->w_logflush_ev = event_new(w->w_base, -1, EV_PERSIST,
	    worker_on_logflush, w);
	if (w->w_stop_ev == NULL || w->w_resume_ev == NULL ||
	    w->w_logflush_ev == NULL || event_add(w->w_logflush_ev, &tv) == -1)
		return -1;
	if (w->w_chan != -1) {
		w->w_chan_ev = event_new(w->w_base, w->w_chan,
		    EV_READ | EV_PERSIST, worker_on_channel, w);
		if (w->w_chan_ev == NULL || event_add(w->w_chan_ev, NULL) == -1)
			return -1;
	}
	return 0;
}

/* Per-connection timeouts as libevent common timeouts (one heap each). */
static void
worker_init_timeouts(struct worker *w, const struct conf *cf)
{
	struct timeval tv;

	tv.tv_sec = cf->cf_keepalive_timeout;
	tv.tv_usec = 0;
	w->w_ka_tv = event_base_init_common_timeout(w->w_base, &tv);
	tv.tv_sec = cf->cf_header_timeout;
	w->w_hdr_tv = event_base_init_common_timeout(w->w_base, &tv);
	tv.tv_sec = WORKER_LINGER_MS / 1000;
	tv.tv_usec = (WORKER_LINGER_MS % 1000) * 1000;
	w->w_linger_tv = event_base_init_common_timeout(w->w_base, &tv);
	tv.tv_sec = WORKER_STOP_GRACE_MS / 1000;
	tv.tv_usec = (WORKER_STOP_GRACE_MS % 1000) * 1000;
	w->w_grace_tv = event_base_init_common_timeout(w->w_base, &tv);
}

int
worker_run(const struct conf *cf, const int *fds, const int *admin,
    size_t nfds, int chan)
{
	struct worker w;
	size_t i;
	int rc = WORKER_EXIT_NORESPAWN;

	memset(&w, 0, sizeof(w));
	w.w_accept_epfd = -1;
	w.w_cf = cf;
	w.w_fds = fds;
	w.w_nfds = nfds;
	w.w_chan = chan;
	w.w_lim.hl_max_head = cf->cf_max_header_size;
	w.w_lim.hl_max_headers = cf->cf_max_headers;
	w.w_scratch_size = (size_t)cf->cf_max_header_size + 1024;
	if (w.w_scratch_size < 16384)
		w.w_scratch_size = 16384;
	w.w_scratch = malloc(w.w_scratch_size);
	w.w_out = malloc(WORKER_OUT_SIZE);
	w.w_base = event_base_new();
	w.w_listen_ev = calloc(nfds ? nfds : 1, sizeof(*w.w_listen_ev));
	w.w_wl = calloc(nfds ? nfds : 1, sizeof(*w.w_wl));
	w.w_metrics = malloc(WORKER_METRICS_MAX);
	if (w.w_scratch == NULL || w.w_out == NULL || w.w_base == NULL ||
	    w.w_listen_ev == NULL || w.w_wl == NULL || w.w_metrics == NULL ||
	    worker_init_events(&w) == -1) {
		log_warnx("worker: cannot initialise");
		goto done;
	}
	worker_init_timeouts(&w, cf);
	for (i = 0; i < nfds; i++) {
		w.w_wl[i].wl_w = &w;
		w.w_wl[i].wl_fd = fds[i];
		w.w_wl[i].wl_admin = admin[i];
		w.w_has_admin |= admin[i];
	}
	/* Normally opened by the master's child before it gave up root. */
	if (!accesslog_enabled() && accesslog_open(cf->cf_access_log) == -1)
		goto done;
	if (worker_listen_exclusive(&w) == -1) {
		for (i = 0; i < nfds; i++) {
			w.w_listen_ev[i] = event_new(w.w_base, fds[i],
			    EV_READ | EV_PERSIST, worker_on_accept, &w.w_wl[i]);
			if (w.w_listen_ev[i] == NULL) {
				log_warnx("worker: cannot initialise");
				goto done;
			}
			w.w_nlisten_ev = i + 1;
		}
	}
	w.w_counter = counter_new(w.w_base, cf, worker_on_counter_settled, &w);
	if (w.w_counter == NULL) {
		log_warnx("worker: cannot set up the Redis client");
		goto done;
	}

	event_base_dispatch(w.w_base);
	rc = 0;
	log_info("worker exiting");
done:
	worker_free(&w);
	return rc;
}
