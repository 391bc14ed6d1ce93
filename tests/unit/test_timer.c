/*
 * test_timer.c - unit tests of arming a libevent timer from ms or us
 * (timer.c), on a real event base: the expiry libevent reports is the
 * delay asked for from now, and a delay of 0 (or less) fires in the next
 * turn of the loop; and the struct timeval for a delay in ms.  No test waits for a timer longer than 0 ms.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <cmocka.h>
#include <event2/event.h>

#include "timer.h"

static int fired;

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fired++;
}

/* How far in the future ev expires, in us, as libevent says. */
static int64_t
expires_in_us(struct event_base *base, struct event *ev)
{
	struct timeval at, now;

	assert_true(event_pending(ev, EV_TIMEOUT, &at));
	assert_int_equal(event_base_gettimeofday_cached(base, &now), 0);
	return ((int64_t)at.tv_sec - now.tv_sec) * 1000000 +
	    (at.tv_usec - now.tv_usec);
}

static void
test_delays(void **state)
{
	struct event_base *base = event_base_new();
	struct event *ev = evtimer_new(base, on_timer, NULL);
	int64_t us;

	(void)state;
	assert_int_equal(timer_arm_ms(ev, 1500), 0);
	us = expires_in_us(base, ev);
	assert_true(us > 1400000 && us <= 1500000);
	/* Armed again: moved, not added twice. */
	assert_int_equal(timer_arm_us(ev, 2500001), 0);
	us = expires_in_us(base, ev);
	assert_true(us > 2400001 && us <= 2500001);
	event_free(ev);
	event_base_free(base);
}

static void
test_zero_and_negative_fire_next_turn(void **state)
{
	struct event_base *base = event_base_new();
	struct event *ev = evtimer_new(base, on_timer, NULL);

	(void)state;
	fired = 0;
	assert_int_equal(timer_arm_ms(ev, 0), 0);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	assert_int_equal(fired, 1);
	assert_int_equal(timer_arm_ms(ev, -5), 0);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	assert_int_equal(fired, 2);
	event_free(ev);
	event_base_free(base);
}

static void
test_tv_ms(void **state)
{
	struct timeval tv;

	(void)state;
	tv = timer_tv_ms(61999);
	assert_int_equal(tv.tv_sec, 61);
	assert_int_equal(tv.tv_usec, 999000);
	tv = timer_tv_ms(0);
	assert_int_equal(tv.tv_sec, 0);
	assert_int_equal(tv.tv_usec, 0);
	tv = timer_tv_ms(-1);
	assert_int_equal(tv.tv_sec, 0);
	assert_int_equal(tv.tv_usec, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delays),
		cmocka_unit_test(test_zero_and_negative_fire_next_turn),
		cmocka_unit_test(test_tv_ms),
	};

	return cmocka_run_group_tests_name("timer", tests, NULL, NULL);
}
