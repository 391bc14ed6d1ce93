/*
 * conn.h - a client connection: reading requests, writing responses.
 */
#ifndef HITCOUNTD_CONN_H
#define HITCOUNTD_CONN_H

#include <stddef.h>
#include <sys/socket.h>

#include "http.h"

struct conf;
struct conn;
struct event_base;
struct timeval;

/*
 * What answers a parsed request (route.c's dispatcher, installed from
 * above with conn_set_handler(): conn.c calls down, never up).  It
 * answers c with conn_respond(), now or after conn_wait().  flags are the
 * HTTP_F_* the connection asks for; admin says whether c came in on a
 * metrics_listen socket.
 */
typedef void conn_handler(void *arg, struct conn *c,
    const struct http_request *req, int flags, int admin);

/* The connections of one worker and what they share.  Members are conn.c's. */
struct conn_set {
	struct event_base *cs_base;
	const struct conf *cs_cf;
	conn_handler *cs_handler;       /* answers each parsed request */
	void *cs_handler_arg;
	struct http_limits cs_lim;
	char *cs_scratch;               /* reads land here first */
	size_t cs_scratch_size;
	char *cs_out;                   /* responses of one processing pass */
	size_t cs_outlen, cs_outcap;
	const struct timeval *cs_ka_tv, *cs_hdr_tv, *cs_linger_tv, *cs_grace_tv;
	struct conn *cs_conns;
	int cs_nconns;                  /* open client sockets */
	int cs_stopping;                /* conn_set_stop() was called */
	void (*cs_on_close)(void *);    /* after a socket was closed */
	void *cs_arg;
};

/*
 * Set up cs on base for the requests cf allows.  on_close(arg) is called
 * each time a connection's socket has been closed.  The handler must be
 * installed with conn_set_handler() before the first connection.
 * Returns 0, or -1 (then conn_set_free() cleans up).
 */
int conn_set_init(struct conn_set *cs, struct event_base *base,
    const struct conf *cf, void (*on_close)(void *), void *arg);

/* From now on handler(arg, ...) answers the requests of cs's connections. */
void conn_set_handler(struct conn_set *cs, conn_handler *handler,
    void *arg);

/*
 * A graceful stop: connections close after their current answer, idle
 * ones after a short grace for a request already on its way.
 */
void conn_set_stop(struct conn_set *cs);

/*
 * Close every connection and free what cs holds.  A connection waiting
 * for Redis is freed when its callback comes (counter_free() fails them).
 */
void conn_set_free(struct conn_set *cs);

/*
 * Serve a client on the accepted, non-blocking socket fd, whose address
 * is ss; admin marks a metrics_listen socket.  The connection owns fd
 * from now on, and closes it if this fails.  Returns 0 or -1.
 */
int conn_new(struct conn_set *cs, int fd, const struct sockaddr_storage *ss,
    int admin);

/*
 * Answer the request being routed, or the one conn_wake() returned to:
 * a whole response (http_format_response()), counted in the metrics and
 * the access log.  flags are HTTP_F_*; HTTP_F_CLOSE ends the connection
 * once the answer is sent.  An answer too large for the room a response
 * has is a bug: the client gets a 500 instead, and the connection closes.
 */
void conn_respond(struct conn *c, int status, const char *ctype,
    const char *body, size_t bodylen, size_t content_length, int flags);

/* conn_respond() with a text/plain body. */
void conn_respond_text(struct conn *c, int status, const char *text,
    int flags);

/*
 * The request being routed waits for Redis: the connection answers
 * nothing more until conn_wake().  flags and json are kept for the answer.
 */
void conn_wait(struct conn *c, int flags, int json);

/*
 * The answer the connection waits for has come: returns 0 with the flags
 * (Connection: close added if the worker is stopping meanwhile) and json
 * given to conn_wait(); answer with conn_respond(), then conn_resume().
 * Returns -1 if the connection was closed meanwhile: it is freed now.
 */
int conn_wake(struct conn *c, int *flags, int *json);

/* Send the answer and carry on with requests that arrived meanwhile. */
void conn_resume(struct conn *c);

#endif
