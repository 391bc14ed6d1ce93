/*
 * countercmd.h - the commands the visit counter sends, formatted once.
 */
#ifndef HITCOUNTD_COUNTERCMD_H
#define HITCOUNTD_COUNTERCMD_H

#include <stddef.h>

/* Each command in the Redis protocol, ready for redisconn_send(). */
struct countercmd {
	char *cc_incrby;                /* "INCRBY key " + room for a count */
	size_t cc_incrby_len;           /* of the part before the count */
	char *cc_get;                   /* GET key */
	size_t cc_get_len;
	char *cc_wait;                  /* WAIT replicas ms */
	size_t cc_wait_len;
	char *cc_asking;                /* ASKING */
	size_t cc_asking_len;
};

/*
 * Format the commands for key, with WAIT for replicas within wait_ms.
 * Returns 0, or -1 when out of memory (countercmd_free() still applies).
 */
int countercmd_init(struct countercmd *cc, const char *key, int replicas,
    int wait_ms);

/* INCRBY key n, in cc_incrby: returns its length. */
size_t countercmd_incrby(struct countercmd *cc, unsigned n);

/* Free the commands; a zeroed or half-made cc is fine. */
void countercmd_free(struct countercmd *cc);

#endif
