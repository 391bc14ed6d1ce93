/*
 * vec.c - a growable array of fixed-size elements (vec.h), written once
 * for the lists and FIFOs that grow with the load: the commands in
 * flight, held back or held for WAIT, and a loop turn's visits
 * (counter.c).
 *
 * The elements are v_buf[v_first .. v_first + v_n): taking from the front
 * moves v_first up, so a FIFO pops in constant time; when the end of the
 * buffer is reached, the elements move down to the start if at least
 * half of it is free that way, else the buffer doubles, so each element
 * is copied a bounded number of times on average.
 *
 * Common ground: it calls only libc, and anything may call it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "vec.h"

void
vec_init(struct vec *v, size_t size, size_t first_cap)
{
	memset(v, 0, sizeof(*v));
	v->v_size = size;
	v->v_first_cap = first_cap > 0 ? first_cap : 1;
}

void *
vec_at(const struct vec *v, size_t i)
{
	return v->v_buf + (v->v_first + i) * v->v_size;
}

/* Room for one more element at the end of v_buf: 0, or -1. */
static int
vec_room(struct vec *v)
{
	unsigned char *buf;
	size_t cap;

	if (v->v_first + v->v_n < v->v_cap)
		return 0;
	if (v->v_first > 0 && v->v_first >= v->v_n) {
		memmove(v->v_buf, v->v_buf + v->v_first * v->v_size,
		    v->v_n * v->v_size);
		v->v_first = 0;
		return 0;
	}
	cap = v->v_cap ? v->v_cap * 2 : v->v_first_cap;
	buf = realloc(v->v_buf, cap * v->v_size);
	if (buf == NULL)
		return -1;
	v->v_buf = buf;
	v->v_cap = cap;
	return 0;
}

void *
vec_push(struct vec *v)
{
	if (vec_room(v) == -1)
		return NULL;
	return vec_at(v, v->v_n++);
}

void *
vec_insert(struct vec *v, size_t i)
{
	unsigned char *at;

	if (vec_room(v) == -1)
		return NULL;
	at = vec_at(v, i);
	memmove(at + v->v_size, at, (v->v_n - i) * v->v_size);
	v->v_n++;
	return at;
}

void
vec_pop(struct vec *v)
{
	v->v_n--;
}

void
vec_shift(struct vec *v, size_t n)
{
	v->v_first += n;
	v->v_n -= n;
	if (v->v_n == 0)
		v->v_first = 0;
}

void
vec_move(struct vec *from, struct vec *to)
{
	free(to->v_buf);
	*to = *from;
	from->v_buf = NULL;
	from->v_first = from->v_n = from->v_cap = 0;
}

void
vec_free(struct vec *v)
{
	free(v->v_buf);
	v->v_buf = NULL;
	v->v_first = v->v_n = v->v_cap = 0;
}
