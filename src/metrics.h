/*
 * metrics.h - counters shared by the master and the workers, rendered in
 * the Prometheus text format.
 */
#ifndef HITCOUNTD_METRICS_H
#define HITCOUNTD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http.h"

/*
 * Answers are counted by their index in http_statuses (http.c's table),
 * those its hst_series leaves out under this one: "other".
 */
#define METRICS_CODE_OTHER HTTP_STATUS_N

/* Upper bounds of the Redis round-trip histogram, in microseconds. */
#define METRICS_RTT_BOUNDS { 100, 250, 500, 1000, 2500, 5000, 10000, \
	25000, 50000, 100000, 250000, 500000, 1000000 }
#define METRICS_RTT_N 14        /* the bounds above and +Inf */

/* One worker's counters.  Only that worker writes them. */
struct metrics_worker {
	uint64_t mw_requests[HTTP_STATUS_N + 1];
	uint64_t mw_visits;
	uint64_t mw_redis_errors;
	uint64_t mw_redis_reconnects;
	uint64_t mw_redis_moved;                /* Redis Cluster redirections */
	uint64_t mw_redis_ask;
	uint64_t mw_rtt_bucket[METRICS_RTT_N];  /* not cumulative */
	uint64_t mw_rtt_sum_us;
	uint64_t mw_rtt_count;
	uint64_t mw_conns_open;                 /* a gauge */
	uint64_t mw_accepting;                  /* 1: taking connections, 2: paused */
	uint64_t mw_wake;                       /* a sibling asks: end the pause */
	uint64_t mw_accept_wakeups;             /* woken for the listeners */
	uint64_t mw_accept_empty;               /* ... and accepted nothing */
};

/* The calling worker's counters (NULL in the master and in tests). */
extern struct metrics_worker *metrics_self;

/*
 * Bump a counter of this worker.  A single writer needs no atomic
 * read-modify-write; the relaxed store keeps readers in other processes
 * from seeing a torn value.
 */
#define METRICS_ADD(field, n) do {                                      \
	if (metrics_self != NULL)                                       \
		__atomic_store_n(&metrics_self->field,                  \
		    metrics_self->field + (n), __ATOMIC_RELAXED);       \
} while (0)

/*
 * Create the shared region (master, before the first fork).  It lives as
 * long as the master, so counts survive reloads.  Returns 0 or -1.
 */
int metrics_init(void);

/* Reserve a zeroed slot for a worker of gen about to be forked: index or -1. */
int metrics_slot_reserve(int gen);

/* Record who holds slot (master, after fork), in which generation. */
void metrics_slot_attach(int slot, pid_t pid, int gen);

/* In the forked worker: count into slot from now on, as this process. */
void metrics_slot_use(int slot);

/*
 * The worker of slot is gone (master, after reaping): its counters are
 * kept in the running totals and the slot is freed.
 */
void metrics_slot_release(int slot);

/*
 * The fewest connections open in another worker of the calling worker's
 * generation that takes connections, or UINT64_MAX if there is none.
 */
uint64_t metrics_sibling_fewest_conns(void);

/* Ask every paused sibling (mw_accepting 2) to end its pause. */
void metrics_sibling_wake(void);

/* Master-side events. */
void metrics_set_generation(int gen);
void metrics_reload(int ok);
void metrics_worker_restart(void);

/* Count one answer with the given HTTP status. */
void metrics_count_status(int status);

/* Count one Redis round trip of us microseconds. */
void metrics_observe_rtt(uint64_t us);

/*
 * Write every metric in the Prometheus text exposition format 0.0.4 into
 * buf.  Returns the length, or 0 if cap is too small.
 */
size_t metrics_render(char *buf, size_t cap);

/* The Content-Type of metrics_render()'s output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
