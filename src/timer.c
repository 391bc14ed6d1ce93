/*
 * timer.c - arming a libevent timer from a delay in ms or us.
 *
 * libevent takes a struct timeval; the daemon counts its timeouts in
 * milliseconds (the configuration) or microseconds (the command queue's
 * deadlines).  The conversion was written at each call site; it lives
 * here once.  Common ground: it calls libevent only, and any file with
 * an event loop may call it (the Redis side, the HTTP side, the workers).
 */
#include "config.h"

#include <sys/time.h>

#include <event2/event.h>

#include "timer.h"

int
timer_arm_us(struct event *ev, uint64_t us)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	return event_add(ev, &tv);
}

struct timeval
timer_tv_ms(long ms)
{
	struct timeval tv = { 0, 0 };

	if (ms > 0) {
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	}
	return tv;
}

int
timer_arm_ms(struct event *ev, long ms)
{
	struct timeval tv = timer_tv_ms(ms);

	return event_add(ev, &tv);
}
