/*
 * backoff.h - the pause before trying again, doubled after each failure.
 */
#ifndef HITCOUNTD_BACKOFF_H
#define HITCOUNTD_BACKOFF_H

/* A pause between bo_min_ms and bo_max_ms; all zero until backoff_init(). */
struct backoff {
	int bo_min_ms;
	int bo_max_ms;
	int bo_ms;              /* the last pause, 0 before a failure */
};

/* Pauses from min_ms (> 0) up to max_ms (>= min_ms); none taken yet. */
void backoff_init(struct backoff *b, int min_ms, int max_ms);

/*
 * An attempt failed: the pause before the next, in ms.  min_ms after
 * backoff_init() or backoff_reset(), then twice the last, at most max_ms.
 */
int backoff_next(struct backoff *b);

/* An attempt succeeded: the next failure pauses min_ms again. */
void backoff_reset(struct backoff *b);

#endif
