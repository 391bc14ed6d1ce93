/*
 * countercmd.c - the commands the visit counter (counter.c) sends, in the
 * Redis protocol, formatted once when the counter is made rather than for
 * each loop turn: GET, WAIT and ASKING never change, and INCRBY changes
 * only in its count, which is written after a prefix kept formatted.
 *
 * Calls hiredis's formatter only; called by counter.c.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "countercmd.h"

/* Room for "$<count>\r\n<count>\r\n" after the INCRBY prefix. */
#define COUNTERCMD_COUNT_ROOM   32

/* Format "INCRBY key " once: a batch appends its count. */
static int
countercmd_format_incrby(struct countercmd *cc, const char *key)
{
	size_t keylen = strlen(key);
	int n;

	cc->cc_incrby = malloc(keylen + 64 + COUNTERCMD_COUNT_ROOM);
	if (cc->cc_incrby == NULL)
		return -1;
	n = snprintf(cc->cc_incrby, keylen + 64,
	    "*3\r\n$6\r\nINCRBY\r\n$%zu\r\n", keylen);
	memcpy(cc->cc_incrby + n, key, keylen);
	memcpy(cc->cc_incrby + n + keylen, "\r\n", 2);
	cc->cc_incrby_len = (size_t)n + keylen + 2;
	return 0;
}

/* redisFormatCommand() into *cmd and *len: 0, or -1. */
static int
countercmd_format(char **cmd, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = redisvFormatCommand(cmd, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return -1;
	*len = (size_t)n;
	return 0;
}

int
countercmd_init(struct countercmd *cc, const char *key, int replicas,
    int wait_ms)
{
	memset(cc, 0, sizeof(*cc));
	if (countercmd_format_incrby(cc, key) == -1 ||
	    countercmd_format(&cc->cc_get, &cc->cc_get_len, "GET %b", key,
	    strlen(key)) == -1 ||
	    countercmd_format(&cc->cc_wait, &cc->cc_wait_len, "WAIT %d %d",
	    replicas, wait_ms) == -1 ||
	    countercmd_format(&cc->cc_asking, &cc->cc_asking_len,
	    "ASKING") == -1)
		return -1;
	return 0;
}

size_t
countercmd_incrby(struct countercmd *cc, unsigned n)
{
	char num[16];
	int len;

	len = snprintf(num, sizeof(num), "%u", n);
	len = snprintf(cc->cc_incrby + cc->cc_incrby_len,
	    COUNTERCMD_COUNT_ROOM, "$%d\r\n%s\r\n", len, num);
	return cc->cc_incrby_len + (size_t)len;
}

void
countercmd_free(struct countercmd *cc)
{
	free(cc->cc_incrby);
	cc->cc_incrby = NULL;
	if (cc->cc_get)
		redisFreeCommand(cc->cc_get);
	if (cc->cc_wait)
		redisFreeCommand(cc->cc_wait);
	if (cc->cc_asking)
		redisFreeCommand(cc->cc_asking);
	cc->cc_get = cc->cc_wait = cc->cc_asking = NULL;
}
