/*
 * sim_redis.c - scripted fake Redis servers for the simulation, and the
 * connect that leads hiredis to them.
 *
 * hiredis stays real: redisAsyncConnect() is defined here, which the
 * linker prefers to libhiredis's for the daemon's objects, and it hands
 * the real redisAsyncConnectUnix() the path of an in-process listening
 * Unix socket standing for the node at ip:port (or a path where nothing
 * listens, for a node that refuses).  The server end is accepted at once
 * and served from the harness between loop turns: each command is
 * executed when read (as Redis does) and its reply released at a virtual
 * time the seed picks, so replies stay in order but come late, past
 * timeout_ms, as error replies, cut off at any byte, or never.  A slow or
 * hung connect is the client end's EV_WRITE held back (sim_redis_gate()).
 * The world keeps the key's true value, and what a node that must never
 * count a visit (a replica, a server that is no cluster node, a
 * sentinel) counted anyway, so that I3 and I6 are checked exactly.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "sim.h"

struct sim_world sim_world;

/* A server's end of one connection. */
struct sim_sconn {
	int ss_fd;                      /* -1 once closed */
	int ss_client_fd;               /* hiredis's end, for the gate */
	uint64_t ss_gate;               /* EV_WRITE not before (connect) */
	struct sim_node *ss_node;
	char ss_in[65536];
	size_t ss_inlen;
	char *ss_out;                   /* replies, released in order */
	size_t ss_outlen, ss_outcap, ss_sent;
	size_t ss_released;             /* bytes whose time has come */
	size_t *ss_mark_end;            /* each reply's end and release time */
	uint64_t *ss_mark_at;
	size_t ss_nmark, ss_markcap, ss_markdone;
	uint64_t ss_last_at;
	size_t ss_kill_at;              /* close after this many bytes */
	int ss_doomed;                  /* a cut is scripted: run no more */
	int ss_hung;                    /* silent for good */
	int ss_asking;                  /* ASKING came just before */
	int ss_subscribed;              /* a sentinel's subscriber */
};

#define SIM_SCONN_MAX   256

static char sim_dir[64];
static int sim_listen_fd[SIM_NODES_MAX];
static struct sim_sconn *sim_sconns[SIM_SCONN_MAX];
static int sim_nsconn;

static void
sim_path(int i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/node%d", sim_dir, i);
}

/* One listening socket per possible node, in a fresh directory (sim.h). */
int
sim_redis_init(void)
{
	struct sockaddr_un sun;
	int i;

	snprintf(sim_dir, sizeof(sim_dir), "/tmp/hitcountd-sim.XXXXXX");
	if (mkdtemp(sim_dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	for (i = 0; i < SIM_NODES_MAX; i++) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		sim_path(i, sun.sun_path, sizeof(sun.sun_path));
		sim_listen_fd[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (sim_listen_fd[i] == -1 || bind(sim_listen_fd[i],
		    (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
		    listen(sim_listen_fd[i], 64) == -1) {
			perror("sim listener");
			return -1;
		}
	}
	return 0;
}

/* Close the listeners and remove their directory. */
void
sim_redis_fini(void)
{
	char path[128];
	int i;

	for (i = 0; i < SIM_NODES_MAX; i++) {
		close(sim_listen_fd[i]);
		sim_path(i, path, sizeof(path));
		unlink(path);
	}
	rmdir(sim_dir);
}

/* A node of the world, at ip:port, of a kind, without faults. */
struct sim_node *
sim_redis_node(const char *ip, int port, int kind)
{
	struct sim_node *n;

	if (sim_world.sw_nnodes == SIM_NODES_MAX)
		abort();
	n = &sim_world.sw_nodes[sim_world.sw_nnodes];
	memset(n, 0, sizeof(*n));
	snprintf(n->sn_ip, sizeof(n->sn_ip), "%s", ip);
	n->sn_port = port;
	n->sn_kind = kind;
	n->sn_index = sim_world.sw_nnodes++;
	return n;
}

static struct sim_node *
sim_find(const char *ip, int port)
{
	int i;

	for (i = 0; i < sim_world.sw_nnodes; i++)
		if (sim_world.sw_nodes[i].sn_port == port &&
		    strcmp(sim_world.sw_nodes[i].sn_ip, ip) == 0)
			return &sim_world.sw_nodes[i];
	return NULL;
}

/*
 * The daemon's connect (redisconn.c, sentinel.c, sentinelsub.c): to the
 * node's socket.  A refused one gets hiredis's own error for a path where
 * nothing listens.
 */
redisAsyncContext *
redisAsyncConnect(const char *ip, int port)
{
	struct sim_node *n = sim_find(ip, port);
	struct sim_sconn *ss;
	char path[128];
	redisAsyncContext *ac;
	int fd;

	if (n == NULL || n->sn_refuse) {
		sim_trace("connect %s:%d refused", ip, port);
		snprintf(path, sizeof(path), "%s/nobody", sim_dir);
		return redisAsyncConnectUnix(path);
	}
	sim_path(n->sn_index, path, sizeof(path));
	ac = redisAsyncConnectUnix(path);
	if (ac == NULL || ac->err)
		return ac;
	fd = accept4(sim_listen_fd[n->sn_index], NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC);
	if (fd == -1 || sim_nsconn == SIM_SCONN_MAX) {
		perror("sim accept4");
		abort();
	}
	ss = calloc(1, sizeof(*ss));
	if (ss == NULL)
		abort();
	ss->ss_fd = fd;
	ss->ss_client_fd = ac->c.fd;
	ss->ss_node = n;
	ss->ss_kill_at = (size_t)-1;
	if (sim_chance(n->sn_p_slow))
		ss->ss_gate = sim_chance(300) ? UINT64_MAX : sim_now_us +
		    (uint64_t)sim_world.sw_timeout_ms * 1000 +
		    sim_rand((uint64_t)sim_world.sw_timeout_ms * 1000);
	else if (sim_chance(300))
		ss->ss_gate = sim_now_us + sim_rand(20000);
	if (n->sn_kind == SK_HANG)
		ss->ss_hung = 1;
	sim_sconns[sim_nsconn++] = ss;
	sim_trace("connect %s:%d (node %d, fd %d), writable at %.3f ms", ip,
	    port, n->sn_index, ac->c.fd, ss->ss_gate == UINT64_MAX ? -1.0 :
	    (double)ss->ss_gate / 1000.0);
	return ac;
}

/* When hiredis's socket fd may report EV_WRITE: 0 for now (sim.h). */
uint64_t
sim_redis_gate(int fd)
{
	int i;

	for (i = sim_nsconn - 1; i >= 0; i--)
		if (sim_sconns[i]->ss_client_fd == fd)
			return sim_sconns[i]->ss_gate;
	return 0;
}

static void
sim_close(struct sim_sconn *ss)
{
	if (ss->ss_fd == -1)
		return;
	close(ss->ss_fd);
	ss->ss_fd = -1;
	ss->ss_client_fd = -1;
}

/* Append bytes to the connection's output. */
static void
sim_put(struct sim_sconn *ss, const char *p, size_t len)
{
	if (ss->ss_outlen + len > ss->ss_outcap) {
		ss->ss_outcap = (ss->ss_outlen + len) * 2 + 256;
		ss->ss_out = realloc(ss->ss_out, ss->ss_outcap);
		if (ss->ss_out == NULL)
			abort();
	}
	memcpy(ss->ss_out + ss->ss_outlen, p, len);
	ss->ss_outlen += len;
}

static void __attribute__((format(printf, 2, 3)))
sim_putf(struct sim_sconn *ss, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sim_put(ss, buf, (size_t)n);
}

static void
sim_bulk(struct sim_sconn *ss, const char *s)
{
	sim_putf(ss, "$%zu\r\n%s\r\n", strlen(s), s);
}

/* The reply just appended goes out at a time the seed picks. */
static void
sim_release(struct sim_sconn *ss)
{
	struct sim_node *n = ss->ss_node;
	uint64_t tmo = (uint64_t)sim_world.sw_timeout_ms * 1000, at;

	if (sim_chance(n->sn_p_delay))
		at = sim_now_us + tmo + sim_rand(tmo);
	else if (sim_chance(500))
		at = sim_now_us;
	else
		at = sim_now_us + sim_rand(tmo / 3);
	if (at < ss->ss_last_at)
		at = ss->ss_last_at;
	ss->ss_last_at = at;
	if (ss->ss_nmark == ss->ss_markcap) {
		ss->ss_markcap = ss->ss_markcap ? ss->ss_markcap * 2 : 16;
		ss->ss_mark_end = realloc(ss->ss_mark_end, ss->ss_markcap *
		    sizeof(size_t));
		ss->ss_mark_at = realloc(ss->ss_mark_at, ss->ss_markcap *
		    sizeof(uint64_t));
		if (ss->ss_mark_end == NULL || ss->ss_mark_at == NULL)
			abort();
	}
	ss->ss_mark_end[ss->ss_nmark] = ss->ss_outlen;
	ss->ss_mark_at[ss->ss_nmark++] = at;
}

/* An injected error reply, or a value that is not an integer. */
static void
sim_error_reply(struct sim_sconn *ss)
{
	static const char *const errs[] = {
		"-READONLY You can't write against a read only replica.\r\n",
		NULL,   /* MOVED */
		NULL,   /* ASK */
		"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
		"-CLUSTERDOWN The cluster is down\r\n",
		"-LOADING Redis is loading the dataset in memory\r\n",
		"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
		"-NOAUTH Authentication required.\r\n",
		"-WRONGTYPE Operation against a key holding the wrong kind "
		    "of value\r\n",
		"$3\r\n12x\r\n",
	};
	size_t i = (size_t)sim_rand(sizeof(errs) / sizeof(errs[0]));
	struct sim_node *to;

	if (errs[i] != NULL) {
		sim_put(ss, errs[i], strlen(errs[i]));
		return;
	}
	/* A cluster names cluster nodes: one may hang or refuse, though. */
	do
		to = &sim_world.sw_nodes[sim_rand((uint64_t)sim_world.sw_nnodes)];
	while (sim_world.sw_owner != NULL && to->sn_kind != SK_CLUSTER &&
	    to->sn_kind != SK_HANG);
	sim_putf(ss, "-%s %u %s:%d\r\n", i == 1 ? "MOVED" : "ASK",
	    sim_world.sw_slot, to->sn_ip, to->sn_port);
}

/* CLUSTER SLOTS: the whole range, on the owner. */
static void
sim_slots_reply(struct sim_sconn *ss)
{
	struct sim_node *o = sim_world.sw_owner;

	if (ss->ss_node->sn_kind != SK_CLUSTER || o == NULL) {
		sim_putf(ss, "-ERR This instance has cluster support "
		    "disabled\r\n");
		return;
	}
	sim_putf(ss, "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n");
	sim_bulk(ss, o->sn_ip);
	sim_putf(ss, ":%d\r\n", o->sn_port);
	sim_bulk(ss, "0123456789abcdef0123456789abcdef01234567");
}

/*
 * Where a command on the key runs: 1 if on this connection's node (the
 * key's value is sim_world's), 2 if here but on a stray value (I6),
 * else 0 with a redirection or an error appended.
 */
static int
sim_route(struct sim_sconn *ss)
{
	struct sim_node *n = ss->ss_node, *o = sim_world.sw_owner;
	struct sim_node *imp = sim_world.sw_importing;
	int asking = ss->ss_asking;

	ss->ss_asking = 0;
	switch (n->sn_kind) {
	case SK_PRIMARY:
		return sim_world.sw_primary == NULL ||
		    sim_world.sw_primary == n ? 1 : -1;
	case SK_PLAIN:
		return 2;
	case SK_CLUSTER:
		if (n == o && imp == NULL)
			return 1;
		if (n == o) {
			sim_putf(ss, "-ASK %u %s:%d\r\n", sim_world.sw_slot,
			    imp->sn_ip, imp->sn_port);
			return 0;
		}
		if (n == imp && asking)
			return 1;
		sim_putf(ss, "-MOVED %u %s:%d\r\n", sim_world.sw_slot,
		    o->sn_ip, o->sn_port);
		return 0;
	case SK_REPLICA:
		return -1;
	default:
		sim_putf(ss, "-ERR unknown command\r\n");
		return 0;
	}
}

/* Execute INCRBY (incr) or GET on the key, and append the reply. */
static void
sim_key_command(struct sim_sconn *ss, long long incr, int get)
{
	struct sim_node *n = ss->ss_node;
	long long *v = &sim_world.sw_key;
	int r = sim_route(ss);

	if (r == 0)
		return;
	if (r == -1 && !get) {  /* a replica serves reads only */
		sim_putf(ss, "-READONLY You can't write against a read only "
		    "replica.\r\n");
		return;
	}
	if (r == 2)
		v = &n->sn_stray;
	if (get) {
		if (*v == 0)
			sim_putf(ss, "$-1\r\n");
		else {
			char num[32];

			snprintf(num, sizeof(num), "%lld", *v);
			sim_bulk(ss, num);
		}
		return;
	}
	*v += incr;
	sim_world.sw_commands++;
	sim_putf(ss, ":%lld\r\n", *v);
}

/* ROLE: only the primary now says "master". */
static void
sim_role_reply(struct sim_sconn *ss)
{
	struct sim_node *n = ss->ss_node;

	if (n->sn_kind == SK_PRIMARY && (sim_world.sw_primary == NULL ||
	    sim_world.sw_primary == n))
		sim_putf(ss, "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
	else
		sim_putf(ss, "*5\r\n$5\r\nslave\r\n$8\r\n10.0.0.1\r\n"
		    ":6379\r\n$9\r\nconnected\r\n:0\r\n");
}

/*
 * A sentinel: where the primary is (stale now and then: the daemon must
 * check with ROLE), and subscriptions, on which sim_redis_failover()
 * announces a new primary.
 */
static void
sim_sentinel_command(struct sim_sconn *ss, int argc, char **argv)
{
	struct sim_node *p = sim_world.sw_primary;
	int i;

	if (strcasecmp(argv[0], "SENTINEL") == 0 && argc == 3) {
		char port[16];

		if (p == NULL || sim_chance(100))
			p = &sim_world.sw_nodes[sim_rand(
			    (uint64_t)sim_world.sw_nnodes)];
		snprintf(port, sizeof(port), "%d", p->sn_port);
		sim_putf(ss, "*2\r\n");
		sim_bulk(ss, p->sn_ip);
		sim_bulk(ss, port);
	} else if (strcasecmp(argv[0], "SUBSCRIBE") == 0) {
		ss->ss_subscribed = 1;
		for (i = 1; i < argc; i++) {
			sim_putf(ss, "*3\r\n$9\r\nsubscribe\r\n");
			sim_bulk(ss, argv[i]);
			sim_putf(ss, ":%d\r\n", i);
			if (i + 1 < argc)
				sim_release(ss);
		}
	} else if (strcasecmp(argv[0], "PING") == 0)
		sim_putf(ss, "+PONG\r\n");
	else
		sim_putf(ss, "+OK\r\n");
}

/* Execute one command (argv of argc strings) and append its reply. */
static void
sim_execute(struct sim_sconn *ss, int argc, char **argv)
{
	struct sim_node *n = ss->ss_node;
	const char *cmd = argv[0];

	if (strcasecmp(cmd, "ASKING") == 0) {
		ss->ss_asking = 1;
		sim_putf(ss, "+OK\r\n");
		return;
	}
	if (sim_chance(n->sn_p_err)) {
		ss->ss_asking = 0;
		sim_error_reply(ss);
		return;
	}
	if (strcasecmp(cmd, "INCRBY") == 0 && argc == 3)
		sim_key_command(ss, atoll(argv[2]), 0);
	else if (strcasecmp(cmd, "GET") == 0 && argc == 2)
		sim_key_command(ss, 0, 1);
	else if (n->sn_kind == SK_SENTINEL)
		sim_sentinel_command(ss, argc, argv);
	else if (strcasecmp(cmd, "CLUSTER") == 0)
		sim_slots_reply(ss);
	else if (strcasecmp(cmd, "ROLE") == 0)
		sim_role_reply(ss);
	else if (strcasecmp(cmd, "PING") == 0)
		sim_putf(ss, "+PONG\r\n");
	else if (strcasecmp(cmd, "WAIT") == 0)
		sim_putf(ss, ":%d\r\n", sim_chance(900) ? 1 : 0);
	else if (strcasecmp(cmd, "AUTH") == 0 || strcasecmp(cmd, "SELECT") == 0)
		sim_putf(ss, "+OK\r\n");
	else
		sim_putf(ss, "-ERR unknown command '%s'\r\n", cmd);
}

/* One RESP array of bulk strings at p: its length, 0 if incomplete. */
static size_t
sim_parse(char *p, size_t len, int *argc, char **argv, int maxargs)
{
	char *q = p, *end = p + len, *nl;
	long n, i, blen;

	*argc = 0;
	if (len == 0 || *q != '*' || (nl = memchr(q, '\n', len)) == NULL)
		return 0;
	n = strtol(q + 1, NULL, 10);
	q = nl + 1;
	for (i = 0; i < n; i++) {
		if (q >= end || *q != '$' ||
		    (nl = memchr(q, '\n', (size_t)(end - q))) == NULL)
			return 0;
		blen = strtol(q + 1, NULL, 10);
		q = nl + 1;
		if (end - q < blen + 2)
			return 0;
		if (i < maxargs) {
			argv[i] = q;
			*argc = (int)i + 1;
		}
		q[blen] = '\0';         /* over the \r */
		q += blen + 2;
	}
	return (size_t)(q - p);
}

/* The length of the first line of the last reply, for the trace. */
static int
sim_line(const struct sim_sconn *ss)
{
	size_t i, start = ss->ss_nmark > 1 ?
	    ss->ss_mark_end[ss->ss_nmark - 2] : 0;

	for (i = start; i < ss->ss_outlen && i - start < 80; i++)
		if (ss->ss_out[i] == '\r')
			break;
	return (int)(i - start);
}

/* Run the complete commands the connection has read. */
static void
sim_serve(struct sim_sconn *ss)
{
	size_t off = 0, used, start;
	char *argv[16];
	int argc;

	while (!ss->ss_doomed && !ss->ss_hung &&
	    (used = sim_parse(ss->ss_in + off, ss->ss_inlen - off, &argc,
	    argv, 16)) > 0) {
		off += used;
		if (argc == 0)
			continue;
		if (sim_chance(ss->ss_node->sn_p_hang)) {
			sim_trace("node %d goes silent on fd %d",
			    ss->ss_node->sn_index, ss->ss_fd);
			ss->ss_hung = 1;
			break;
		}
		if (sim_chance(ss->ss_node->sn_p_cut) && sim_chance(500)) {
			/* Lost before this command was read. */
			ss->ss_doomed = 1;
			ss->ss_kill_at = ss->ss_outlen;
			sim_release(ss);
			break;
		}
		start = ss->ss_outlen;
		sim_execute(ss, argc, argv);
		if (sim_chance(ss->ss_node->sn_p_cut)) {
			/* Executed, and lost at some byte of its reply. */
			ss->ss_doomed = 1;
			ss->ss_kill_at = start + (size_t)sim_rand(
			    ss->ss_outlen - start);
		}
		sim_release(ss);
		sim_trace("node %d fd %d: %s %s -> %.*s%s (at %.3f ms)",
		    ss->ss_node->sn_index, ss->ss_fd, argv[0],
		    argc > 1 ? argv[1] : "", sim_line(ss), ss->ss_out + start,
		    ss->ss_doomed ? ", then cut" : "",
		    (double)ss->ss_last_at / 1000.0);
	}
	memmove(ss->ss_in, ss->ss_in + off, ss->ss_inlen - off);
	ss->ss_inlen -= off;
}

/* Send what is released, and close at a scripted cut. */
static void
sim_flush(struct sim_sconn *ss)
{
	size_t limit;
	ssize_t n;

	while (ss->ss_markdone < ss->ss_nmark &&
	    ss->ss_mark_at[ss->ss_markdone] <= sim_now_us)
		ss->ss_released = ss->ss_mark_end[ss->ss_markdone++];
	if (ss->ss_hung)
		return;
	limit = ss->ss_released;
	if (limit > ss->ss_kill_at)
		limit = ss->ss_kill_at;
	if (limit > ss->ss_sent) {
		n = send(ss->ss_fd, ss->ss_out + ss->ss_sent, limit - ss->ss_sent,
		    MSG_NOSIGNAL);
		if (n > 0)
			ss->ss_sent += (size_t)n;
		else if (n == -1 && errno != EAGAIN) {
			sim_close(ss);
			return;
		}
	}
	if (ss->ss_sent == ss->ss_kill_at && ss->ss_released >= ss->ss_kill_at) {
		sim_trace("node %d cuts fd %d after %zu bytes",
		    ss->ss_node->sn_index, ss->ss_fd, ss->ss_sent);
		sim_close(ss);
	}
}

/* Read, run and answer what every server connection has, at sim_now_us. */
void
sim_redis_step(void)
{
	int i;

	for (i = 0; i < sim_nsconn; i++) {
		struct sim_sconn *ss = sim_sconns[i];
		ssize_t n;

		if (ss->ss_fd == -1)
			continue;
		while (!ss->ss_hung && ss->ss_inlen < sizeof(ss->ss_in) &&
		    (n = recv(ss->ss_fd, ss->ss_in + ss->ss_inlen,
		    sizeof(ss->ss_in) - ss->ss_inlen, 0)) != -1) {
			if (n == 0) {   /* the daemon closed it */
				sim_close(ss);
				break;
			}
			ss->ss_inlen += (size_t)n;
		}
		if (ss->ss_fd == -1)
			continue;
		sim_serve(ss);
		sim_flush(ss);
	}
}

/* The next time a reply or a connect gate is due, or UINT64_MAX. */
uint64_t
sim_redis_next(void)
{
	uint64_t t = UINT64_MAX;
	int i;

	for (i = 0; i < sim_nsconn; i++) {
		struct sim_sconn *ss = sim_sconns[i];

		if (ss->ss_fd != -1 && !ss->ss_hung &&
		    ss->ss_markdone < ss->ss_nmark &&
		    ss->ss_mark_at[ss->ss_markdone] < t)
			t = ss->ss_mark_at[ss->ss_markdone];
		if (ss->ss_fd != -1 && ss->ss_gate > sim_now_us &&
		    ss->ss_gate < t)
			t = ss->ss_gate;
	}
	return t;
}

/*
 * Sentinel mode: the replica to is promoted; the subscribers hear of it
 * on +switch-master, from every sentinel.
 */
void
sim_redis_failover(struct sim_node *to)
{
	struct sim_node *old = sim_world.sw_primary;
	char msg[128];
	int i;

	sim_trace("failover: node %d is the primary now", to->sn_index);
	to->sn_kind = SK_PRIMARY;
	sim_world.sw_primary = to;
	snprintf(msg, sizeof(msg), "mymaster %s %d %s %d", old->sn_ip,
	    old->sn_port, to->sn_ip, to->sn_port);
	for (i = 0; i < sim_nsconn; i++) {
		struct sim_sconn *ss = sim_sconns[i];

		if (ss->ss_fd == -1 || !ss->ss_subscribed || ss->ss_doomed)
			continue;
		sim_putf(ss, "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n");
		sim_bulk(ss, msg);
		sim_release(ss);
	}
}

/* Close and free every server connection; empty the world. */
void
sim_redis_reset(void)
{
	int i;

	for (i = 0; i < sim_nsconn; i++) {
		struct sim_sconn *ss = sim_sconns[i];

		sim_close(ss);
		free(ss->ss_out);
		free(ss->ss_mark_end);
		free(ss->ss_mark_at);
		free(ss);
	}
	sim_nsconn = 0;
	memset(&sim_world, 0, sizeof(sim_world));
}
