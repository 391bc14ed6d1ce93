/*
 * cluster.h - Redis Cluster: the key's slot, who serves it, and where to
 * ask.
 */
#ifndef HITCOUNTD_CLUSTER_H
#define HITCOUNTD_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define CLUSTER_SLOTS   16384

/* The most node addresses kept to ask (seeds first, then those learned). */
#define CLUSTER_MAX_NODES 64

struct cluster;

/* CRC16-CCITT (XMODEM) of buf, as Redis Cluster computes it. */
uint16_t cluster_crc16(const char *buf, size_t len);

/*
 * The slot of key: CRC16 of the key, or of the part between the first
 * '{' and the first '}' after it when that part is not empty, mod 16384.
 */
unsigned int cluster_keyslot(const char *key, size_t len);

/*
 * Check a reply to CLUSTER SLOTS from top to bottom and find the primary
 * that serves slot: 0 with its address in host (possibly "", meaning the
 * node that answered) and *port; 1 if no range covers the slot; -1 when
 * the reply is malformed, with why in err.  With nodes not NULL, each node
 * address of the reply (primaries and replicas) is added to it.
 */
int cluster_slots_owner(const redisReply *reply, unsigned int slot,
    char *host, size_t hostlen, int *port, struct cluster *nodes,
    char *err, size_t errlen);

/*
 * Whether reply, to a command sent to a cluster node, redirects it: an
 * error reply "MOVED SLOT HOST:PORT" or "ASK SLOT HOST:PORT" (the command
 * was not executed).  0 with *ask (1 for ASK), *slot, host ("" for the
 * node that answered) and *port; -1 for any other reply, or a malformed
 * redirection.
 */
int cluster_redirect(const redisReply *reply, int *ask, unsigned int *slot,
    char *host, size_t hostlen, int *port);

/*
 * An empty list of node addresses to ask: the seeds are added first
 * (cluster_add()), then the nodes that CLUSTER SLOTS names.  Returns NULL
 * on allocation failure.
 */
struct cluster *cluster_new(void);

/*
 * Add host:port to the list unless it is there already.  Returns 0 when
 * it is in the list, or -1 when the list is full or host is empty.
 */
int cluster_add(struct cluster *cl, const char *host, int port);

/*
 * The next address to ask, in turn: seeds and learned nodes alike, so a
 * dead seed costs one attempt per round.  Valid until the next call.
 */
const char *cluster_next(struct cluster *cl, int *port);

/* How many addresses the list holds. */
size_t cluster_count(const struct cluster *cl);

/* Free cl; NULL is allowed. */
void cluster_free(struct cluster *cl);

#endif
