/*
 * addr.h - port numbers and "HOST:PORT" text, parsed in one place.
 *
 * The config file (listen, sentinels, cluster), the environment
 * (REDIS_PORT, REDIS_URL) and the replies of sentinels and cluster nodes
 * all name addresses as text; this file is the one parser for that text.
 * It resolves nothing and allocates nothing: the callers own the buffers,
 * decide what a missing port means, and quote the text in their errors
 * (a REDIS_URL may hold a password, so the messages here never quote it).
 * Common ground: it calls only libc, and anything may call it.
 */
#ifndef HITCOUNTD_ADDR_H
#define HITCOUNTD_ADDR_H

#include <stddef.h>

/* A host buffer of this size takes any name DNS allows, with its NUL. */
#define ADDR_HOST_MAX   256
/* addr_split()'s reason for a bad port, for a caller whose hint is
 * about the host alone. */
#define ADDR_ERR_PORT   "the port is not a number from 1 to 65535"
/* "[" HOST "]:" PORT and the NUL: a buffer for addr_format(). */
#define ADDR_TEXT_MAX   (ADDR_HOST_MAX + 8)

/*
 * The n bytes at s as a number from 0 to max: 1 to maxdigits decimal
 * digits and nothing else (no sign, no space, no trailing text, all of
 * which strtol() would pass; leading zeros count as digits).  s need not
 * be NUL-terminated.  maxdigits must keep 10^maxdigits within a long (at
 * most 18).  Returns 0 with the number in *out, or -1 with *out untouched.
 */
int addr_number(const char *s, size_t n, int maxdigits, long max, long *out);

/*
 * The n bytes at text as a port: decimal digits only (no sign, no
 * space, no trailing text, which strtol() would pass), 1 to 65535.
 * Returns the port, or -1.
 */
int addr_port(const char *text, size_t n);

/* v as a port if it is one (1 to 65535), else -1: for ports that arrive
 * as numbers, as in a CLUSTER SLOTS reply. */
int addr_port_number(long long v);

/*
 * Split the n bytes at text, "HOST:PORT" or "[IPV6]:PORT", into host
 * (without the brackets, NUL-terminated, at most hostlen - 1 bytes) and
 * *port.  A host with a ':' must be in brackets.  With defport > 0 the
 * ":PORT" may be left out and *port is defport; with 0 it is required.
 * text need not be NUL-terminated.  Returns 0, or -1 with a reason in err
 * that does not quote text (e.g. "the port is not a number from 1 to
 * 65535").
 */
int addr_split(const char *text, size_t n, int defport, char *host,
    size_t hostlen, int *port, char *err, size_t errlen);

/*
 * Write host and port as addr_split() reads them back ("[::1]:6379" for a
 * host with a ':') into buf.  Returns 0, or -1 if buf is too small (buf
 * then holds a truncated string).
 */
int addr_format(const char *host, int port, char *buf, size_t buflen);

#endif
