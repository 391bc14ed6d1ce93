/*
 * redisurl.c - REDIS_URL: where Redis is, in the URL form of its clients.
 *
 * Redis client libraries and hosting platforms pass the whole address of
 * Redis in one variable, REDIS_URL: redis://[USER[:PASSWORD]@]HOST[:PORT]
 * [/DB], rediss://... for the same over TLS, or unix://[USER[:PASSWORD]@]
 * /PATH[?db=DB] for a Unix socket.  This file only takes such a URL apart;
 * confenv.c puts the parts where the keys of the redis section would go.
 * It calls addr.c (the host, the port and the database number) and libc;
 * confenv.c alone calls it, so it sits with the configuration, below the
 * Redis side.
 * The user name, the password and the socket path are percent-decoded, as
 * a '@', ':', '/' or '?' in them must be written %40, %3A, %2F, %3F.  The
 * URL may hold a password, so an error says what is wrong with which part
 * and never quotes the URL.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "redisurl.h"

#define REDISURL_DEFAULT_PORT   6379

/* What a host name (or IPv4 address), and an IPv6 address, are made of. */
#define REDISURL_NAME   "abcdefghijklmnopqrstuvwxyz" \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"
#define REDISURL_V6     "0123456789abcdefABCDEF:."

/*
 * Percent-decode the n bytes at s (what names them in an error) into a
 * new string *out.  %00 is refused: the result is a C string.
 */
static int
redisurl_decode(const char *s, size_t n, const char *what, char **out,
    char *err, size_t errlen)
{
	char *d, hex[3] = "";
	size_t i, j = 0;
	long v;

	if ((d = malloc(n + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (s[i] != '%') {
			d[j++] = s[i];
			continue;
		}
		hex[0] = i + 2 < n ? s[i + 1] : '\0';
		hex[1] = i + 2 < n ? s[i + 2] : '\0';
		v = isxdigit((unsigned char)hex[0]) &&
		    isxdigit((unsigned char)hex[1]) ? strtol(hex, NULL, 16) : 0;
		if (v == 0) {
			snprintf(err, errlen, "the %s has a bad percent-encoding "
			    "(%%XX with two hexadecimal digits, not %%00)", what);
			free(d);
			return -1;
		}
		d[j++] = (char)v;
		i += 2;
	}
	d[j] = '\0';
	*out = d;
	return 0;
}

/* 1 to 9 decimal digits at s, at most max: the number, or -1. */
static long
redisurl_number(const char *s, size_t n, long max)
{
	long v;

	return addr_number(s, n, 9, max, &v) == 0 ? v : -1;
}

/* "USER[:PASSWORD]", n bytes at s: an empty USER is none. */
static int
redisurl_userinfo(struct redisurl *u, const char *s, size_t n, char *err,
    size_t errlen)
{
	const char *colon = memchr(s, ':', n);
	size_t ulen = colon ? (size_t)(colon - s) : n;

	if (ulen > 0 && redisurl_decode(s, ulen, "user name", &u->ru_user,
	    err, errlen) == -1)
		return -1;
	if (colon && redisurl_decode(colon + 1, n - ulen - 1, "password",
	    &u->ru_password, err, errlen) == -1)
		return -1;
	return 0;
}

/*
 * "HOST[:PORT]" or "[IPV6][:PORT]", n bytes at s: addr.c splits it, and
 * a URL adds two rules: a port left out is 6379, and the host holds only
 * what a host name or an IPv6 address is made of.  A stray '@', ':' or
 * '/' in the password ends the user info early and lands in the host, so
 * an error about the host names that cause too.
 */
static int
redisurl_hostport(struct redisurl *u, const char *s, size_t n, char *err,
    size_t errlen)
{
	char why[128];

	if (addr_split(s, n, REDISURL_DEFAULT_PORT, u->ru_host,
	    sizeof(u->ru_host), &u->ru_port, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s%s", why, strcmp(why, ADDR_ERR_PORT) ?
		    "; in a user name or password, percent-encode '@', ':', "
		    "'/' and '?'" : "");
		return -1;
	}
	if (strspn(u->ru_host, s[0] == '[' ? REDISURL_V6 : REDISURL_NAME) <
	    strlen(u->ru_host)) {
		snprintf(err, errlen, "the host has a character that is not in "
		    "a host name or an IPv6 address");
		return -1;
	}
	return 0;
}

/* The query after '?': db=N and nothing else. */
static int
redisurl_query(struct redisurl *u, const char *q, char *err, size_t errlen)
{
	if (strncmp(q, "db=", 3) != 0 || strchr(q, '&') != NULL) {
		snprintf(err, errlen, "the query may only be ?db=N");
		return -1;
	}
	if (u->ru_db != -1) {
		snprintf(err, errlen, "the database is given twice");
		return -1;
	}
	if ((u->ru_db = redisurl_number(q + 3, strlen(q + 3), 999999999)) ==
	    -1) {
		snprintf(err, errlen, "the database is not a number");
		return -1;
	}
	return 0;
}

/* unix://[USERINFO@]/PATH: the part after the userinfo, to end. */
static int
redisurl_unix(struct redisurl *u, const char *s, const char *end, char *err,
    size_t errlen)
{
	char *path;
	size_t len;

	if (s != end && *s != '/') {
		snprintf(err, errlen, "unix:// takes no host: the socket is "
		    "unix:///PATH");
		return -1;
	}
	if (end - s < 2) {
		snprintf(err, errlen, "no socket path (unix:///PATH)");
		return -1;
	}
	if (redisurl_decode(s, end - s, "socket path", &path, err, errlen) ==
	    -1)
		return -1;
	len = strlen(path);
	if (len > REDISURL_SOCKET_MAX)
		snprintf(err, errlen, "the socket path is longer than %zu "
		    "bytes", REDISURL_SOCKET_MAX);
	else
		memcpy(u->ru_socket, path, len + 1);
	free(path);
	return len > REDISURL_SOCKET_MAX ? -1 : 0;
}

int
redisurl_parse(const char *url, struct redisurl *u, char *err, size_t errlen)
{
	const char *rest, *query, *end, *slash, *auth_end, *at, *host;
	int is_unix = 0;

	memset(u, 0, sizeof(*u));
	u->ru_db = -1;
	if (strncmp(url, "redis://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "rediss://", 9) == 0) {
		rest = url + 9;
		u->ru_tls = 1;
	} else if (strncmp(url, "unix://", 7) == 0) {
		rest = url + 7;
		is_unix = 1;
	} else {
		snprintf(err, errlen, "the scheme is not redis://, rediss:// "
		    "or unix://");
		return -1;
	}
	query = strchr(rest, '?');
	end = query ? query : rest + strlen(rest);
	slash = memchr(rest, '/', end - rest);
	auth_end = slash ? slash : end;
	for (at = NULL, host = rest; host < auth_end; host++)
		if (*host == '@')
			at = host;
	host = at ? at + 1 : rest;
	if (at && redisurl_userinfo(u, rest, at - rest, err, errlen) == -1)
		goto fail;
	if (is_unix) {
		if (redisurl_unix(u, host, end, err, errlen) == -1)
			goto fail;
	} else {
		if (redisurl_hostport(u, host, auth_end - host, err, errlen) ==
		    -1)
			goto fail;
		if (slash && slash + 1 < end && (u->ru_db =
		    redisurl_number(slash + 1, end - slash - 1, 999999999)) ==
		    -1) {
			snprintf(err, errlen, "the database (/DB) is not a "
			    "number");
			goto fail;
		}
	}
	if (query && redisurl_query(u, query + 1, err, errlen) == -1)
		goto fail;
	return 0;

fail:
	redisurl_clear(u);
	return -1;
}

void
redisurl_clear(struct redisurl *u)
{
	if (u->ru_password)
		explicit_bzero(u->ru_password, strlen(u->ru_password));
	free(u->ru_password);
	free(u->ru_user);
	memset(u, 0, sizeof(*u));
	u->ru_db = -1;
}
