/*
 * backoff.c - the pause before trying again, doubled after each failure.
 *
 * A connection that fails is made again after a pause that starts short,
 * so that service resumes soon after a restart, and doubles up to a cap,
 * so that a server that stays down is not hammered.  The Redis
 * connection (redisconn.c) and the sentinels' subscriptions
 * (sentinelsub.c) pause this way, each with its own bounds.  Common
 * ground: it calls nothing, and arms no timer itself (timer.c does).
 */
#include "config.h"

#include "backoff.h"

void
backoff_init(struct backoff *b, int min_ms, int max_ms)
{
	b->bo_min_ms = min_ms;
	b->bo_max_ms = max_ms;
	b->bo_ms = 0;
}

int
backoff_next(struct backoff *b)
{
	if (b->bo_ms == 0)
		b->bo_ms = b->bo_min_ms;
	else if (b->bo_ms < b->bo_max_ms)
		b->bo_ms *= 2;
	if (b->bo_ms > b->bo_max_ms)
		b->bo_ms = b->bo_max_ms;
	return b->bo_ms;
}

void
backoff_reset(struct backoff *b)
{
	b->bo_ms = 0;
}
