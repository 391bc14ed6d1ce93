/*
 * test_backoff.c - unit tests of the pause before trying again
 * (backoff.c): it starts at the minimum, doubles, stops at the maximum,
 * and starts over after a success.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

static void
test_doubles_up_to_the_cap(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 100, 1000);
	assert_int_equal(backoff_next(&b), 100);
	assert_int_equal(backoff_next(&b), 200);
	assert_int_equal(backoff_next(&b), 400);
	assert_int_equal(backoff_next(&b), 800);
	assert_int_equal(backoff_next(&b), 1000);       /* not 1600 */
	assert_int_equal(backoff_next(&b), 1000);
}

static void
test_reset_starts_over(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 50, 500);
	assert_int_equal(backoff_next(&b), 50);
	assert_int_equal(backoff_next(&b), 100);
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b), 50);
}

/* A cap that is no power-of-two multiple of the minimum is still met. */
static void
test_uneven_cap(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 300, 500);
	assert_int_equal(backoff_next(&b), 300);
	assert_int_equal(backoff_next(&b), 500);
	assert_int_equal(backoff_next(&b), 500);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doubles_up_to_the_cap),
		cmocka_unit_test(test_reset_starts_over),
		cmocka_unit_test(test_uneven_cap),
	};

	return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
