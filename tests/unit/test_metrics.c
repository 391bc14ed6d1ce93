/*
 * test_metrics.c - unit tests of the metrics: what a worker counts, as
 * metrics_render() writes it in the Prometheus text format, and that
 * counts survive the worker that made them.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "metrics.h"

static char out[16384];

/* Render, and return the output (NUL-terminated). */
static const char *
render(void)
{
	size_t n = metrics_render(out, sizeof(out) - 1);

	assert_true(n > 0);
	out[n] = '\0';
	return out;
}

/* The value on the line of a sample (its name and labels), as text. */
static const char *
sample(const char *text, const char *name)
{
	static char value[64];
	const char *p = text;
	size_t len = strlen(name), n;

	for (;;) {
		p = strstr(p, name);
		assert_non_null(p);
		if ((p == text || p[-1] == '\n') && p[len] == ' ')
			break;
		p += len;
	}
	p += len + 1;
	n = strcspn(p, "\n");
	assert_true(n < sizeof(value));
	memcpy(value, p, n);
	value[n] = '\0';
	return value;
}

static unsigned long long
sample_n(const char *text, const char *name)
{
	return strtoull(sample(text, name), NULL, 10);
}

/* A worker's slot of generation gen, counted into from now on. */
static int
worker_slot(int gen)
{
	int slot = metrics_slot_reserve(gen);

	assert_true(slot >= 0);
	metrics_slot_attach(slot, getpid(), gen);
	metrics_slot_use(slot);
	return slot;
}

static int
group_setup(void **state)
{
	(void)state;
	log_init(1, LOG_ERR);
	return metrics_init();
}

/* A new region: every metric there, with its HELP and TYPE, at 0. */
static void
test_zero(void **state)
{
	const char *t;

	(void)state;
	t = render();
	assert_string_equal(sample(t, "hitcountd_http_requests_total{code=\"200\"}"),
	    "0");
	assert_string_equal(sample(t, "hitcountd_visits_total"), "0");
	assert_string_equal(sample(t,
	    "hitcountd_redis_roundtrip_seconds_bucket{le=\"+Inf\"}"), "0");
	assert_string_equal(sample(t, "hitcountd_workers"), "0");
	assert_non_null(strstr(t, "# HELP hitcountd_visits_total "));
	assert_non_null(strstr(t, "# TYPE hitcountd_visits_total counter\n"));
	assert_non_null(strstr(t, "# TYPE hitcountd_redis_roundtrip_seconds "
	    "histogram\n"));
	assert_non_null(strstr(t, "# TYPE hitcountd_connections_open gauge\n"));
	assert_non_null(strstr(t, "hitcountd_build_info{version=\""
	    PACKAGE_VERSION "\"} 1\n"));
	assert_int_equal(t[strlen(t) - 1], '\n');
}

/* Status codes: the known ones one by one, the rest as "other". */
static void
test_requests_by_code(void **state)
{
	int slot = worker_slot(1);
	const char *t;

	(void)state;
	metrics_set_generation(1);
	metrics_count_status(200);
	metrics_count_status(200);
	metrics_count_status(404);
	metrics_count_status(505);
	metrics_count_status(500);
	metrics_count_status(299);
	METRICS_ADD(mw_visits, 2);
	METRICS_ADD(mw_conns_open, 3);
	t = render();
	assert_int_equal(sample_n(t,
	    "hitcountd_http_requests_total{code=\"200\"}"), 2);
	assert_int_equal(sample_n(t,
	    "hitcountd_http_requests_total{code=\"404\"}"), 1);
	assert_int_equal(sample_n(t,
	    "hitcountd_http_requests_total{code=\"505\"}"), 1);
	assert_int_equal(sample_n(t,
	    "hitcountd_http_requests_total{code=\"other\"}"), 2);
	assert_int_equal(sample_n(t,
	    "hitcountd_http_requests_total{code=\"503\"}"), 0);
	assert_int_equal(sample_n(t, "hitcountd_visits_total"), 2);
	assert_int_equal(sample_n(t, "hitcountd_connections_open"), 3);
	assert_int_equal(sample_n(t, "hitcountd_workers"), 1);
	METRICS_ADD(mw_conns_open, -3);
	metrics_slot_release(slot);
}

/*
 * The round-trip histogram: buckets are cumulative, each bound inclusive,
 * +Inf equals the count, the sum is in seconds.
 */
static void
test_roundtrip_histogram(void **state)
{
	int slot = worker_slot(1);
	const char *t;
	unsigned long long base;

	(void)state;
	t = render();
	base = sample_n(t, "hitcountd_redis_roundtrip_seconds_count");
	metrics_observe_rtt(50);
	metrics_observe_rtt(100);
	metrics_observe_rtt(101);
	metrics_observe_rtt(2000000);
	t = render();
	assert_int_equal(sample_n(t,
	    "hitcountd_redis_roundtrip_seconds_bucket{le=\"0.0001\"}") - base, 2);
	assert_int_equal(sample_n(t,
	    "hitcountd_redis_roundtrip_seconds_bucket{le=\"0.00025\"}") - base, 3);
	assert_int_equal(sample_n(t,
	    "hitcountd_redis_roundtrip_seconds_bucket{le=\"1\"}") - base, 3);
	assert_int_equal(sample_n(t,
	    "hitcountd_redis_roundtrip_seconds_bucket{le=\"+Inf\"}") - base, 4);
	assert_int_equal(sample_n(t,
	    "hitcountd_redis_roundtrip_seconds_count") - base, 4);
	assert_string_equal(sample(t, "hitcountd_redis_roundtrip_seconds_sum"),
	    "2.000251");
	/* The bounds, in order, as Prometheus reads them. */
	assert_true(strstr(t, "{le=\"0.0001\"}") < strstr(t, "{le=\"0.001\"}"));
	assert_true(strstr(t, "{le=\"1\"}") < strstr(t, "{le=\"+Inf\"}"));
	metrics_slot_release(slot);
}

/*
 * A worker that exits leaves its counts behind (folded into the totals),
 * not its gauges, and no longer counts as a worker.
 */
static void
test_counts_survive_the_worker(void **state)
{
	int slot = worker_slot(2);
	unsigned long long before;
	const char *t;

	(void)state;
	metrics_set_generation(2);
	before = sample_n(render(), "hitcountd_http_requests_total{code=\"200\"}");
	metrics_count_status(200);
	METRICS_ADD(mw_conns_open, 5);
	assert_int_equal(sample_n(render(), "hitcountd_workers"), 1);
	metrics_slot_release(slot);
	metrics_slot_use(-1);
	t = render();
	assert_int_equal(sample_n(t,
	    "hitcountd_http_requests_total{code=\"200\"}"), before + 1);
	assert_int_equal(sample_n(t, "hitcountd_connections_open"), 0);
	assert_int_equal(sample_n(t, "hitcountd_workers"), 0);
	/* Outside a worker's slot nothing is counted. */
	metrics_count_status(200);
	assert_int_equal(sample_n(render(),
	    "hitcountd_http_requests_total{code=\"200\"}"), before + 1);
}

static void
test_master_counters(void **state)
{
	const char *t;

	(void)state;
	metrics_reload(1);
	metrics_reload(1);
	metrics_reload(0);
	metrics_worker_restart();
	t = render();
	assert_int_equal(sample_n(t,
	    "hitcountd_reloads_total{result=\"success\"}"), 2);
	assert_int_equal(sample_n(t,
	    "hitcountd_reloads_total{result=\"failure\"}"), 1);
	assert_int_equal(sample_n(t, "hitcountd_worker_restarts_total"), 1);
}

/* Too small a buffer: 0, never a truncated exposition. */
static void
test_too_small(void **state)
{
	char small[512];
	size_t n;

	(void)state;
	n = metrics_render(out, sizeof(out));
	assert_true(n > sizeof(small));
	assert_int_equal(metrics_render(small, sizeof(small)), 0);
	assert_int_equal(metrics_render(out, n), 0);    /* no room for the NUL */
	assert_int_equal(metrics_render(out, n + 1), n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero),
		cmocka_unit_test(test_requests_by_code),
		cmocka_unit_test(test_roundtrip_histogram),
		cmocka_unit_test(test_counts_survive_the_worker),
		cmocka_unit_test(test_master_counters),
		cmocka_unit_test(test_too_small),
	};

	return cmocka_run_group_tests_name("metrics", tests, group_setup,
	    NULL);
}
