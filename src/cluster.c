/*
 * cluster.c - Redis Cluster, as far as one key needs it: the key's slot,
 * the node that serves it according to CLUSTER SLOTS, the redirections
 * MOVED and ASK, and the addresses to ask when the node is gone.
 *
 * The daemon touches one key, so exactly one of the 16384 slots matters:
 * its number is computed once (CRC16, honouring a {hash tag} like every
 * cluster client), and of a CLUSTER SLOTS reply only the range holding it
 * is kept.  The reply is still checked from top to bottom: it comes from
 * the network, and a malformed one is an error to log, never a crash or a
 * guess.  Every node address in it is remembered (up to CLUSTER_MAX_NODES)
 * so that when the seeds are down, or the primary died, the replicas and
 * the other primaries can be asked where the slot went.
 *
 * No I/O here: redispeer.c asks, counter.c hands over the MOVED and ASK
 * replies, this file reads the answers (ports with addr.c).  Called by
 * redispeer.c, counter.c and confcheck.c; calls only addr.c.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cluster.h"

struct cluster_node {
	char cn_host[256];
	int cn_port;
};

struct cluster {
	struct cluster_node cl_nodes[CLUSTER_MAX_NODES];
	size_t cl_n;
	size_t cl_next;                 /* whose turn it is in cluster_next() */
};

uint16_t
cluster_crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;
	size_t i;
	int b;

	/* Polynomial 0x1021, initial value 0, no reflection (XMODEM). */
	for (i = 0; i < len; i++) {
		crc ^= (uint16_t)((unsigned char)buf[i] << 8);
		for (b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) :
			    (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned int
cluster_keyslot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len), *close;

	if (open != NULL) {
		size_t rest = len - (size_t)(open - key) - 1;

		close = memchr(open + 1, '}', rest);
		/* "{}" hashes the whole key: an empty tag is no tag. */
		if (close != NULL && close > open + 1)
			return cluster_crc16(open + 1,
			    (size_t)(close - open - 1)) % CLUSTER_SLOTS;
	}
	return cluster_crc16(key, len) % CLUSTER_SLOTS;
}

/* A port: an integer from 1 to 65535 in r.  Returns it, or -1. */
static int
cluster_port(const redisReply *r)
{
	if (r->type != REDIS_REPLY_INTEGER)
		return -1;
	return addr_port_number(r->integer);
}

/*
 * One node of a slot range, [host, port, id, ...]: 0 with its address, or
 * -1 with why.  NIL or "" for the host means the node that answered.
 */
static int
cluster_slots_node(const redisReply *n, char *host, size_t hostlen,
    int *port, char *err, size_t errlen)
{
	const redisReply *h;

	if (n->type != REDIS_REPLY_ARRAY || n->elements < 2) {
		snprintf(err, errlen, "a node is not [host, port, ...]");
		return -1;
	}
	h = n->element[0];
	if (h->type == REDIS_REPLY_NIL)
		host[0] = '\0';
	else if (h->type != REDIS_REPLY_STRING || h->len >= hostlen ||
	    memchr(h->str, '\0', h->len) != NULL) {
		snprintf(err, errlen, "a node's host is not a string of at "
		    "most %zu bytes", hostlen - 1);
		return -1;
	} else
		memcpy(host, h->str, h->len + 1);
	if (strcmp(host, "?") == 0) {
		snprintf(err, errlen, "a node's address is unknown ('?')");
		return -1;
	}
	if ((*port = cluster_port(n->element[1])) == -1) {
		snprintf(err, errlen, "a node's port is not from 1 to 65535");
		return -1;
	}
	return 0;
}

/*
 * One range [start, end, primary, replicas...]: 0, or -1 with why.  *owns
 * is set when it holds slot, with the primary's address.
 */
static int
cluster_slots_range(const redisReply *e, unsigned int slot, char *host,
    size_t hostlen, int *port, int *owns, struct cluster *nodes, char *err,
    size_t errlen)
{
	const redisReply *lo, *hi;
	char h[256];
	size_t j;
	int p;

	if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) {
		snprintf(err, errlen, "a range is not [start, end, node...]");
		return -1;
	}
	lo = e->element[0];
	hi = e->element[1];
	if (lo->type != REDIS_REPLY_INTEGER || hi->type != REDIS_REPLY_INTEGER ||
	    lo->integer < 0 || hi->integer >= CLUSTER_SLOTS ||
	    lo->integer > hi->integer) {
		snprintf(err, errlen, "a range's slots are not 0 <= start <= "
		    "end < %d", CLUSTER_SLOTS);
		return -1;
	}
	*owns = 0;
	for (j = 2; j < e->elements; j++) {
		if (cluster_slots_node(e->element[j], h, sizeof(h), &p, err,
		    errlen) == -1)
			return -1;
		if (nodes != NULL && h[0] != '\0')
			cluster_add(nodes, h, p);
		if (j == 2 && (unsigned long long)lo->integer <= slot &&
		    slot <= (unsigned long long)hi->integer) {
			if (strlen(h) >= hostlen) {
				snprintf(err, errlen, "the host is too long");
				return -1;
			}
			memcpy(host, h, strlen(h) + 1);
			*port = p;
			*owns = 1;
		}
	}
	return 0;
}

int
cluster_slots_owner(const redisReply *reply, unsigned int slot,
    char *host, size_t hostlen, int *port, struct cluster *nodes,
    char *err, size_t errlen)
{
	int found = 0, owns;
	size_t i;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			snprintf(err, errlen, "%s", reply->str);
		else
			snprintf(err, errlen, "the reply is not an array");
		return -1;
	}
	for (i = 0; i < reply->elements; i++) {
		if (cluster_slots_range(reply->element[i], slot, host, hostlen,
		    port, &owns, nodes, err, errlen) == -1)
			return -1;
		found |= owns;
	}
	return found ? 0 : 1;
}

int
cluster_redirect(const redisReply *reply, int *ask, unsigned int *slot,
    char *host, size_t hostlen, int *port)
{
	const char *p, *colon, *text;
	char *end;
	unsigned long s;
	size_t n;
	int pt;

	if (reply == NULL || reply->type != REDIS_REPLY_ERROR)
		return -1;
	text = reply->str;
	if (strncmp(text, "MOVED ", 6) == 0) {
		*ask = 0;
		p = text + 6;
	} else if (strncmp(text, "ASK ", 4) == 0) {
		*ask = 1;
		p = text + 4;
	} else
		return -1;
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	s = strtoul(p, &end, 10);
	if (errno || *end != ' ' || s >= CLUSTER_SLOTS)
		return -1;
	p = end + 1;
	/* The last colon: an IPv6 address comes without brackets. */
	colon = strrchr(p, ':');
	if (colon == NULL || strchr(p, ' ') != NULL)
		return -1;
	n = (size_t)(colon - p);
	pt = addr_port(colon + 1, strlen(colon + 1));
	if (n >= hostlen || pt == -1)
		return -1;
	memcpy(host, p, n);
	host[n] = '\0';
	*slot = (unsigned int)s;
	*port = pt;
	return 0;
}

struct cluster *
cluster_new(void)
{
	return calloc(1, sizeof(struct cluster));
}

int
cluster_add(struct cluster *cl, const char *host, int port)
{
	struct cluster_node *cn;
	size_t i;

	for (i = 0; i < cl->cl_n; i++)
		if (cl->cl_nodes[i].cn_port == port &&
		    strcmp(cl->cl_nodes[i].cn_host, host) == 0)
			return 0;
	if (cl->cl_n == CLUSTER_MAX_NODES ||
	    strlen(host) >= sizeof(cn->cn_host) || host[0] == '\0')
		return -1;
	cn = &cl->cl_nodes[cl->cl_n++];
	memcpy(cn->cn_host, host, strlen(host) + 1);
	cn->cn_port = port;
	return 0;
}

const char *
cluster_next(struct cluster *cl, int *port)
{
	const struct cluster_node *cn;

	if (cl->cl_n == 0)
		return NULL;
	cn = &cl->cl_nodes[cl->cl_next++ % cl->cl_n];
	*port = cn->cn_port;
	return cn->cn_host;
}

size_t
cluster_count(const struct cluster *cl)
{
	return cl->cl_n;
}

void
cluster_free(struct cluster *cl)
{
	free(cl);
}
