/*
 * route.h - what each path answers.
 */
#ifndef HITCOUNTD_ROUTE_H
#define HITCOUNTD_ROUTE_H

struct conf;
struct conn_set;
struct counter;
struct route_table;

/*
 * The routes of a worker, from cf (which must outlive them): the counter
 * page (counting with counter), /healthz, readyz_path and metrics_path.
 * has_admin says whether there are metrics_listen sockets, which then
 * alone serve metrics_path.  Returns NULL on allocation failure.
 */
struct route_table *route_table_new(const struct conf *cf,
    struct counter *counter, int has_admin);

void route_table_free(struct route_table *rt);

/*
 * From now on the readiness probe answers 503 while every other path is
 * served as before: the shutdown_delay before a graceful stop.
 */
void route_set_draining(struct route_table *rt);

/*
 * Make rt answer the requests of cs's connections (conn_set_handler()):
 * each with conn_respond(), now or once Redis has answered (conn_wait()).
 */
void route_install(struct route_table *rt, struct conn_set *cs);

#endif
