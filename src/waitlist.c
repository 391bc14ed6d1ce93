/*
 * waitlist.c - visits counted in Redis, held until a WAIT says enough
 * replicas have them (min_replicas_acked).
 *
 * counter.c sends one WAIT at the end of a loop turn behind the turn's
 * INCRBY; the visits it numbers are held here meanwhile, oldest first,
 * each with the time its INCRBY was first sent, since its client's wait
 * ends timeout_ms after that whether or not a WAIT came back.  This file
 * only keeps them and answers them when told: counter.c decides when.
 *
 * Calls vec.c and metrics.h; called by counter.c (which it does not
 * include: its callbacks are waitlist_cb, the type of counter_cb).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "waitlist.h"

/* A visit counted, waiting for WAIT to say replicas have it. */
struct waitlist_visit {
	waitlist_cb *wv_cb;
	void *wv_arg;
	long long wv_value;
	uint64_t wv_sent_us;            /* its INCRBY's first sending */
};

void
waitlist_init(struct waitlist *wl)
{
	vec_init(&wl->wl_held, sizeof(struct waitlist_visit), 64);
}

int
waitlist_add(struct waitlist *wl, waitlist_cb *cb, void *arg,
    long long value, uint64_t sent_us)
{
	struct waitlist_visit *v = vec_push(&wl->wl_held);

	if (v == NULL)
		return -1;
	v->wv_cb = cb;
	v->wv_arg = arg;
	v->wv_value = value;
	v->wv_sent_us = sent_us;
	return 0;
}

size_t
waitlist_count(const struct waitlist *wl)
{
	return wl->wl_held.v_n;
}

uint64_t
waitlist_oldest(const struct waitlist *wl)
{
	const struct waitlist_visit *v;

	if (wl->wl_held.v_n == 0)
		return UINT64_MAX;
	v = vec_at(&wl->wl_held, 0);
	return v->wv_sent_us;
}

size_t
waitlist_late(const struct waitlist *wl, uint64_t now_us,
    uint64_t timeout_us)
{
	const struct waitlist_visit *v;
	size_t n;

	for (n = 0; n < wl->wl_held.v_n; n++) {
		v = vec_at(&wl->wl_held, n);
		if (now_us < v->wv_sent_us + timeout_us)
			break;
	}
	return n;
}

void
waitlist_release(struct waitlist *wl, int ok)
{
	size_t i, n = wl->wl_held.v_n;

	for (i = 0; i < n; i++) {
		struct waitlist_visit v = *(struct waitlist_visit *)
		    vec_at(&wl->wl_held, i);

		if (!ok)
			METRICS_ADD(mw_redis_errors, 1);
		v.wv_cb(v.wv_arg, ok, v.wv_value);
	}
	vec_shift(&wl->wl_held, n);
}

void
waitlist_fail_oldest(struct waitlist *wl, size_t n)
{
	struct waitlist_visit *late;
	size_t i;

	if (n == 0 || (late = malloc(n * sizeof(*late))) == NULL)
		return;
	/* Callbacks may hold new visits: take these off the list first. */
	memcpy(late, vec_at(&wl->wl_held, 0), n * sizeof(*late));
	vec_shift(&wl->wl_held, n);
	for (i = 0; i < n; i++) {
		METRICS_ADD(mw_redis_errors, 1);
		late[i].wv_cb(late[i].wv_arg, 0, 0);
	}
	free(late);
}

void
waitlist_free(struct waitlist *wl)
{
	vec_free(&wl->wl_held);
}
