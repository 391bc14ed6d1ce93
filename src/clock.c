/*
 * clock.c - the monotonic clock and the per-second date strings.
 *
 * Every timeout and deadline of the daemon is measured on CLOCK_MONOTONIC,
 * which a change of the wall clock does not move.  Responses carry a Date
 * header and access-log lines a local time stamp; both change once a
 * second, so they are formatted once a second and shared by every
 * request of that second.
 *
 * Common ground: calls only libc; used by every file that times or
 * stamps something.
 */
#include "config.h"

#include <time.h>

#include "clock.h"

uint64_t
clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
clock_ms(void)
{
	return clock_us() / 1000;
}

uint64_t
clock_coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char clock_http[CLOCK_HTTP_DATE_LEN + 1];
static char clock_log[40];

/* Format both strings when the second has changed since the last call. */
static void
clock_dates(void)
{
	static time_t cached = (time_t)-1;
	time_t now = time(NULL);
	struct tm tm;

	if (now == cached)
		return;
	gmtime_r(&now, &tm);
	strftime(clock_http, sizeof(clock_http), "%a, %d %b %Y %H:%M:%S GMT",
	    &tm);
	localtime_r(&now, &tm);
	strftime(clock_log, sizeof(clock_log), "%d/%b/%Y:%H:%M:%S %z", &tm);
	cached = now;
}

const char *
clock_http_date(void)
{
	clock_dates();
	return clock_http;
}

const char *
clock_log_date(void)
{
	clock_dates();
	return clock_log;
}
