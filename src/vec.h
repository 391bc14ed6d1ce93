/*
 * vec.h - a growable array of fixed-size elements, used as a list or a
 * FIFO: appended at the end, taken from either end.
 */
#ifndef HITCOUNTD_VEC_H
#define HITCOUNTD_VEC_H

#include <stddef.h>

struct vec {
	unsigned char *v_buf;
	size_t v_size;          /* bytes per element */
	size_t v_first;         /* room for this many before the first */
	size_t v_first_cap;     /* the first allocation, in elements */
	size_t v_n;             /* elements held */
	size_t v_cap;           /* elements v_buf has room for */
};

/*
 * An empty vector of elements of size bytes; the first allocation, on
 * the first vec_push(), has room for first_cap of them, and each later
 * one for twice as many.  Nothing is allocated yet.
 */
void vec_init(struct vec *v, size_t size, size_t first_cap);

/* The i-th element (0 is the first), i < v_n. */
void *vec_at(const struct vec *v, size_t i);

/*
 * Room for one more element at the end (v_n counts it): its address,
 * valid until the vector next grows, or NULL when out of memory (v is
 * unchanged).
 */
void *vec_push(struct vec *v);

/*
 * Room for one more element at index i (i <= v_n), the elements from i
 * on moving up by one: its address, or NULL when out of memory.
 */
void *vec_insert(struct vec *v, size_t i);

/* Forget the last element (v_n > 0). */
void vec_pop(struct vec *v);

/* Forget the first n elements (n <= v_n): the next is the first. */
void vec_shift(struct vec *v, size_t n);

/*
 * Move all of from's elements to to, which must be empty (its buffer is
 * freed); from is left empty, for elements pushed while to is worked on.
 */
void vec_move(struct vec *from, struct vec *to);

/* Free the elements' room; v is empty, and may be used again. */
void vec_free(struct vec *v);

#endif
