/*
 * test_addr.c - unit tests of addr.c: plain decimal numbers at their
 * edges, ports, "HOST:PORT" and "[IPV6]:PORT" split with and without a
 * default port, the bounds of the host buffer, the error text, and
 * addr_format() as the inverse of addr_split().
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

static char host[ADDR_HOST_MAX];
static char err[128];
static int port;

/* addr_split() of the NUL-terminated s. */
static int
split(const char *s, int defport)
{
	host[0] = err[0] = '\0';
	port = 0;
	return addr_split(s, strlen(s), defport, host, sizeof(host), &port,
	    err, sizeof(err));
}

/* addr_number() of the NUL-terminated s: the number, or -1 (and *out
 * untouched, which the -2 it starts with shows). */
static long
number(const char *s, int maxdigits, long max)
{
	long v = -2;

	if (addr_number(s, strlen(s), maxdigits, max, &v) == -1) {
		assert_int_equal(v, -2);
		return -1;
	}
	return v;
}

static void
test_number(void **state)
{
	long v;

	(void)state;
	assert_int_equal(number("0", 1, 0), 0);
	assert_int_equal(number("123", 3, 123), 123);
	assert_int_equal(number("007", 3, 9), 7);
	assert_int_equal(number("999999999999999999", 18,
	    999999999999999999L), 999999999999999999L);
	assert_int_equal(number("", 3, 999), -1);
	assert_int_equal(number("+1", 3, 999), -1);
	assert_int_equal(number("-1", 3, 999), -1);
	assert_int_equal(number(" 1", 3, 999), -1);
	assert_int_equal(number("1 ", 3, 999), -1);
	assert_int_equal(number("1x", 3, 999), -1);
	assert_int_equal(number("1234", 3, 999), -1);
	assert_int_equal(number("0001", 3, 999), -1);
	assert_int_equal(number("124", 3, 123), -1);
	/* n bytes only */
	assert_int_equal(addr_number("12x", 2, 3, 99, &v), 0);
	assert_int_equal(v, 12);
}

static void
test_port(void **state)
{
	(void)state;
	assert_int_equal(addr_port("1", 1), 1);
	assert_int_equal(addr_port("65535", 5), 65535);
	assert_int_equal(addr_port("6379xyz", 4), 6379);
	assert_int_equal(addr_port("0", 1), -1);
	assert_int_equal(addr_port("65536", 5), -1);
	assert_int_equal(addr_port("", 0), -1);
	assert_int_equal(addr_port("+80", 3), -1);
	assert_int_equal(addr_port(" 80", 3), -1);
	assert_int_equal(addr_port("80 ", 3), -1);
	assert_int_equal(addr_port("-1", 2), -1);
	assert_int_equal(addr_port("000080", 6), -1);
	assert_int_equal(addr_port_number(6379), 6379);
	assert_int_equal(addr_port_number(0), -1);
	assert_int_equal(addr_port_number(65536), -1);
	assert_int_equal(addr_port_number(-6379), -1);
	assert_int_equal(addr_port_number(4294973675LL), -1);
}

static void
test_split_good(void **state)
{
	(void)state;
	assert_int_equal(split("127.0.0.1:6379", 0), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6379);
	assert_int_equal(split("redis.example:1", 0), 0);
	assert_string_equal(host, "redis.example");
	assert_int_equal(port, 1);
	assert_int_equal(split("[::1]:26379", 0), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 26379);
	assert_int_equal(split("*:5000", 0), 0);
	assert_string_equal(host, "*");
	/* with a default port, the port may be left out */
	assert_int_equal(split("cache", 6379), 0);
	assert_string_equal(host, "cache");
	assert_int_equal(port, 6379);
	assert_int_equal(split("[fe80::1]", 6379), 0);
	assert_string_equal(host, "fe80::1");
	assert_int_equal(port, 6379);
	assert_int_equal(split("cache:7000", 6379), 0);
	assert_int_equal(port, 7000);
}

/* n bytes only: the rest of the buffer (a URL's path) is not read. */
static void
test_split_bounded(void **state)
{
	const char *url = "h:6380/2";

	(void)state;
	assert_int_equal(addr_split(url, 6, 0, host, sizeof(host), &port,
	    err, sizeof(err)), 0);
	assert_string_equal(host, "h");
	assert_int_equal(port, 6380);
}

static void
test_split_bad(void **state)
{
	(void)state;
	assert_int_equal(split("127.0.0.1", 0), -1);
	assert_string_equal(err, "no port (expected HOST:PORT, or "
	    "[IPV6]:PORT)");
	assert_int_equal(split("127.0.0.1:0", 0), -1);
	assert_string_equal(err, "the port is not a number from 1 to 65535");
	assert_int_equal(split("h:65536", 0), -1);
	assert_int_equal(split("h:", 6379), -1);
	assert_string_equal(err, "the port is not a number from 1 to 65535");
	assert_int_equal(split("h:+80", 0), -1);
	assert_int_equal(split(":80", 0), -1);
	assert_string_equal(err, "no host");
	assert_int_equal(split("", 6379), -1);
	assert_string_equal(err, "no host");
	assert_int_equal(split("[]:80", 0), -1);
	assert_string_equal(err, "no host");
	assert_int_equal(split("::1:80", 0), -1);
	assert_string_equal(err, "the host has more than one ':' (write an "
	    "IPv6 address in brackets)");
	assert_int_equal(split("[::1:80", 0), -1);
	assert_string_equal(err, "an IPv6 address must be written "
	    "[IPV6]:PORT");
	assert_int_equal(split("[::1]80", 0), -1);
	assert_int_equal(split("[::1]", 0), -1);
	/* nothing is written on failure */
	assert_string_equal(host, "");
	assert_int_equal(port, 0);
}

/* A host that just fits, and one byte more. */
static void
test_split_host_length(void **state)
{
	char text[ADDR_HOST_MAX + 8];

	(void)state;
	memset(text, 'a', ADDR_HOST_MAX - 1);
	strcpy(text + ADDR_HOST_MAX - 1, ":80");
	assert_int_equal(split(text, 0), 0);
	assert_int_equal(strlen(host), ADDR_HOST_MAX - 1);
	memset(text, 'a', ADDR_HOST_MAX);
	strcpy(text + ADDR_HOST_MAX, ":80");
	assert_int_equal(split(text, 0), -1);
	assert_string_equal(err, "the host is longer than 255 bytes");
}

static void
test_format(void **state)
{
	char buf[ADDR_TEXT_MAX];

	(void)state;
	assert_int_equal(addr_format("10.0.0.1", 6379, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.0.0.1:6379");
	assert_int_equal(addr_format("::1", 26379, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[::1]:26379");
	assert_int_equal(split(buf, 0), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 26379);
	assert_int_equal(addr_format("::1", 26379, buf, 6), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_number),
		cmocka_unit_test(test_port),
		cmocka_unit_test(test_split_good),
		cmocka_unit_test(test_split_bounded),
		cmocka_unit_test(test_split_bad),
		cmocka_unit_test(test_split_host_length),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
