/*
 * metrics.c - the numbers behind GET /metrics.
 *
 * The master maps one shared anonymous region before it forks any worker.
 * Each worker gets a slot of its own and bumps its counters there with
 * plain stores: one writer per slot, so the hot path takes no lock and no
 * atomic read-modify-write.  Whichever worker answers /metrics reads all
 * slots and adds them up.  When a worker exits, the master folds its
 * slot into running totals before freeing it, so counters never go back
 * across reloads and restarts; a sequence number around the fold lets a
 * reader that raced with it simply read again.  What /metrics shows, and
 * in which order, is one table (metrics_families) walked by one loop.
 *
 * Calls clock.c, log.c and http.c's status table; the workers' files
 * (conn.c, route.c, counter.c, redisconn.c, waitlist.c, worker.c) count
 * into their slot, the master's (master.c, spawn.c, workertab.c) hand
 * slots out and fold them.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define METRICS_SLOTS 1024      /* two generations of 256 workers, and more */
#define METRICS_FOLD_WAIT_MS 100 /* a fold takes microseconds */

struct metrics_slot {
	pid_t ms_pid;           /* 0 free, -1 reserved, else the worker */
	int ms_gen;
	struct metrics_worker ms_w;
} __attribute__((aligned(64)));

struct metrics_shm {
	uint64_t m_seq;                 /* odd while the master folds a slot */
	uint64_t m_reloads_ok;
	uint64_t m_reloads_failed;
	uint64_t m_worker_restarts;
	int m_gen;
	struct metrics_worker m_retired;        /* workers that have exited */
	int m_nslots;                           /* slots ever reserved */
	struct metrics_slot m_slots[METRICS_SLOTS];
};

struct metrics_worker *metrics_self;
static struct metrics_shm *metrics_shm;
static int metrics_self_slot = -1;

static const uint64_t metrics_rtt_bounds[] = METRICS_RTT_BOUNDS;

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

int
metrics_init(void)
{
	void *p;

	p = mmap(NULL, sizeof(struct metrics_shm), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		log_warn("mmap");
		return -1;
	}
	metrics_shm = p;        /* zero-filled by the kernel */
	return 0;
}

int
metrics_slot_reserve(int gen)
{
	int i;

	if (metrics_shm == NULL)
		return -1;
	for (i = 0; i < METRICS_SLOTS; i++) {
		struct metrics_slot *s = &metrics_shm->m_slots[i];

		if (LOAD(s->ms_pid) == 0) {
			memset(&s->ms_w, 0, sizeof(s->ms_w));
			STORE(s->ms_gen, gen);
			STORE(s->ms_pid, -1);
			if (i >= LOAD(metrics_shm->m_nslots))
				STORE(metrics_shm->m_nslots, i + 1);
			return i;
		}
	}
	log_warnx("metrics: no free slot; this worker is not counted");
	return -1;
}

void
metrics_slot_attach(int slot, pid_t pid, int gen)
{
	if (metrics_shm == NULL || slot < 0)
		return;
	STORE(metrics_shm->m_slots[slot].ms_gen, gen);
	STORE(metrics_shm->m_slots[slot].ms_pid, pid);
}

void
metrics_slot_use(int slot)
{
	metrics_self = (metrics_shm && slot >= 0) ?
	    &metrics_shm->m_slots[slot].ms_w : NULL;
	metrics_self_slot = metrics_self ? slot : -1;
	/* The worker may serve before the master, back from fork(), says so. */
	if (metrics_self)
		STORE(metrics_shm->m_slots[slot].ms_pid, getpid());
}

/*
 * The calling worker's next sibling from slot *i on (a live worker of its
 * generation that takes connections, paused or not), or NULL at the end.
 */
static struct metrics_worker *
metrics_sibling_next(int *i)
{
	int n, gen;

	if (metrics_self_slot < 0)
		return NULL;
	gen = LOAD(metrics_shm->m_slots[metrics_self_slot].ms_gen);
	n = LOAD(metrics_shm->m_nslots);
	for (; *i < n; (*i)++) {
		struct metrics_slot *s = &metrics_shm->m_slots[*i];

		if (*i != metrics_self_slot && LOAD(s->ms_pid) > 0 &&
		    LOAD(s->ms_gen) == gen && LOAD(s->ms_w.mw_accepting) != 0) {
			(*i)++;
			return &s->ms_w;
		}
	}
	return NULL;
}

uint64_t
metrics_sibling_fewest_conns(void)
{
	uint64_t fewest = UINT64_MAX, open;
	struct metrics_worker *s;
	int i = 0;

	while ((s = metrics_sibling_next(&i)) != NULL)
		if ((open = LOAD(s->mw_conns_open)) < fewest)
			fewest = open;
	return fewest;
}

void
metrics_sibling_wake(void)
{
	struct metrics_worker *s;
	int i = 0;

	while ((s = metrics_sibling_next(&i)) != NULL)
		if (LOAD(s->mw_accepting) == 2)
			STORE(s->mw_wake, 1);
}

/* dst += src for every counter (not for the gauges). */
static void
metrics_add(struct metrics_worker *dst, const struct metrics_worker *src)
{
	int i;

	for (i = 0; i < HTTP_STATUS_N + 1; i++)
		dst->mw_requests[i] += LOAD(src->mw_requests[i]);
	dst->mw_visits += LOAD(src->mw_visits);
	dst->mw_redis_errors += LOAD(src->mw_redis_errors);
	dst->mw_redis_reconnects += LOAD(src->mw_redis_reconnects);
	dst->mw_redis_moved += LOAD(src->mw_redis_moved);
	dst->mw_redis_ask += LOAD(src->mw_redis_ask);
	for (i = 0; i < METRICS_RTT_N; i++)
		dst->mw_rtt_bucket[i] += LOAD(src->mw_rtt_bucket[i]);
	dst->mw_rtt_sum_us += LOAD(src->mw_rtt_sum_us);
	dst->mw_rtt_count += LOAD(src->mw_rtt_count);
	dst->mw_accept_wakeups += LOAD(src->mw_accept_wakeups);
	dst->mw_accept_empty += LOAD(src->mw_accept_empty);
}

void
metrics_slot_release(int slot)
{
	struct metrics_shm *m = metrics_shm;

	if (m == NULL || slot < 0)
		return;
	__atomic_add_fetch(&m->m_seq, 1, __ATOMIC_SEQ_CST);
	metrics_add(&m->m_retired, &m->m_slots[slot].ms_w);
	memset(&m->m_slots[slot].ms_w, 0, sizeof(m->m_slots[slot].ms_w));
	__atomic_add_fetch(&m->m_seq, 1, __ATOMIC_SEQ_CST);
	STORE(m->m_slots[slot].ms_pid, 0);
}

void
metrics_set_generation(int gen)
{
	if (metrics_shm)
		STORE(metrics_shm->m_gen, gen);
}

void
metrics_reload(int ok)
{
	if (metrics_shm == NULL)
		return;
	if (ok)
		STORE(metrics_shm->m_reloads_ok, metrics_shm->m_reloads_ok + 1);
	else
		STORE(metrics_shm->m_reloads_failed,
		    metrics_shm->m_reloads_failed + 1);
}

void
metrics_worker_restart(void)
{
	if (metrics_shm)
		STORE(metrics_shm->m_worker_restarts,
		    metrics_shm->m_worker_restarts + 1);
}

void
metrics_count_status(int status)
{
	int i;

	if (metrics_self == NULL)
		return;
	i = http_status_index(status);
	if (i < 0 || !http_statuses[i].hst_series)
		i = METRICS_CODE_OTHER;
	METRICS_ADD(mw_requests[i], 1);
}

void
metrics_observe_rtt(uint64_t us)
{
	int i;

	if (metrics_self == NULL)
		return;
	for (i = 0; i < METRICS_RTT_N - 1; i++)
		if (us <= metrics_rtt_bounds[i])
			break;
	METRICS_ADD(mw_rtt_bucket[i], 1);
	METRICS_ADD(mw_rtt_sum_us, us);
	METRICS_ADD(mw_rtt_count, 1);
}

/*
 * A consistent sum of every counter, and the gauges.  The master's fold is
 * a few stores, so a reader waits for it by spinning, but only so long: a
 * master that died in the middle of one leaves the sequence odd for good.
 * Returns 0, or -1 when no consistent view came within
 * METRICS_FOLD_WAIT_MS.
 */
static int
metrics_snapshot(struct metrics_worker *sum, int *workers)
{
	struct metrics_shm *m = metrics_shm;
	uint64_t seq, give_up = clock_coarse_ms() + METRICS_FOLD_WAIT_MS;
	unsigned spins = 0;
	int i, gen;

	do {
		while ((seq = __atomic_load_n(&m->m_seq, __ATOMIC_SEQ_CST)) & 1)
			if (++spins % 1024 == 0 && clock_coarse_ms() > give_up)
				return -1;
		memset(sum, 0, sizeof(*sum));
		*workers = 0;
		gen = LOAD(m->m_gen);
		metrics_add(sum, &m->m_retired);
		for (i = 0; i < METRICS_SLOTS; i++) {
			struct metrics_slot *s = &m->m_slots[i];
			pid_t pid = LOAD(s->ms_pid);

			if (pid == 0)
				continue;
			metrics_add(sum, &s->ms_w);
			sum->mw_conns_open += LOAD(s->ms_w.mw_conns_open);
			if (pid > 0 && LOAD(s->ms_gen) == gen)
				(*workers)++;
		}
	} while (__atomic_load_n(&m->m_seq, __ATOMIC_SEQ_CST) != seq);
	return 0;
}

struct metrics_out {
	char *o_buf;
	size_t o_cap, o_len;
	int o_full;
};

static void
metrics_printf(struct metrics_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
metrics_printf(struct metrics_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->o_full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->o_buf + o->o_len, o->o_cap - o->o_len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->o_cap - o->o_len)
		o->o_full = 1;
	else
		o->o_len += n;
}

/* Everything /metrics shows, gathered before the first line is written. */
struct metrics_view {
	struct metrics_worker mv_sum;   /* all workers, live and retired */
	uint64_t mv_workers;            /* of the current generation */
	uint64_t mv_reloads_ok;
	uint64_t mv_reloads_failed;
	uint64_t mv_worker_restarts;
	uint64_t mv_one;                /* build_info's constant */
};

/* One sample of a family: its labels ("" for none) and where in struct
 * metrics_view its value is. */
struct metrics_point {
	const char *mp_labels;
	size_t mp_off;
};

/*
 * One metric family: its HELP and TYPE lines, then either up to two
 * samples read from the view (a NULL mp_labels ends them), or, for the
 * families whose labels come from a table of their own (status codes,
 * histogram bounds), a function that writes the samples.
 */
struct metrics_family {
	const char *mf_name;
	const char *mf_type;
	const char *mf_help;
	void (*mf_samples)(struct metrics_out *, const char *,
	    const struct metrics_view *);
	struct metrics_point mf_points[2];
};

#define METRICS_AT(field)       offsetof(struct metrics_view, field)
#define METRICS_SUM(field)      METRICS_AT(mv_sum.field)

/* hitcountd_http_requests_total: one sample per status http.c counts. */
static void
metrics_samples_codes(struct metrics_out *o, const char *name,
    const struct metrics_view *v)
{
	size_t j;

	for (j = 0; j < HTTP_STATUS_N; j++)
		if (http_statuses[j].hst_series)
			metrics_printf(o, "%s{code=\"%d\"} %llu\n", name,
			    http_statuses[j].hst_code,
			    (unsigned long long)v->mv_sum.mw_requests[j]);
	metrics_printf(o, "%s{code=\"other\"} %llu\n", name,
	    (unsigned long long)v->mv_sum.mw_requests[METRICS_CODE_OTHER]);
}

/* The round-trip histogram: the buckets made cumulative, sum and count. */
static void
metrics_samples_rtt(struct metrics_out *o, const char *name,
    const struct metrics_view *v)
{
	uint64_t cum = 0;
	int i;

	for (i = 0; i < METRICS_RTT_N; i++) {
		cum += v->mv_sum.mw_rtt_bucket[i];
		if (i < METRICS_RTT_N - 1)
			metrics_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name,
			    metrics_rtt_bounds[i] / 1e6,
			    (unsigned long long)cum);
		else
			metrics_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n",
			    name, (unsigned long long)cum);
	}
	metrics_printf(o, "%s_sum %.6f\n", name,
	    v->mv_sum.mw_rtt_sum_us / 1e6);
	metrics_printf(o, "%s_count %llu\n", name,
	    (unsigned long long)v->mv_sum.mw_rtt_count);
}

/* What /metrics shows, in this order: a new metric is a new row. */
static const struct metrics_family metrics_families[] = {
	{ "hitcountd_http_requests_total", "counter",
	    "HTTP requests answered, by status code.",
	    metrics_samples_codes, { { NULL, 0 } } },
	{ "hitcountd_visits_total", "counter",
	    "Visits counted: GET / answered with the result of INCR.",
	    NULL, { { "", METRICS_SUM(mw_visits) } } },
	{ "hitcountd_redis_errors_total", "counter",
	    "Redis commands that failed: error reply, timeout or lost "
	    "connection.",
	    NULL, { { "", METRICS_SUM(mw_redis_errors) } } },
	{ "hitcountd_redis_reconnects_total", "counter",
	    "Redis connections established again after one was lost.",
	    NULL, { { "", METRICS_SUM(mw_redis_reconnects) } } },
	{ "hitcountd_redis_redirects_total", "counter",
	    "Redis Cluster redirections followed: MOVED (the key's slot has "
	    "a new owner) and ASK (the slot is migrating).",
	    NULL, { { "{kind=\"moved\"}", METRICS_SUM(mw_redis_moved) },
	    { "{kind=\"ask\"}", METRICS_SUM(mw_redis_ask) } } },
	{ "hitcountd_redis_roundtrip_seconds", "histogram",
	    "Time from sending a Redis command to reading its reply.",
	    metrics_samples_rtt, { { NULL, 0 } } },
	{ "hitcountd_connections_open", "gauge",
	    "Client connections open in all workers.",
	    NULL, { { "", METRICS_SUM(mw_conns_open) } } },
	{ "hitcountd_accept_wakeups_total", "counter",
	    "Times a worker was woken for new connections.",
	    NULL, { { "", METRICS_SUM(mw_accept_wakeups) } } },
	{ "hitcountd_accept_empty_wakeups_total", "counter",
	    "Times a worker was woken for new connections and found none.",
	    NULL, { { "", METRICS_SUM(mw_accept_empty) } } },
	{ "hitcountd_workers", "gauge",
	    "Workers of the current generation alive.",
	    NULL, { { "", METRICS_AT(mv_workers) } } },
	{ "hitcountd_reloads_total", "counter",
	    "Configuration reloads (HUP), by result.",
	    NULL, { { "{result=\"success\"}", METRICS_AT(mv_reloads_ok) },
	    { "{result=\"failure\"}", METRICS_AT(mv_reloads_failed) } } },
	{ "hitcountd_worker_restarts_total", "counter",
	    "Workers replaced after an unexpected exit.",
	    NULL, { { "", METRICS_AT(mv_worker_restarts) } } },
	{ "hitcountd_build_info", "gauge",
	    "Always 1; the labels say which build is running.",
	    NULL, { { "{version=\"" PACKAGE_VERSION "\"}",
	    METRICS_AT(mv_one) } } },
};

size_t
metrics_render(char *buf, size_t cap)
{
	struct metrics_out o = { buf, cap, 0, 0 };
	const struct metrics_family *f;
	const struct metrics_point *p;
	struct metrics_view v;
	uint64_t value;
	int workers;

	if (metrics_shm == NULL || cap == 0)
		return 0;
	if (metrics_snapshot(&v.mv_sum, &workers) == -1) {
		log_warnx("metrics: no consistent snapshot within %d ms",
		    METRICS_FOLD_WAIT_MS);
		return 0;
	}
	v.mv_workers = workers;
	v.mv_reloads_ok = LOAD(metrics_shm->m_reloads_ok);
	v.mv_reloads_failed = LOAD(metrics_shm->m_reloads_failed);
	v.mv_worker_restarts = LOAD(metrics_shm->m_worker_restarts);
	v.mv_one = 1;

	for (f = metrics_families; f < metrics_families +
	    nitems(metrics_families); f++) {
		metrics_printf(&o, "# HELP %s %s\n# TYPE %s %s\n", f->mf_name,
		    f->mf_help, f->mf_name, f->mf_type);
		if (f->mf_samples != NULL)
			f->mf_samples(&o, f->mf_name, &v);
		for (p = f->mf_points; p < f->mf_points + nitems(f->mf_points) &&
		    p->mp_labels != NULL; p++) {
			memcpy(&value, (const char *)&v + p->mp_off,
			    sizeof(value));
			metrics_printf(&o, "%s%s %llu\n", f->mf_name,
			    p->mp_labels, (unsigned long long)value);
		}
	}
	return o.o_full ? 0 : o.o_len;
}
