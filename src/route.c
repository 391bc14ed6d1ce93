/*
 * route.c - what each path answers: the counter page, /healthz, the
 * readiness probe and /metrics.
 *
 * The routes are data (path, allowed methods, handler), built once when
 * the worker starts: one list for the public listeners and one for the
 * metrics_listen ones, so that which listener serves which path is
 * settled there and not per request.  A request is matched against its
 * list in order, checked against the route's methods (405 otherwise) and
 * handed to the handler, which answers through conn.c.  The counter page
 * is the one answer that waits: for Redis, through counter.c.  conn.c
 * calls route_dispatch() through the pointer route_install() gives it,
 * so that the lower layer never names this one.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "conn.h"
#include "counter.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "util.h"

#define ROUTE_METRICS_MAX       12288   /* the /metrics body */
#define ROUTE_MAX               4       /* routes on one kind of listener */

/* The bit of a method (enum http_method) in a route's ro_methods. */
#define ROUTE_M(m)      (1u << (m))
/*
 * What every route allows: what the Allow field of a 405 lists
 * (HTTP_F_ALLOW writes "Allow: GET, HEAD").
 */
#define ROUTE_GET_HEAD  (ROUTE_M(HTTP_GET) | ROUTE_M(HTTP_HEAD))

#define ROUTE_UNAVAILABLE       "Redis is unavailable\n"

typedef void route_handler(struct route_table *, struct conn *,
    const struct http_request *, int);

struct route {
	const char *ro_path;
	size_t ro_pathlen;
	unsigned ro_methods;            /* ROUTE_M() bits */
	route_handler *ro_handler;
};

struct route_list {
	struct route rl_route[ROUTE_MAX];
	size_t rl_n;
};

struct route_table {
	struct counter *rt_counter;
	int rt_readyz_redis;            /* readyz_redis: Redis down is unready */
	struct route_list rt_public;    /* on the listen addresses */
	struct route_list rt_admin;     /* on the metrics_listen ones */
	int rt_draining;                /* shutdown_delay: unready, serving */
	char rt_metrics[ROUTE_METRICS_MAX];     /* where /metrics is rendered */
};

/* Format the counter page into buf (64 bytes); returns its length. */
static size_t
route_counter_body(char *buf, int json, long long n)
{
	static const char page[] = "Page visited ", times[] = " times";
	static const char jsonp[] = "{\"visits\": ";
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
	return (size_t)(p - buf);
}

/* Redis has answered for the counter page c waits for. */
static void
route_on_counter(void *arg, int ok, long long value)
{
	struct conn *c = arg;
	int flags, json;
	char body[64];
	size_t len;

	if (conn_wake(c, &flags, &json) == -1)
		return;
	if (!ok) {
		conn_respond_text(c, 503, ROUTE_UNAVAILABLE,
		    (flags & ~HTTP_F_NOSTORE) | HTTP_F_RETRY);
	} else {
		/* HEAD: announce the length the next GET would have. */
		if (flags & HTTP_F_HEAD)
			value++;
		else
			METRICS_ADD(mw_visits, 1);
		len = route_counter_body(body, json, value);
		conn_respond(c, 200, json ? "application/json" :
		    "text/html; charset=utf-8", body, len, len, flags);
	}
	conn_resume(c);
}

/* The counter page: GET counts a visit, HEAD only reads the counter. */
static void
route_counter(struct route_table *rt, struct conn *c,
    const struct http_request *req, int flags)
{
	int rc;

	if (req->r_method == HTTP_HEAD)
		rc = counter_get(rt->rt_counter, route_on_counter, c);
	else
		rc = counter_incr(rt->rt_counter, route_on_counter, c);
	if (rc == 0)
		conn_wait(c, flags | HTTP_F_NOSTORE, req->r_json);
	else
		conn_respond_text(c, 503, ROUTE_UNAVAILABLE,
		    flags | HTTP_F_RETRY);
}

/* Liveness: the worker answers. */
static void
route_healthz(struct route_table *rt, struct conn *c,
    const struct http_request *req, int flags)
{
	(void)rt;
	(void)req;
	conn_respond_text(c, 200, "ok\n", flags);
}

/*
 * Readiness: the worker is not draining toward a stop and, unless
 * readyz_redis is off, Redis is connected.  Off, a Redis outage does not
 * empty a Kubernetes Service of every pod at once: clients keep getting
 * the counter's 503 with Retry-After rather than refused connections.
 */
static void
route_readyz(struct route_table *rt, struct conn *c,
    const struct http_request *req, int flags)
{
	(void)req;
	if (rt->rt_draining)
		conn_respond_text(c, 503, "Shutting down\n", flags);
	else if (!rt->rt_readyz_redis || counter_ready(rt->rt_counter))
		conn_respond_text(c, 200, "ready\n", flags);
	else
		conn_respond_text(c, 503, ROUTE_UNAVAILABLE,
		    flags | HTTP_F_RETRY);
}

static void
route_metrics(struct route_table *rt, struct conn *c,
    const struct http_request *req, int flags)
{
	size_t len;

	(void)req;
	len = metrics_render(rt->rt_metrics, sizeof(rt->rt_metrics));
	if (len == 0)
		conn_respond_text(c, 500, "Internal Server Error\n", flags);
	else
		conn_respond(c, 200, METRICS_CONTENT_TYPE, rt->rt_metrics,
		    len, len, flags);
}

/* Add a route to l; an empty path ("" in the configuration) is no route. */
static void
route_add(struct route_list *l, const char *path, unsigned methods,
    route_handler *handler)
{
	struct route *ro;

	if (path[0] == '\0' || l->rl_n == nitems(l->rl_route))
		return;
	ro = &l->rl_route[l->rl_n++];
	ro->ro_path = path;
	ro->ro_pathlen = strlen(path);
	ro->ro_methods = methods;
	ro->ro_handler = handler;
}

struct route_table *
route_table_new(const struct conf *cf, struct counter *counter,
    int has_admin)
{
	struct route_table *rt;

	rt = calloc(1, sizeof(*rt));
	if (rt == NULL) {
		log_warn("calloc");
		return NULL;
	}
	rt->rt_counter = counter;
	rt->rt_readyz_redis = cf->cf_readyz_redis;
	/* In the order they are tried: the first path that matches answers. */
	route_add(&rt->rt_public, "/", ROUTE_GET_HEAD, route_counter);
	route_add(&rt->rt_public, "/healthz", ROUTE_GET_HEAD, route_healthz);
	route_add(&rt->rt_public, cf->cf_readyz_path, ROUTE_GET_HEAD,
	    route_readyz);
	if (!has_admin)
		route_add(&rt->rt_public, cf->cf_metrics_path, ROUTE_GET_HEAD,
		    route_metrics);
	route_add(&rt->rt_admin, "/healthz", ROUTE_GET_HEAD, route_healthz);
	route_add(&rt->rt_admin, cf->cf_readyz_path, ROUTE_GET_HEAD,
	    route_readyz);
	route_add(&rt->rt_admin, cf->cf_metrics_path, ROUTE_GET_HEAD,
	    route_metrics);
	return rt;
}

void
route_set_draining(struct route_table *rt)
{
	rt->rt_draining = 1;
}

void
route_table_free(struct route_table *rt)
{
	free(rt);
}

/* The conn_handler: match req's path in the list of c's listener. */
static void
route_dispatch(void *arg, struct conn *c, const struct http_request *req,
    int flags, int admin)
{
	struct route_table *rt = arg;
	const struct route_list *l = admin ? &rt->rt_admin : &rt->rt_public;
	size_t i;

	if (req->r_method == HTTP_HEAD)
		flags |= HTTP_F_HEAD;
	for (i = 0; i < l->rl_n; i++) {
		const struct route *ro = &l->rl_route[i];

		if (ro->ro_pathlen != req->r_pathlen ||
		    memcmp(ro->ro_path, req->r_path, req->r_pathlen) != 0)
			continue;
		if (!(ro->ro_methods & ROUTE_M(req->r_method)))
			conn_respond_text(c, 405, "Method Not Allowed\n",
			    flags | HTTP_F_ALLOW);
		else
			ro->ro_handler(rt, c, req, flags);
		return;
	}
	conn_respond_text(c, 404, "Not Found\n", flags);
}

void
route_install(struct route_table *rt, struct conn_set *cs)
{
	conn_set_handler(cs, route_dispatch, rt);
}
