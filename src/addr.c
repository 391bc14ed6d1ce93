/*
 * addr.c - port numbers and "HOST:PORT" text, parsed in one place.
 *
 * Owns the syntax of an address as hitcountd reads it: a port is 1 to
 * 65535 in plain decimal digits (read by addr_number(), which a URL's
 * database number shares), and a host with a ':' (an IPv6 address)
 * is written in brackets, so that the last ':' always starts the port.
 * Before this file, conf.c, redisurl.c, sentinel.c and cluster.c each had
 * a parser of their own, which disagreed on "+80", " 80" and "::1:80".
 * It calls only libc; conf.c, confvalid.c, confenv.c and redisurl.c call
 * it, and the Redis side (sentinel.c, cluster.c) may.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"

#define ADDR_PORT_MAX   65535

int
addr_number(const char *s, size_t n, int maxdigits, long max, long *out)
{
	long v = 0;
	size_t i;

	if (n == 0 || n > (size_t)maxdigits)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int
addr_port(const char *text, size_t n)
{
	long v;

	if (addr_number(text, n, 5, ADDR_PORT_MAX, &v) == -1)
		return -1;
	return addr_port_number(v);
}

int
addr_port_number(long long v)
{
	return v >= 1 && v <= ADDR_PORT_MAX ? (int)v : -1;
}

int
addr_split(const char *text, size_t n, int defport, char *host,
    size_t hostlen, int *port, char *err, size_t errlen)
{
	const char *end = text + n, *h = text, *colon;
	size_t hlen;

	if (n > 0 && text[0] == '[') {
		const char *close = memchr(text, ']', n);

		if (close == NULL || (close + 1 < end && close[1] != ':')) {
			snprintf(err, errlen, "an IPv6 address must be "
			    "written [IPV6]:PORT");
			return -1;
		}
		h = text + 1;
		hlen = close - h;
		colon = close + 1 < end ? close + 1 : NULL;
	} else {
		colon = memchr(text, ':', n);
		hlen = colon ? (size_t)(colon - text) : n;
		if (colon && memchr(colon + 1, ':', end - colon - 1)) {
			snprintf(err, errlen, "the host has more than one ':' "
			    "(write an IPv6 address in brackets)");
			return -1;
		}
	}
	if (hlen == 0) {
		snprintf(err, errlen, "no host");
		return -1;
	}
	if (hlen >= hostlen) {
		snprintf(err, errlen, "the host is longer than %zu bytes",
		    hostlen - 1);
		return -1;
	}
	if (colon == NULL && defport <= 0) {
		snprintf(err, errlen, "no port (expected HOST:PORT, or "
		    "[IPV6]:PORT)");
		return -1;
	}
	*port = colon ? addr_port(colon + 1, end - colon - 1) : defport;
	if (*port == -1) {
		snprintf(err, errlen, "%s", ADDR_ERR_PORT);
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return 0;
}

int
addr_format(const char *host, int port, char *buf, size_t buflen)
{
	int n = snprintf(buf, buflen, strchr(host, ':') ? "[%s]:%d" : "%s:%d",
	    host, port);

	return n < 0 || (size_t)n >= buflen ? -1 : 0;
}
