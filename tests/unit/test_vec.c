/*
 * test_vec.c - unit tests of vec.c: a FIFO that pops from the front while
 * it is pushed at the back (crossing the moves and the growth of its
 * buffer), insertion in order, and moving a vector's elements away.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vec.h"

/* 10000 pushes and pops, interleaved: every value comes out in order. */
static void
test_fifo(void **state)
{
	struct vec v;
	int in = 0, out = 0, round, k;

	(void)state;
	vec_init(&v, sizeof(int), 4);
	for (round = 0; round < 1000; round++) {
		for (k = 0; k < 1 + round % 7; k++)
			*(int *)vec_push(&v) = in++;
		for (k = 0; k < 1 + round % 5 && v.v_n > 0; k++) {
			assert_int_equal(*(int *)vec_at(&v, 0), out++);
			vec_shift(&v, 1);
		}
		assert_int_equal(v.v_n, (size_t)(in - out));
	}
	while (v.v_n > 0) {
		assert_int_equal(*(int *)vec_at(&v, 0), out++);
		vec_shift(&v, 1);
	}
	assert_int_equal(in, out);
	vec_free(&v);
}

/* Insertion keeps the order; pop takes back the last push. */
static void
test_insert_pop(void **state)
{
	static const int want[] = { 1, 2, 3, 5, 8 };
	struct vec v;
	size_t i;

	(void)state;
	vec_init(&v, sizeof(int), 1);
	*(int *)vec_push(&v) = 2;
	*(int *)vec_push(&v) = 5;
	*(int *)vec_insert(&v, 0) = 1;
	*(int *)vec_insert(&v, 2) = 3;
	*(int *)vec_insert(&v, 4) = 8;
	*(int *)vec_push(&v) = 99;
	vec_pop(&v);
	assert_int_equal(v.v_n, 5);
	for (i = 0; i < 5; i++)
		assert_int_equal(*(int *)vec_at(&v, i), want[i]);
	vec_free(&v);
}

/* vec_move hands the elements over and leaves an empty vector behind. */
static void
test_move(void **state)
{
	struct vec a, b;

	(void)state;
	vec_init(&a, sizeof(int), 2);
	vec_init(&b, sizeof(int), 2);
	*(int *)vec_push(&a) = 7;
	*(int *)vec_push(&a) = 9;
	vec_shift(&a, 1);
	vec_move(&a, &b);
	assert_int_equal(a.v_n, 0);
	assert_int_equal(b.v_n, 1);
	assert_int_equal(*(int *)vec_at(&b, 0), 9);
	*(int *)vec_push(&a) = 4;
	assert_int_equal(*(int *)vec_at(&a, 0), 4);
	vec_free(&a);
	vec_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo),
		cmocka_unit_test(test_insert_pop),
		cmocka_unit_test(test_move),
	};

	return cmocka_run_group_tests_name("vec", tests, NULL, NULL);
}
