/*
 * waitlist.h - visits counted in Redis, held until a WAIT says enough
 * replicas have them (min_replicas_acked).
 */
#ifndef HITCOUNTD_WAITLIST_H
#define HITCOUNTD_WAITLIST_H

#include <stddef.h>
#include <stdint.h>

#include "vec.h"

/*
 * A held visit's answer: ok 1 with its number, or 0 (the same type as
 * counter.h's counter_cb, which it is, without including counter.h).
 */
typedef void waitlist_cb(void *arg, int ok, long long value);

/* The held visits, in the order of their INCRBY's first sending. */
struct waitlist {
	struct vec wl_held;             /* of struct waitlist_visit */
};

/* An empty list; nothing is allocated yet. */
void waitlist_init(struct waitlist *wl);

/*
 * Hold a visit numbered value, whose INCRBY was first sent at sent_us,
 * for cb(arg, ...).  Returns 0, or -1 when out of memory (nothing held:
 * the caller answers it itself).
 */
int waitlist_add(struct waitlist *wl, waitlist_cb *cb, void *arg,
    long long value, uint64_t sent_us);

/* How many visits are held. */
size_t waitlist_count(const struct waitlist *wl);

/* When the oldest held visit was first sent, or UINT64_MAX for none. */
uint64_t waitlist_oldest(const struct waitlist *wl);

/*
 * How many of the oldest visits were first sent timeout_us or more
 * before now_us (their wait is over).
 */
size_t waitlist_late(const struct waitlist *wl, uint64_t now_us,
    uint64_t timeout_us);

/*
 * Answer every visit held now: cb(arg, ok, value), confirmed (ok 1) or
 * not (0, counted in mw_redis_errors).  Visits the callbacks add wait for
 * the next call.
 */
void waitlist_release(struct waitlist *wl, int ok);

/*
 * Fail the n oldest visits (n <= waitlist_count()): cb(arg, 0, 0), each
 * counted in mw_redis_errors, once they are off the list.
 */
void waitlist_fail_oldest(struct waitlist *wl, size_t n);

/* Free the list's room (the visits still held are not answered). */
void waitlist_free(struct waitlist *wl);

#endif
