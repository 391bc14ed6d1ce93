/*
 * redisconn.c - a worker's connection to the Redis primary: its life from
 * the look-up to the close, and again.
 *
 * Each worker owns one asynchronous hiredis connection to the primary,
 * attached to its libevent loop (redisio.c); the command queue (counter.c)
 * sends on it.  Where the primary is (cf_redis.host or the socket, the
 * sentinels' word, or the cluster node serving the key's slot) is
 * redispeer.c's business: this file asks it at each attempt, and tells it
 * how each attempt went.  The host name is resolved with evdns, because a
 * blocking getaddrinfo() would stall every client of the worker.
 * Resolving and connecting each have timeout_ms, on this file's own timer;
 * a failed or lost connection is tried again after a pause that backs off
 * from 50 ms to 500 ms, so service resumes within a second of Redis coming
 * back (backoff.c).  A failure is logged as a warning once, then at debug
 * level until a connection succeeds (a log.c limiter).
 *
 * The connection's life, one state at a time (rc_state):
 *
 *   state       under way                       send  next
 *   IDLE        nothing, or the retry timer     fail  LOCATING, RESOLVING,
 *                                                     CONNECTING, CHECKING
 *   LOCATING    the peer finds the primary      fail  RESOLVING; IDLE
 *   RESOLVING   evdns look-up                   fail  CONNECTING, CHECKING;
 *                                                     IDLE
 *   CONNECTING  TCP, TLS, AUTH/SELECT/PING due  send  READY; IDLE
 *   CHECKING    as CONNECTING, with ROLE or     hold  READY; IDLE
 *               CLUSTER SLOTS due too
 *   READY       serving                         send  IDLE
 *   CLOSED      redisconn_free() under way      fail  -
 *
 * IDLE goes to CONNECTING for a Unix socket, to LOCATING when the peer
 * answers later (the sentinels), else to RESOLVING.  A failure in any
 * state goes to IDLE with the pause, or none when the peer says so (a
 * redirection); the sentinels naming another primary send any state to
 * IDLE at once (redisconn_abandon()).  In CONNECTING, CHECKING and READY the connection may be
 * closing (hiredis disconnecting, after a refused setup command, a check
 * that says no, READONLY or a redirection): the replies due still come,
 * then down, then IDLE, and sends fail meanwhile.  Whatever the state,
 * while the peer says a redirection is under way sends are held (the
 * commands wait for the open callback): redisconn_sendable() is these
 * three answers.
 *
 * A new connection first sends AUTH (with the user name, for an ACL user)
 * and SELECT as configured, and the peer's check (ROLE with sentinels: a
 * sentinel's word may be stale, so the server must say itself that it is
 * the primary; CLUSTER SLOTS to a cluster seed).  Commands queued while
 * connecting go out behind these, but for those checks: a command behind
 * ROLE or CLUSTER SLOTS would be executed before the answer says whether
 * this is the server to count on (a replica that takes writes, a Redis
 * without cluster support listed as a seed), so until the checks pass the
 * connection is CHECKING, and the open callback comes then.  The
 * connection is ready, and the pause before the next attempt starts again
 * from 50 ms, only once AUTH and SELECT have succeeded: a server that
 * refuses them (a wrong password, a user without the right) is tried again
 * no more often than a server that is down.
 *
 * With redis.tls the connection speaks TLS (redistls.c).  hiredis calls
 * it connected once TCP is, before the handshake, which runs with the
 * first commands; so over TLS the first reply (to AUTH, SELECT, or a PING
 * sent for this when neither is due) is what makes it ready, and a
 * server whose certificate is refused is tried again no more often than
 * one that is down, with the certificate check's verdict in the log.
 *
 * When the sentinels name another primary (sentinel.c), the connection is
 * dropped at once, failing the commands in flight (what the old primary
 * answers now may be lost, and nothing is sent twice), and the new one is
 * connected to without a pause.  When they announce that they are
 * promoting a replica, the old primary is left at once too, and none is
 * used until they name the new one: for REDISCONN_FAILOVER_MS at most,
 * after which they are asked again.
 *
 * With a Redis Cluster the queue (counter.c) reports MOVED and ASK replies
 * with redisconn_redirect(): the connection is closed once the replies
 * due on it have come, and the node named is connected to without a pause
 * (redispeer.c); after ASK every command on the new connection goes
 * behind ASKING (redisconn_asking()).  A lost connection, or a node that
 * cannot be reached, sends the next attempt back to the seeds after the
 * usual pause: that is how a replica promoted after its primary died is
 * found.
 *
 * Calls: redispeer.c, redisio.c, redistls.c, conf.h, and the common
 * ground (log, metrics, clock, timer, backoff).
 * Called by counter.c only.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "backoff.h"
#include "clock.h"
#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "redisconn.h"
#include "redisio.h"
#include "redispeer.h"
#include "redistls.h"
#include "timer.h"

#define REDISCONN_BACKOFF_MIN_MS        50
#define REDISCONN_BACKOFF_MAX_MS        500
/*
 * A sentinel checks the replica it promotes once a second, and announces
 * the new primary when the replica says it is one: three of those.
 */
#define REDISCONN_FAILOVER_MS           3000

/* See the table at the top. */
enum redisconn_state {
	RC_IDLE,
	RC_LOCATING,
	RC_RESOLVING,
	RC_CONNECTING,
	RC_CHECKING,
	RC_READY,
	RC_CLOSED
};

struct redisconn {
	struct event_base *rc_base;
	const struct conf *rc_cf;
	struct evdns_base *rc_dns;
	struct evdns_getaddrinfo_request *rc_dnsreq;
	redisAsyncContext *rc_ac;
	enum redisconn_state rc_state;
	struct event *rc_retry_ev;      /* the next attempt, after a pause */
	struct event *rc_deadline_ev;   /* resolving or connecting */
	struct backoff rc_backoff;      /* the pause before the next attempt */
	struct log_limit rc_failing;    /* warn once, until connected again */
	int rc_connected_before;        /* a later connect is a reconnect */
	int rc_setup;                   /* setup and check replies due */
	struct ssl_st *rc_ssl;          /* rc_ac's TLS (hiredis owns it) */
	int rc_refused;                 /* AUTH or SELECT failed (log once) */
	char rc_host[256];              /* where the primary is now */
	int rc_port;
	char rc_where[300];             /* host:port or the socket, to log */
	struct redispeer *rc_peer;      /* where the primary is */
	redisconn_down_cb *rc_down;
	void *rc_arg;
	redisconn_settled_cb *rc_settled;       /* until the first attempt ends */
	void *rc_settled_arg;
	redisconn_open_cb *rc_open;     /* a new connection takes commands */
	char rc_ip[INET6_ADDRSTRLEN];   /* rc_host resolved, "" for a socket */
};

static void redisconn_connect(struct redisconn *rc);
static void redisconn_resolve(struct redisconn *rc);

/* The states with a connection open (rc_ac, until its down callback). */
static int
redisconn_open_state(const struct redisconn *rc)
{
	return rc->rc_state == RC_CONNECTING || rc->rc_state == RC_CHECKING ||
	    rc->rc_state == RC_READY;
}

/* Where the connection goes, for the log: HOST:PORT or the socket. */
static const char *
redisconn_where(struct redisconn *rc)
{
	if (rc->rc_cf->cf_redis.socket[0])
		return rc->rc_cf->cf_redis.socket;
	snprintf(rc->rc_where, sizeof(rc->rc_where), "%s%s:%d",
	    redispeer_noun(rc->rc_peer), rc->rc_host, rc->rc_port);
	return rc->rc_where;
}

/* The first attempt to reach Redis ended, one way or the other. */
static void
redisconn_settle(struct redisconn *rc)
{
	redisconn_settled_cb *cb = rc->rc_settled;

	if (cb != NULL) {
		rc->rc_settled = NULL;
		cb(rc->rc_settled_arg);
	}
}

/*
 * Why rc_ac failed, hiredis's errstr unless TLS has a better reason
 * (hiredis says only "Success" or an errno text for a refused
 * certificate).  Inside the disconnect callback, before hiredis frees it.
 */
static const char *
redisconn_why(struct redisconn *rc, const redisAsyncContext *ac, char *buf,
    size_t len)
{
	if (rc->rc_ssl == NULL)
		return ac->errstr;
	if (redistls_why(rc->rc_ssl, buf, len) == 0)
		return buf;
	/*
	 * A server that wants a client certificate closes the connection
	 * after our side of the TLS 1.3 handshake: its alert is lost when
	 * our first command, still unread, makes the close a reset.
	 */
	if (rc->rc_state != RC_READY && redistls_done(rc->rc_ssl)) {
		snprintf(buf, len, "%s (after the TLS handshake: does the "
		    "server want a client certificate, tls_cert_file?)",
		    ac->errstr);
		return buf;
	}
	return ac->errstr;
}

/* An attempt failed: a warning the first time, then debug lines. */
static void LOG_PRINTF(2, 3)
redisconn_failed(struct redisconn *rc, const char *fmt, ...)
{
	char why[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	redisconn_settle(rc);
	log_at(log_limit_level(&rc->rc_failing, LOG_WARNING, clock_ms()),
	    "redis: %s", why);
}

/* A failure not worth a warning of its own: what follows is debug. */
static void
redisconn_failing(struct redisconn *rc)
{
	(void)log_limit_pass(&rc->rc_failing, clock_ms());
}

/* To IDLE, and the next attempt: at once, or after the pause. */
static void
redisconn_schedule_retry(struct redisconn *rc)
{
	if (rc->rc_state == RC_CLOSED)
		return;
	rc->rc_state = RC_IDLE;
	timer_arm_ms(rc->rc_retry_ev, redispeer_at_once(rc->rc_peer) ? 0 :
	    backoff_next(&rc->rc_backoff));
}

/* The connection is gone (rc_ac is NULL): tell the queue, try again. */
static void
redisconn_lost(struct redisconn *rc)
{
	redispeer_down(rc->rc_peer);
	rc->rc_down(rc->rc_arg);
	redisconn_schedule_retry(rc);
}

/* Free the connection ourselves.  Not inside a hiredis callback of it. */
static void
redisconn_close(struct redisconn *rc)
{
	redisAsyncContext *ac = rc->rc_ac;

	rc->rc_ac = NULL;
	event_del(rc->rc_deadline_ev);
	if (ac)
		redisAsyncFree(ac);     /* runs the pending callbacks with NULL */
	redisconn_lost(rc);
}

/*
 * Stop whatever is under way, and stay IDLE: a lookup is cancelled, a
 * connection closed (its commands get NULL, then down is called), a retry
 * or a sentinel's question forgotten.  Not inside a hiredis callback of
 * the connection.
 */
static void
redisconn_abandon(struct redisconn *rc)
{
	struct evdns_getaddrinfo_request *req = rc->rc_dnsreq;
	redisAsyncContext *ac = rc->rc_ac;

	rc->rc_dnsreq = NULL;
	rc->rc_ac = NULL;
	rc->rc_state = RC_IDLE;
	event_del(rc->rc_deadline_ev);
	event_del(rc->rc_retry_ev);
	if (req != NULL)
		evdns_getaddrinfo_cancel(req);
	redispeer_down(rc->rc_peer);
	if (ac != NULL) {
		redisAsyncFree(ac);
		rc->rc_down(rc->rc_arg);
	}
}

/* The primary is at host:port: go there now. */
static void
redisconn_goto(struct redisconn *rc, const char *host, int port)
{
	if (host != rc->rc_host)
		snprintf(rc->rc_host, sizeof(rc->rc_host), "%s", host);
	rc->rc_port = port;
	redisconn_resolve(rc);
}

static void
redisconn_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	redisconn_connect(arg);
}

static void
redisconn_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct redisconn *rc = arg;

	(void)fd;
	(void)what;
	if (rc->rc_state == RC_RESOLVING && rc->rc_dnsreq) {
		struct evdns_getaddrinfo_request *req = rc->rc_dnsreq;

		rc->rc_dnsreq = NULL;
		evdns_getaddrinfo_cancel(req);
		redisconn_failed(rc, "cannot resolve %s:%d: timed out",
		    rc->rc_host, rc->rc_port);
		redisconn_schedule_retry(rc);
	} else if (rc->rc_state == RC_CONNECTING ||
	    rc->rc_state == RC_CHECKING) {
		redisconn_failed(rc, "cannot connect to %s: timed out%s",
		    redisconn_where(rc), rc->rc_setup == 0 ? "" :
		    rc->rc_ssl != NULL ? " (in the TLS handshake, or no "
		    "answer to AUTH, SELECT or PING)" :
		    " (no answer to AUTH, SELECT, ROLE or CLUSTER SLOTS)");
		redisconn_close(rc);
	}
}

/* Connected, and every setup reply in: the connection is READY. */
static void
redisconn_up(struct redisconn *rc)
{
	int checked = rc->rc_state == RC_CHECKING;

	event_del(rc->rc_deadline_ev);
	rc->rc_state = RC_READY;
	backoff_reset(&rc->rc_backoff);
	redisconn_settle(rc);
	if (rc->rc_connected_before)
		METRICS_ADD(mw_redis_reconnects, 1);
	rc->rc_connected_before = 1;
	log_info("redis: connected to %s%s%s", redisconn_where(rc),
	    rc->rc_ssl != NULL ? " over TLS" : "", redispeer_why(rc->rc_peer));
	log_limit_reset(&rc->rc_failing);
	rc->rc_refused = 0;
	redispeer_up(rc->rc_peer, rc->rc_host, rc->rc_port);
	/* The checks passed: what waits may go. */
	if (checked && rc->rc_open != NULL)
		rc->rc_open(rc->rc_arg);
}

/* One more setup reply in: the last one makes the connection READY. */
static void
redisconn_setup_done(struct redisconn *rc, const redisAsyncContext *ac)
{
	if (--rc->rc_setup == 0 && (ac->c.flags & REDIS_CONNECTED))
		redisconn_up(rc);
}

/* The commands that set a new connection up, for redisconn_setup_reply(). */
enum redisconn_setup {
	RS_AUTH,
	RS_SELECT,
	RS_PING         /* over TLS, when neither is due (see the top) */
};

/*
 * The reply to a setup command: the last of them makes the connection
 * ready; an error makes it useless, and says why in the log.
 */
static void
redisconn_setup_reply(redisAsyncContext *ac, const redisReply *reply,
    enum redisconn_setup cmd)
{
	struct redisconn *rc = ac->data;
	const struct conf *cf;
	char what[300];

	if (reply == NULL || rc == NULL || rc->rc_ac != ac || rc->rc_setup == 0)
		return;
	cf = rc->rc_cf;
	if (reply->type != REDIS_REPLY_ERROR) {
		redisconn_setup_done(rc, ac);
		return;
	}
	rc->rc_setup = 0;       /* never ready: what else comes is moot */
	/* After a lost connection this is news: a warning too, once. */
	if (!rc->rc_refused)
		log_limit_reset(&rc->rc_failing);
	rc->rc_refused = 1;
	if (cmd == RS_AUTH)
		snprintf(what, sizeof(what), "AUTH as user '%.200s'",
		    cf->cf_redis.username[0] ? cf->cf_redis.username :
		    "default");
	else if (cmd == RS_SELECT)
		snprintf(what, sizeof(what), "SELECT %d", cf->cf_redis.db);
	else
		snprintf(what, sizeof(what), "PING");
	redisconn_failed(rc, "connection setup failed: %s at %s: %s", what,
	    redisconn_where(rc), reply->str);
	/* Inside a callback hiredis allows only this way out. */
	redisAsyncDisconnect(ac);
}

static void
redisconn_on_auth_reply(redisAsyncContext *ac, void *r, void *priv)
{
	(void)priv;
	redisconn_setup_reply(ac, r, RS_AUTH);
}

static void
redisconn_on_select_reply(redisAsyncContext *ac, void *r, void *priv)
{
	(void)priv;
	redisconn_setup_reply(ac, r, RS_SELECT);
}

static void
redisconn_on_ping_reply(redisAsyncContext *ac, void *r, void *priv)
{
	(void)priv;
	redisconn_setup_reply(ac, r, RS_PING);
}

/*
 * The reply to the peer's check (ROLE, CLUSTER SLOTS): READY if it
 * passes; else closed once the replies due on it are in (commands queued
 * behind get MOVED), to go where it names at once, or to try again after
 * a pause.
 */
static void
redisconn_on_check_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct redisconn *rc = ac->data;
	redisReply *reply = r;
	char why[400];

	(void)priv;
	if (reply == NULL || rc == NULL || rc->rc_ac != ac || rc->rc_setup == 0)
		return;
	switch (redispeer_checked(rc->rc_peer, reply, rc->rc_host, rc->rc_ip,
	    rc->rc_port, why, sizeof(why))) {
	case REDISPEER_PASS:
		redisconn_setup_done(rc, ac);
		return;
	case REDISPEER_ELSEWHERE:
		/* While the node named cannot be reached: once, then debug. */
		log_at(rc->rc_failing.ll_said ? LOG_DEBUG : LOG_INFO,
		    "redis: %s %s", redisconn_where(rc), why);
		break;
	case REDISPEER_REJECT:
		log_warnx("redis: %s", why);
		break;
	case REDISPEER_FAIL:
		redisconn_failed(rc, "%s: %s", redisconn_where(rc), why);
		break;
	}
	rc->rc_setup = 0;
	redisAsyncDisconnect(ac);
}

static void
redisconn_on_connected(const redisAsyncContext *ac, int status)
{
	struct redisconn *rc = ac->data;
	char why[300];

	if (rc == NULL || rc->rc_ac != ac)
		return;
	event_del(rc->rc_deadline_ev);
	if (status != REDIS_OK) {
		redisconn_failed(rc, "cannot connect to %s: %s",
		    redisconn_where(rc), redisconn_why(rc, ac, why,
		    sizeof(why)));
		/*
		 * hiredis frees it after we return, failing what was queued;
		 * nothing was ever answered on it, so there is no down to report.
		 */
		rc->rc_ac = NULL;
		redisconn_schedule_retry(rc);
		return;
	}
	if (rc->rc_setup == 0)
		redisconn_up(rc);
	else    /* AUTH and SELECT get timeout_ms too */
		timer_arm_ms(rc->rc_deadline_ev, rc->rc_cf->cf_redis.timeout_ms);
}

static void
redisconn_on_disconnected(const redisAsyncContext *ac, int status)
{
	struct redisconn *rc = ac->data;
	char why[300];

	if (rc == NULL || rc->rc_ac != ac)
		return;         /* we dropped it ourselves */
	rc->rc_ac = NULL;
	if (status != REDIS_OK)
		redisconn_failed(rc, "%s %s: %s", rc->rc_state == RC_READY ?
		    "lost connection to" : "cannot connect to",
		    redisconn_where(rc), redisconn_why(rc, ac, why,
		    sizeof(why)));
	else
		redisconn_failing(rc);
	redisconn_lost(rc);
}

/* Queue AUTH, SELECT, the TLS PING and the peer's check on a new ac. */
static void
redisconn_queue_setup(struct redisconn *rc, redisAsyncContext *ac)
{
	const struct conf *cf = rc->rc_cf;
	int checking;

	rc->rc_setup = redisio_auth(ac, cf->cf_redis.username,
	    cf->cf_redis.password, redisconn_on_auth_reply, rc);
	if (cf->cf_redis.db != 0)
		rc->rc_setup += redisAsyncCommand(ac, redisconn_on_select_reply,
		    rc, "SELECT %d", cf->cf_redis.db) == REDIS_OK;
	if (rc->rc_ssl != NULL && rc->rc_setup == 0)
		rc->rc_setup += redisAsyncCommand(ac, redisconn_on_ping_reply,
		    rc, "PING") == REDIS_OK;
	rc->rc_setup += redispeer_check(rc->rc_peer, ac,
	    redisconn_on_check_reply, rc, &checking);
	rc->rc_state = checking ? RC_CHECKING : RC_CONNECTING;
}

/*
 * Open the connection to ip, or to the socket for NULL, and queue the
 * setup commands.
 */
static void
redisconn_open(struct redisconn *rc, const char *ip)
{
	const struct conf *cf = rc->rc_cf;
	redisAsyncContext *ac;
	char why[300] = "";

	ac = redisio_connect(rc->rc_base, ip, rc->rc_port, cf->cf_redis.socket,
	    why, sizeof(why));
	rc->rc_ssl = NULL;
	if (ac != NULL && cf->cf_redis.tls_ctx != NULL)
		rc->rc_ssl = redistls_start(cf->cf_redis.tls_ctx, ac,
		    rc->rc_host, why, sizeof(why));
	if (ac == NULL || why[0]) {
		redisconn_failed(rc, "cannot connect to %s: %s",
		    redisconn_where(rc), why);
		if (ac)
			redisAsyncFree(ac);
		redisconn_schedule_retry(rc);
		return;
	}
	ac->data = rc;
	snprintf(rc->rc_ip, sizeof(rc->rc_ip), "%s", ip != NULL ? ip : "");
	redisAsyncSetConnectCallback(ac, redisconn_on_connected);
	redisAsyncSetDisconnectCallback(ac, redisconn_on_disconnected);
	rc->rc_ac = ac;
	redisconn_queue_setup(rc, ac);
	timer_arm_ms(rc->rc_deadline_ev, cf->cf_redis.timeout_ms);
	redispeer_opened(rc->rc_peer);
	if (rc->rc_state == RC_CONNECTING && rc->rc_open != NULL)
		rc->rc_open(rc->rc_arg);
}

static void
redisconn_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct redisconn *rc = arg;
	char ip[INET6_ADDRSTRLEN];
	int found;

	if (result == EVUTIL_EAI_CANCEL)
		return;         /* timed out or closing; already handled */
	rc->rc_dnsreq = NULL;
	found = redisio_resolved(result, res, ip, sizeof(ip)) == 0;
	if (rc->rc_state != RC_RESOLVING)
		return;
	event_del(rc->rc_deadline_ev);
	if (!found) {
		redisconn_failed(rc, "cannot resolve %s:%d: %s", rc->rc_host,
		    rc->rc_port, evutil_gai_strerror(result));
		redisconn_schedule_retry(rc);
		return;
	}
	redisconn_open(rc, ip);
}

static void
redisconn_resolve(struct redisconn *rc)
{
	struct evdns_getaddrinfo_request *req;

	if (rc->rc_state == RC_CLOSED)
		return;
	rc->rc_state = RC_RESOLVING;
	timer_arm_ms(rc->rc_deadline_ev, rc->rc_cf->cf_redis.timeout_ms);
	/* May call redisconn_on_resolved() before it returns (numeric hosts). */
	req = redisio_lookup(rc->rc_dns, rc->rc_host, redisconn_on_resolved,
	    rc);
	if (req && rc->rc_state == RC_RESOLVING)
		rc->rc_dnsreq = req;
}

/* The peer's later answer (the sentinels'). */
static void
redisconn_on_found(void *arg, const char *host, int port, const char *why)
{
	struct redisconn *rc = arg;

	if (rc->rc_state != RC_LOCATING)
		return;
	if (host == NULL) {
		redisconn_failed(rc, "%s", why);
		redisconn_schedule_retry(rc);
		return;
	}
	if (strcmp(rc->rc_host, host) != 0 || rc->rc_port != port)
		log_info("redis: the sentinels say the primary of '%s' is "
		    "%s:%d", rc->rc_cf->cf_redis.master_name, host, port);
	redisconn_goto(rc, host, port);
}

/*
 * The sentinels name host:port as the primary, or (host NULL) are about
 * to name a new one: leave the one we have or are going to, unless it is
 * that one.  Called from the sentinels' connections, never this one's.
 */
static void
redisconn_on_moved(void *arg, const char *host, int port)
{
	struct redisconn *rc = arg;
	const char *name = rc->rc_cf->cf_redis.master_name;
	int going = rc->rc_state == RC_RESOLVING || redisconn_open_state(rc);

	if (rc->rc_state == RC_CLOSED)
		return;
	if (host != NULL && going && strcmp(rc->rc_host, host) == 0 &&
	    rc->rc_port == port)
		return;
	if (host == NULL && going)
		log_warnx("redis: the sentinels are promoting a replica of "
		    "'%s'; leaving %s:%d until they name it", name,
		    rc->rc_host, rc->rc_port);
	else if (host == NULL)
		log_warnx("redis: the sentinels are promoting a replica of "
		    "'%s'; waiting until they name it", name);
	else if (going)
		log_warnx("redis: the sentinels moved the primary of '%s' to "
		    "%s:%d; leaving %s:%d", name, host, port, rc->rc_host,
		    rc->rc_port);
	else
		log_warnx("redis: the sentinels moved the primary of '%s' to "
		    "%s:%d", name, host, port);
	redisconn_abandon(rc);
	redisconn_failing(rc);
	if (host == NULL)
		timer_arm_ms(rc->rc_retry_ev, REDISCONN_FAILOVER_MS);
	else
		redisconn_goto(rc, host, port);
}

/* IDLE: the next attempt, where the peer says. */
static void
redisconn_connect(struct redisconn *rc)
{
	const char *host;
	int port;

	if (rc->rc_state == RC_CLOSED)
		return;
	rc->rc_state = RC_LOCATING;
	if (redispeer_get(rc->rc_peer, &host, &port) == REDISPEER_LATER)
		return;
	if (rc->rc_cf->cf_redis.socket[0])
		redisconn_open(rc, NULL);
	else
		redisconn_goto(rc, host, port);
}

struct redisconn *
redisconn_new(struct event_base *base, const struct conf *cf,
    redisconn_down_cb *down, void *arg)
{
	struct redisconn *rc = calloc(1, sizeof(*rc));

	if (rc == NULL)
		return NULL;
	rc->rc_base = base;
	rc->rc_cf = cf;
	rc->rc_state = RC_IDLE;
	backoff_init(&rc->rc_backoff, REDISCONN_BACKOFF_MIN_MS,
	    REDISCONN_BACKOFF_MAX_MS);
	log_limit_init(&rc->rc_failing, 0);
	rc->rc_down = down;
	rc->rc_arg = arg;
	snprintf(rc->rc_host, sizeof(rc->rc_host), "%s", cf->cf_redis.host);
	if (cf->cf_redis.nsentinels > 0)
		snprintf(rc->rc_host, sizeof(rc->rc_host), "(%s)",
		    cf->cf_redis.master_name);
	rc->rc_port = cf->cf_redis.port;
	rc->rc_dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (rc->rc_dns != NULL)
		rc->rc_peer = redispeer_new(base, rc->rc_dns, cf,
		    redisconn_on_found, redisconn_on_moved, rc);
	rc->rc_retry_ev = evtimer_new(base, redisconn_on_retry, rc);
	rc->rc_deadline_ev = evtimer_new(base, redisconn_on_deadline, rc);
	if (rc->rc_dns == NULL || rc->rc_peer == NULL ||
	    rc->rc_retry_ev == NULL || rc->rc_deadline_ev == NULL) {
		redisconn_free(rc);
		return NULL;
	}
	return rc;
}

void
redisconn_start(struct redisconn *rc, redisconn_settled_cb *settled,
    void *arg)
{
	rc->rc_settled = settled;
	rc->rc_settled_arg = arg;
	redisconn_connect(rc);
}

int
redisconn_send(struct redisconn *rc, const char *cmd, size_t len,
    redisCallbackFn *fn, void *priv)
{
	if (rc->rc_ac == NULL || !redisconn_open_state(rc))
		return -1;
	if (redisAsyncFormattedCommand(rc->rc_ac, fn, priv, cmd, len) !=
	    REDIS_OK)
		return -1;      /* disconnecting */
	return 0;
}

void
redisconn_drop(struct redisconn *rc)
{
	struct linger lg = { 1, 0 };

	if (rc->rc_ac == NULL)
		return;
	/*
	 * Reset, not close: the commands still in the socket's send queue
	 * are answered 503 now, and after a close() the kernel would go on
	 * sending them, so Redis would count them when the network lets it
	 * (seconds after a partition heals).  A reset discards them.
	 */
	if (rc->rc_ac->c.fd != -1 && setsockopt(rc->rc_ac->c.fd, SOL_SOCKET,
	    SO_LINGER, &lg, sizeof(lg)) == -1)
		log_warn("redis: setsockopt SO_LINGER");
	redisconn_failing(rc);
	redisconn_close(rc);
}

void
redisconn_disconnect(struct redisconn *rc)
{
	if (rc->rc_ac != NULL)
		redisAsyncDisconnect(rc->rc_ac);
}

enum redisconn_sendable
redisconn_sendable(const struct redisconn *rc)
{
	/* CHECKING without rc_ac: down is under way, nothing is held. */
	if (redispeer_redirecting(rc->rc_peer) ||
	    (rc->rc_state == RC_CHECKING && rc->rc_ac != NULL))
		return REDISCONN_HOLD;
	if (rc->rc_ac != NULL &&
	    !(rc->rc_ac->c.flags & REDIS_DISCONNECTING) &&
	    redisconn_open_state(rc))
		return REDISCONN_SEND;
	return REDISCONN_FAIL;
}

int
redisconn_ready(const struct redisconn *rc)
{
	return rc->rc_state == RC_READY;
}

void
redisconn_free(struct redisconn *rc)
{
	redisAsyncContext *ac;

	if (rc == NULL)
		return;
	rc->rc_state = RC_CLOSED;
	if (rc->rc_dnsreq) {
		struct evdns_getaddrinfo_request *req = rc->rc_dnsreq;

		rc->rc_dnsreq = NULL;
		evdns_getaddrinfo_cancel(req);
	}
	redispeer_free(rc->rc_peer);
	rc->rc_peer = NULL;
	ac = rc->rc_ac;
	rc->rc_ac = NULL;
	if (ac)
		redisAsyncFree(ac);
	if (rc->rc_retry_ev)
		event_free(rc->rc_retry_ev);
	if (rc->rc_deadline_ev)
		event_free(rc->rc_deadline_ev);
	if (rc->rc_dns)
		evdns_base_free(rc->rc_dns, 0);
	free(rc);
}

void
redisconn_set_open_cb(struct redisconn *rc, redisconn_open_cb *open)
{
	rc->rc_open = open;
}

void
redisconn_redirect(struct redisconn *rc, const char *host, int port,
    int ask)
{
	if (rc->rc_state == RC_CLOSED ||
	    redispeer_redirect(rc->rc_peer, host, port, ask) == -1)
		return;
	if (rc->rc_ac != NULL) {
		/* Replies due come first (MOVED or ASK too), then down. */
		redisAsyncDisconnect(rc->rc_ac);
		return;
	}
	if (rc->rc_state == RC_IDLE) {
		event_del(rc->rc_retry_ev);
		redisconn_schedule_retry(rc);
	}
}

int
redisconn_asking(const struct redisconn *rc)
{
	return redispeer_asking(rc->rc_peer);
}
