/*
 * timer.h - arming a libevent timer from a delay in ms or us.
 */
#ifndef HITCOUNTD_TIMER_H
#define HITCOUNTD_TIMER_H

#include <stdint.h>
#include <sys/time.h>

struct event;

/*
 * (Re)arm ev, a timer (evtimer_new()) or an event with a timeout, to fire
 * ms milliseconds from now; a pending one is moved.  A negative ms counts
 * as 0: the timer fires in the next turn of the loop.  Returns what
 * event_add() returns: 0, or -1.
 */
int timer_arm_ms(struct event *ev, long ms);

/*
 * ms as a struct timeval, for a call that takes one rather than an event
 * to arm (event_base_init_common_timeout(), an fd's event with a
 * timeout).  A negative ms counts as 0.
 */
struct timeval timer_tv_ms(long ms);

/* As timer_arm_ms(), with the delay in microseconds. */
int timer_arm_us(struct event *ev, uint64_t us);

#endif
