/*
 * clock.h - the monotonic clock and the per-second date strings.
 */
#ifndef HITCOUNTD_CLOCK_H
#define HITCOUNTD_CLOCK_H

#include <stdint.h>

/* Milliseconds and microseconds of CLOCK_MONOTONIC: for deadlines. */
uint64_t clock_ms(void);
uint64_t clock_us(void);

/*
 * Milliseconds of CLOCK_MONOTONIC_COARSE: a few ms coarse, but no system
 * call, for timestamps taken per request.
 */
uint64_t clock_coarse_ms(void);

#define CLOCK_HTTP_DATE_LEN     29      /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/*
 * The current second as an HTTP Date header value (IMF-fixdate, RFC 9110
 * 5.6.7), and in the common log format ("10/Oct/2000:13:55:36 +0000",
 * local time).  Both are formatted once per second, together; the strings
 * stay valid until the next call in the same process.
 */
const char *clock_http_date(void);
const char *clock_log_date(void);

#endif
