/*
 * counter.h - the visit counter in Redis, as seen by one worker.
 */
#ifndef HITCOUNTD_COUNTER_H
#define HITCOUNTD_COUNTER_H

#include <stddef.h>

struct event_base;
struct conf;
struct counter;

/*
 * Called once per counter_incr()/counter_get() that returned 0, from the
 * event loop: ok is 1 with the counter's value (after the increment for
 * INCR; 0 for a missing key on GET), or 0 when Redis could not answer
 * (down, timed out, an error reply).
 */
typedef void counter_cb(void *arg, int ok, long long value);

/* See counter_new(). */
typedef void counter_settled_cb(void *arg);

/*
 * Create the worker's counter on base and start connecting to Redis as
 * cf->cf_redis says (resolving the host name without blocking).  cf must
 * outlive the counter.  settled, if not NULL, is called once, from the
 * event loop or before counter_new() returns, when the first attempt to
 * reach Redis has ended: connected, or failed (refused, unresolvable, or
 * after connect_timeout_ms).  Until then commands would fail at once for
 * want of a connection, so a new worker waits for it before it takes
 * clients.  Returns NULL on allocation failure.
 */
struct counter *counter_new(struct event_base *base, const struct conf *cf,
    counter_settled_cb *settled, void *arg);

/*
 * Count a visit: at the end of the loop turn, one INCRBY key k for the k
 * visits of the turn goes out, pipelined behind whatever is in flight,
 * and each visit gets its own number of the k.  Returns 0 when the visit
 * was queued (cb will be called exactly once, from the loop), or -1 when
 * Redis is not available right now (cb is not called; answer 503 at once).
 */
int counter_incr(struct counter *c, counter_cb *cb, void *arg);

/*
 * GET key: the value without counting a visit; sent at once, behind the
 * visits queued before it.  Returns as counter_incr().
 */
int counter_get(struct counter *c, counter_cb *cb, void *arg);

/* 1 when the Redis connection is established, else 0. */
int counter_ready(const struct counter *c);

/* Commands in flight or held back, and a batch of visits being gathered. */
size_t counter_inflight(const struct counter *c);

/*
 * Close the Redis connection and free c.  Every command still in flight
 * gets its callback with ok = 0 first.
 */
void counter_free(struct counter *c);

#endif
