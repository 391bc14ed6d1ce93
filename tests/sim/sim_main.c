/*
 * sim_main.c - the simulation's schedules and the invariants they check
 * (tests/INVARIANTS.md, I1-I6).
 *
 * One schedule: a seed builds a Redis world (a plain primary; a cluster
 * with a slot that moves or migrates, a node that hangs, one that refuses
 * and perhaps a server that is no cluster node listed as a seed; or a
 * primary and a replica behind a sentinel that fails over), its faults
 * (error replies, replies later than timeout_ms, connections lost at any
 * byte, silent nodes, slow or hung connects), one or two workers (the
 * daemon's own conn.c, route.c, counter.c, redisconn.c and the rest, on
 * sim_loop.c's virtual time), and clients on socket pairs that send GET /
 * and HEAD /, one at a time or pipelined, in fragments, and that may
 * leave while they wait.  The loop, the fake servers and the clients then
 * take turns, in virtual time, until every client is done; the checks
 * then read what each client received, byte for byte.  Every failure
 * prints its seed; SIM_SEED=<seed> replays that schedule exactly, and
 * SIM_VERBOSE=1 traces it (with the daemon's debug log).  See
 * tests/sim/README.md.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "cluster.h"
#include "conf.h"
#include "conn.h"
#include "counter.h"
#include "log.h"
#include "route.h"
#include "sim.h"

#define SIM_REQ_MAX     6
#define SIM_CLIENTS_MAX 12
#define SIM_WORKERS_MAX 2
#define SIM_LIMIT_US    (60ULL * 1000000)  /* virtual time of a schedule */
#define SIM_STEPS_MAX   2000000
#define SIM_MARGIN_US   1000               /* I5's margin */

struct sim_worker {
	struct conn_set w_cs;
	struct counter *w_counter;
	struct route_table *w_routes;
	int w_settled;
};

struct sim_client {
	int c_fd;                       /* the client's end; -1 once gone */
	int c_worker;
	int c_nreq;
	char c_kind[SIM_REQ_MAX];       /* 'G' GET /, 'H' HEAD / */
	int c_pipelined;
	int c_leave_after;              /* leaves after this request, or -1 */
	uint64_t c_leave_wait;
	uint64_t c_start, c_next_at;
	int c_connected, c_left, c_eof;
	char c_out[SIM_REQ_MAX * 64];
	size_t c_outlen, c_outoff;
	size_t c_req_end[SIM_REQ_MAX];
	int c_nsent;                    /* requests complete */
	uint64_t c_complete_at[SIM_REQ_MAX], c_answer_at[SIM_REQ_MAX];
	int c_status[SIM_REQ_MAX];
	long long c_num[SIM_REQ_MAX];
	char c_in[16384];
	size_t c_inlen;
	int c_nresp;
	char c_err[256];                /* an I1 violation seen while reading */
};

static struct conf sim_cf;
static char *sim_sentinels[1], *sim_seeds[4];
static struct sim_worker sim_workers[SIM_WORKERS_MAX];
static int sim_nworkers;
static struct sim_client sim_clients[SIM_CLIENTS_MAX];
static int sim_nclients;
static int sim_brief;                   /* SIM_BRIEF: a line per failure */
static int sim_i5_strict;               /* SIM_I5_STRICT: see the README */
static int sim_mode;                    /* 0 plain, 1 cluster, 2 sentinel */
static const char *const sim_mode_name[] = { "plain", "cluster", "sentinel" };

/* Scripted changes of the world: at sim_ev_at[i], do sim_ev_what[i]. */
enum sim_change {
	SC_UP, SC_MIGRATE, SC_MIGRATED, SC_MOVE, SC_FAILOVER, SC_DEMOTE,
	SC_PROMOTE
};
static uint64_t sim_ev_at[4];
static int sim_ev_what[4];
static int sim_nev, sim_evdone;

/* A failure: the invariant, and what shows it. */
static char sim_fail[2048];

static void __attribute__((format(printf, 1, 2)))
sim_violation(const char *fmt, ...)
{
	va_list ap;
	size_t len = strlen(sim_fail);

	if (len + 2 >= sizeof(sim_fail))
		return;
	va_start(ap, fmt);
	vsnprintf(sim_fail + len, sizeof(sim_fail) - len, fmt, ap);
	va_end(ap);
	len = strlen(sim_fail);
	if (len + 1 < sizeof(sim_fail)) {
		sim_fail[len] = '\n';
		sim_fail[len + 1] = '\0';
	}
}

/* Faults of a node, from the seed: none in a third of the schedules. */
static void
sim_faults(struct sim_node *n)
{
	if (sim_chance(333))
		return;
	n->sn_p_err = (int)sim_rand(80);
	n->sn_p_delay = (int)sim_rand(40);
	n->sn_p_cut = (int)sim_rand(30);
	n->sn_p_hang = sim_chance(300) ? (int)sim_rand(10) : 0;
	n->sn_p_slow = (int)sim_rand(150);
}

static void
sim_change_at(uint64_t at, int what)
{
	sim_ev_at[sim_nev] = at;
	sim_ev_what[sim_nev++] = what;
}

/* The configuration every schedule shares; the Redis part is the mode's. */
static void
sim_conf(void)
{
	static char empty[] = "", key[] = "visits", name[] = "mymaster";
	static char host[32];

	memset(&sim_cf, 0, sizeof(sim_cf));
	sim_cf.cf_keepalive_timeout = 5;
	sim_cf.cf_header_timeout = 10;
	sim_cf.cf_max_connections = 1000;
	sim_cf.cf_max_header_size = 8192;
	sim_cf.cf_max_headers = 100;
	sim_cf.cf_access_log = empty;
	sim_cf.cf_metrics_path = empty;
	sim_cf.cf_readyz_path = empty;
	sim_cf.cf_redis.host = host;
	sim_cf.cf_redis.port = 6379;
	sim_cf.cf_redis.socket = empty;
	sim_cf.cf_redis.key = key;
	sim_cf.cf_redis.timeout_ms = 100;
	sim_cf.cf_redis.username = empty;
	sim_cf.cf_redis.password = sim_chance(200) ? key : empty;
	sim_cf.cf_redis.password_file = empty;
	sim_cf.cf_redis.db = sim_chance(200) ? 1 : 0;
	sim_cf.cf_redis.master_name = name;
	sim_cf.cf_redis.sentinel_username = empty;
	sim_cf.cf_redis.sentinel_password = empty;
	sim_cf.cf_redis.sentinel_password_file = empty;
	sim_cf.cf_redis.min_replicas_acked = sim_chance(150) ? 1 : 0;
	sim_cf.cf_redis.tls_ca_file = empty;
	sim_cf.cf_redis.tls_ca_dir = empty;
	sim_cf.cf_redis.tls_cert_file = empty;
	sim_cf.cf_redis.tls_key_file = empty;
	sim_cf.cf_redis.tls_server_name = empty;
	snprintf(host, sizeof(host), "10.0.0.1");
	sim_world.sw_timeout_ms = sim_cf.cf_redis.timeout_ms;
	sim_world.sw_slot = cluster_keyslot(key, strlen(key));
}

/*
 * A plain primary, down for a while now and then, or made a replica
 * (READONLY) by a failover the daemon was not told of, for a while.
 */
static void
sim_world_plain(void)
{
	struct sim_node *p = sim_redis_node("10.0.0.1", 6379, SK_PRIMARY);
	uint64_t t;

	sim_faults(p);
	if (sim_chance(150)) {
		p->sn_refuse = 1;
		sim_change_at(sim_rand(400000), SC_UP);
	} else if (sim_chance(250)) {
		t = sim_rand(300000);
		sim_change_at(t, SC_DEMOTE);
		sim_change_at(t + sim_rand(300000), SC_PROMOTE);
	}
}

/*
 * A cluster: A serves the slot; B takes it over (MOVED) or imports it
 * (ASK) at some point; H hangs, D refuses; S, no cluster node, may be
 * listed as a seed.
 */
static void
sim_world_cluster(void)
{
	static char seedtext[4][32];
	struct sim_node *a, *b, *h, *d, *s = NULL, *seeds[4];
	size_t n = 0, i;
	uint64_t t;

	a = sim_redis_node("10.0.1.1", 7000, SK_CLUSTER);
	b = sim_redis_node("10.0.1.2", 7001, SK_CLUSTER);
	h = sim_redis_node("10.0.1.3", 7002, SK_HANG);
	d = sim_redis_node("10.0.1.4", 7003, SK_CLUSTER);
	d->sn_refuse = 1;
	sim_faults(a);
	sim_faults(b);
	sim_world.sw_owner = a;
	if (sim_chance(300)) {
		s = sim_redis_node("10.0.1.9", 6379, SK_PLAIN);
		seeds[n++] = s;
	}
	seeds[n] = sim_chance(500) ? a : b;
	seeds[n + 1] = seeds[n] == a ? b : a;
	n += 2;
	if (sim_chance(200))
		seeds[n++] = d;
	(void)h;
	if (s != NULL && sim_chance(500)) {     /* S not first */
		seeds[0] = seeds[1];
		seeds[1] = s;
	}
	for (i = 0; i < n; i++) {
		snprintf(seedtext[i], sizeof(seedtext[i]), "%s:%d",
		    seeds[i]->sn_ip, seeds[i]->sn_port);
		sim_seeds[i] = seedtext[i];
	}
	sim_cf.cf_redis.cluster = sim_seeds;
	sim_cf.cf_redis.ncluster = n;
	t = sim_rand(300000);
	switch (sim_rand(4)) {
	case 0:
		sim_change_at(t, SC_MOVE);
		break;
	case 1:
		sim_change_at(t, SC_MIGRATE);
		break;
	case 2:
		sim_change_at(t, SC_MIGRATE);
		sim_change_at(t + sim_rand(300000), SC_MIGRATED);
		break;
	default:
		break;
	}
}

/* A primary and a replica behind a sentinel, which may fail over. */
static void
sim_world_sentinel(void)
{
	static char text[] = "10.0.2.9:26379";
	struct sim_node *z, *p, *r;

	z = sim_redis_node("10.0.2.9", 26379, SK_SENTINEL);
	p = sim_redis_node("10.0.2.1", 6379, SK_PRIMARY);
	r = sim_redis_node("10.0.2.2", 6380, SK_REPLICA);
	(void)z;
	(void)r;
	sim_faults(p);
	sim_world.sw_primary = p;
	sim_sentinels[0] = text;
	sim_cf.cf_redis.sentinels = sim_sentinels;
	sim_cf.cf_redis.nsentinels = 1;
	if (sim_chance(600))
		sim_change_at(sim_rand(400000), SC_FAILOVER);
}

static void
sim_change(int what)
{
	struct sim_world *w = &sim_world;

	switch (what) {
	case SC_UP:
		w->sw_nodes[0].sn_refuse = 0;
		sim_trace("node 0 takes connections");
		break;
	case SC_MIGRATE:
		w->sw_importing = &w->sw_nodes[1];
		sim_trace("the key migrates to node 1 (ASK)");
		break;
	case SC_MIGRATED:
		w->sw_importing = NULL;
		w->sw_owner = &w->sw_nodes[1];
		sim_trace("node 1 serves the slot");
		break;
	case SC_MOVE:
		w->sw_owner = &w->sw_nodes[1];
		sim_trace("the slot moved to node 1 (MOVED)");
		break;
	case SC_FAILOVER:
		sim_redis_failover(&w->sw_nodes[2]);
		break;
	case SC_DEMOTE:
		w->sw_nodes[0].sn_kind = SK_REPLICA;
		sim_trace("node 0 is a replica now (READONLY)");
		break;
	case SC_PROMOTE:
		w->sw_nodes[0].sn_kind = SK_PRIMARY;
		sim_trace("node 0 is the primary again");
		break;
	}
}

static void
sim_on_settled(void *arg)
{
	struct sim_worker *w = arg;

	w->w_settled = 1;
}

static void
sim_on_conn_closed(void *arg)
{
	(void)arg;
}

static int
sim_worker_start(struct sim_worker *w)
{
	memset(w, 0, sizeof(*w));
	if (conn_set_init(&w->w_cs, sim_loop_base(), &sim_cf,
	    sim_on_conn_closed, w) == -1)
		return -1;
	w->w_counter = counter_new(sim_loop_base(), &sim_cf, sim_on_settled, w);
	if (w->w_counter == NULL)
		return -1;
	w->w_routes = route_table_new(&sim_cf, w->w_counter, 0);
	if (w->w_routes == NULL)
		return -1;
	route_install(w->w_routes, &w->w_cs);
	return 0;
}

/* As worker.c ends: the clients first, then the counter fails the rest. */
static void
sim_worker_stop(struct sim_worker *w)
{
	conn_set_free(&w->w_cs);
	counter_free(w->w_counter);
	route_table_free(w->w_routes);
}

static void
sim_client_plan(struct sim_client *c, int i)
{
	static const char get[] = "GET / HTTP/1.1\r\nHost: sim\r\n\r\n";
	static const char head[] = "HEAD / HTTP/1.1\r\nHost: sim\r\n\r\n";
	static const char getc[] = "GET / HTTP/1.1\r\nHost: sim\r\n"
	    "Connection: close\r\n\r\n";
	int r, closing = sim_chance(150);

	memset(c, 0, sizeof(*c));
	c->c_fd = -1;
	c->c_worker = (int)sim_rand((uint64_t)sim_nworkers);
	c->c_nreq = 1 + (int)sim_rand(SIM_REQ_MAX);
	c->c_pipelined = sim_chance(400);
	c->c_leave_after = sim_chance(150) ? (int)sim_rand((uint64_t)c->c_nreq) :
	    -1;
	c->c_leave_wait = sim_rand(150000);
	c->c_start = sim_rand(i < 2 ? 20000 : 500000);
	c->c_next_at = c->c_start;
	for (r = 0; r < c->c_nreq; r++) {
		const char *t;

		c->c_kind[r] = sim_chance(250) ? 'H' : 'G';
		t = c->c_kind[r] == 'H' ? head : get;
		/* The last request may end the connection (Connection: close). */
		if (closing && r == c->c_nreq - 1 && c->c_kind[r] == 'G')
			t = getc;
		memcpy(c->c_out + c->c_outlen, t, strlen(t));
		c->c_outlen += strlen(t);
		c->c_req_end[r] = c->c_outlen;
	}
}

/* Connect a client: its socket pair's far end goes to the worker's conn.c. */
static void
sim_client_connect(struct sim_client *c)
{
	struct sockaddr_storage ss;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1) {
		perror("socketpair");
		exit(2);
	}
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	c->c_fd = sv[0];
	c->c_connected = 1;
	sim_trace("client %d connects (fd %d) to worker %d",
	    (int)(c - sim_clients), sv[0], c->c_worker);
	conn_new(&sim_workers[c->c_worker].w_cs, sv[1], &ss, 0);
}

/* How far the client may send now: one request at a time unless pipelined. */
static size_t
sim_client_limit(const struct sim_client *c)
{
	if (c->c_pipelined)
		return c->c_outlen;
	if (c->c_nresp >= c->c_nreq)
		return c->c_outlen;
	return c->c_req_end[c->c_nresp];
}

/* Parse the responses received: I1's byte-for-byte part, and the numbers. */
static void
sim_client_parse(struct sim_client *c, int ci)
{
	for (;;) {
		char *end, *cl, *p = c->c_in;
		size_t head, body = 0;
		int status, r = c->c_nresp;

		if (c->c_inlen == 0 || c->c_err[0])
			return;
		if (c->c_inlen >= 9 && memcmp(p, "HTTP/1.1 ", 9) != 0) {
			snprintf(c->c_err, sizeof(c->c_err), "I1: client %d "
			    "got bytes that are no response: '%.40s'", ci, p);
			return;
		}
		c->c_in[c->c_inlen] = '\0';
		end = strstr(p, "\r\n\r\n");
		if (end == NULL)
			return;
		head = (size_t)(end + 4 - p);
		if (r >= c->c_nreq || r >= c->c_nsent) {
			snprintf(c->c_err, sizeof(c->c_err), "I1: client %d "
			    "got a response to no request of its own (after "
			    "%d answers to %d requests sent): '%.60s'", ci,
			    r, c->c_nsent, p);
			return;
		}
		status = atoi(p + 9);
		cl = strstr(p, "Content-Length: ");
		if (cl != NULL && cl < end && c->c_kind[r] == 'G')
			body = (size_t)strtoul(cl + 16, NULL, 10);
		if (c->c_inlen < head + body)
			return;
		c->c_status[r] = status;
		c->c_answer_at[r] = sim_now_us;
		c->c_num[r] = -1;
		if (status == 200 && c->c_kind[r] == 'G' &&
		    sscanf(p + head, "Page visited %lld times",
		    &c->c_num[r]) != 1)
			snprintf(c->c_err, sizeof(c->c_err), "I1: client %d "
			    "request %d: a 200 without a count", ci, r);
		if (status != 200 && status != 503)
			snprintf(c->c_err, sizeof(c->c_err), "I1: client %d "
			    "request %d: status %d", ci, r, status);
		sim_trace("client %d: answer %d: %d %lld", ci, r, status,
		    c->c_num[r]);
		memmove(c->c_in, c->c_in + head + body,
		    c->c_inlen - head - body);
		c->c_inlen -= head + body;
		c->c_nresp++;
		if (!c->c_pipelined)    /* the next request, after a while */
			c->c_next_at = sim_now_us + (sim_chance(500) ? 0 :
			    sim_rand(5000));
	}
}

/* A client's turn: connect, send a fragment, read, or leave. */
static void
sim_client_step(struct sim_client *c, int ci)
{
	ssize_t n;

	if (c->c_left || c->c_eof)
		return;
	if (!c->c_connected) {
		if (c->c_next_at > sim_now_us)
			return;
		if (!sim_workers[c->c_worker].w_settled) {
			c->c_next_at = sim_now_us + 1000;
			return;
		}
		sim_client_connect(c);
	}
	while ((n = recv(c->c_fd, c->c_in + c->c_inlen,
	    sizeof(c->c_in) - 1 - c->c_inlen, 0)) > 0) {
		c->c_inlen += (size_t)n;
		sim_client_parse(c, ci);
	}
	if (n == 0) {
		sim_trace("client %d: the server closed", ci);
		c->c_eof = 1;
		return;
	}
	if (c->c_leave_after >= 0 && c->c_nsent > c->c_leave_after &&
	    sim_now_us >= c->c_complete_at[c->c_leave_after] + c->c_leave_wait) {
		sim_trace("client %d leaves", ci);
		close(c->c_fd);
		c->c_fd = -1;
		c->c_left = 1;
		return;
	}
	if (c->c_outoff < sim_client_limit(c) && c->c_next_at <= sim_now_us) {
		size_t room = sim_client_limit(c) - c->c_outoff;
		size_t len = sim_chance(600) ? room : 1 + (size_t)sim_rand(room);

		n = send(c->c_fd, c->c_out + c->c_outoff, len, MSG_NOSIGNAL);
		if (n > 0)
			c->c_outoff += (size_t)n;
		while (c->c_nsent < c->c_nreq &&
		    c->c_outoff >= c->c_req_end[c->c_nsent]) {
			c->c_complete_at[c->c_nsent++] = sim_now_us;
			sim_trace("client %d: request %d (%s) complete", ci,
			    c->c_nsent - 1, c->c_kind[c->c_nsent - 1] == 'H' ?
			    "HEAD" : "GET");
		}
		c->c_next_at = sim_now_us + (sim_chance(500) ? 0 :
		    sim_rand(3000));
	}
}

/* Done: gone, or every request answered. */
static int
sim_client_done(const struct sim_client *c)
{
	return c->c_left || c->c_eof || c->c_err[0] ||
	    (c->c_connected && c->c_nresp >= c->c_nreq);
}

/* The next time a client acts on its own, or UINT64_MAX. */
static uint64_t
sim_client_next(const struct sim_client *c)
{
	uint64_t t = UINT64_MAX;

	if (sim_client_done(c))
		return t;
	if (!c->c_connected)
		return c->c_next_at;
	if (c->c_outoff < sim_client_limit(c))
		t = c->c_next_at;
	if (c->c_leave_after >= 0 && c->c_nsent > c->c_leave_after) {
		uint64_t l = c->c_complete_at[c->c_leave_after] + c->c_leave_wait;

		if (l < t)
			t = l;
	}
	return t;
}

/* I1 and I5 for one client; its GET 200 numbers for I2-I4. */
static void
sim_check_client(const struct sim_client *c, int ci, long long *nums,
    size_t *nnums, long long *n200, long long *visits)
{
	uint64_t limit = (uint64_t)sim_cf.cf_redis.timeout_ms * 1000 +
	    SIM_MARGIN_US, start;
	long long last = -1;
	int r;

	if (c->c_err[0])
		sim_violation("%s", c->c_err);
	if (!c->c_left && c->c_connected && c->c_nresp < c->c_nreq)
		sim_violation("I1: client %d got %d answers to %d requests%s",
		    ci, c->c_nresp, c->c_nreq, c->c_eof ?
		    " (the server closed)" : "");
	if (!c->c_left && c->c_inlen > 0 && !c->c_err[0])
		sim_violation("I1: client %d got %zu bytes after its answers: "
		    "'%.60s'", ci, c->c_inlen, c->c_in);
	for (r = 0; r < c->c_nsent; r++) {
		if (c->c_kind[r] == 'G')
			(*visits)++;
		if (r >= c->c_nresp) {
			/* Unanswered: I5 for one still waiting at the end. */
			if (!c->c_left && !c->c_eof)
				sim_violation("I5: client %d request %d, complete "
				    "at %.3f ms, never answered", ci, r,
				    (double)c->c_complete_at[r] / 1000.0);
			continue;
		}
		/*
		 * A pipelined request is taken up once the one before it is
		 * answered: its wait starts then, or when it is complete.
		 */
		start = c->c_complete_at[r];
		if (!sim_i5_strict && r > 0 && c->c_answer_at[r - 1] > start)
			start = c->c_answer_at[r - 1];
		if (c->c_answer_at[r] - start > limit)
			sim_violation("I5: client %d request %d (%s) answered "
			    "%.3f ms after it was due (limit %.3f ms)", ci, r,
			    c->c_kind[r] == 'H' ? "HEAD" : "GET",
			    (double)(c->c_answer_at[r] - start) / 1000.0,
			    (double)limit / 1000.0);
		/* (A 200 without a number is an I1 violation already.) */
		if (c->c_kind[r] != 'G' || c->c_status[r] != 200 ||
		    c->c_num[r] < 0)
			continue;
		(*n200)++;
		nums[(*nnums)++] = c->c_num[r];
		if (c->c_num[r] <= last)
			sim_violation("I4: client %d got %lld after %lld", ci,
			    c->c_num[r], last);
		last = c->c_num[r];
	}
}

static int
sim_cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* Every invariant, on what the clients got and what the servers hold. */
static void
sim_check(void)
{
	long long nums[SIM_CLIENTS_MAX * SIM_REQ_MAX], n200 = 0, visits = 0;
	long long extra;
	size_t nnums = 0, i;
	int ci;

	for (ci = 0; ci < sim_nclients; ci++)
		sim_check_client(&sim_clients[ci], ci, nums, &nnums, &n200,
		    &visits);
	qsort(nums, nnums, sizeof(nums[0]), sim_cmp_ll);
	for (i = 1; i < nnums; i++)
		if (nums[i] == nums[i - 1])
			sim_violation("I2: %lld was answered twice", nums[i]);
	extra = sim_world.sw_key - n200;
	if (extra < 0)
		sim_violation("I3: the key holds %lld, but %lld visits got 200",
		    sim_world.sw_key, n200);
	else if (extra > visits - n200)
		sim_violation("I3: the key holds %lld: %lld more than the %lld "
		    "visits answered 200, but only %lld visits were not",
		    sim_world.sw_key, extra, n200, visits - n200);
	for (i = 0; i < (size_t)sim_world.sw_nnodes; i++)
		if (sim_world.sw_nodes[i].sn_stray != 0)
			sim_violation("I6: node %zu (%s:%d, no primary of the "
			    "key) counted %lld visits", i,
			    sim_world.sw_nodes[i].sn_ip,
			    sim_world.sw_nodes[i].sn_port,
			    sim_world.sw_nodes[i].sn_stray);
}

/* The world, the workers and the clients of one schedule, from its seed. */
static int
sim_setup(uint64_t seed)
{
	int i;

	sim_rng_seed(seed);
	sim_now_us = 0;
	sim_fail[0] = '\0';
	sim_nev = sim_evdone = 0;
	sim_conf();
	sim_mode = (int)sim_rand(3);
	if (sim_mode == 0)
		sim_world_plain();
	else if (sim_mode == 1)
		sim_world_cluster();
	else
		sim_world_sentinel();
	sim_nworkers = 1 + (int)sim_rand(SIM_WORKERS_MAX);
	for (i = 0; i < sim_nworkers; i++)
		if (sim_worker_start(&sim_workers[i]) == -1) {
			fprintf(stderr, "sim: a worker failed to start\n");
			return -1;
		}
	sim_nclients = 1 + (int)sim_rand(SIM_CLIENTS_MAX);
	for (i = 0; i < sim_nclients; i++)
		sim_client_plan(&sim_clients[i], i);
	return 0;
}

/* The next virtual time anything happens, or UINT64_MAX. */
static uint64_t
sim_next(void)
{
	uint64_t t = sim_loop_next_deadline(), u;
	int i;

	if ((u = sim_redis_next()) < t)
		t = u;
	for (i = 0; i < sim_nclients; i++)
		if ((u = sim_client_next(&sim_clients[i])) < t)
			t = u;
	if (sim_evdone < sim_nev && sim_ev_at[sim_evdone] < t)
		t = sim_ev_at[sim_evdone];
	return t < sim_now_us ? sim_now_us : t;
}

static int
sim_all_done(void)
{
	int i;

	for (i = 0; i < sim_nclients; i++)
		if (!sim_client_done(&sim_clients[i]))
			return 0;
	return 1;
}

/* Run the schedule to its end: every client done, or the time limit. */
static void
sim_run(void)
{
	long steps = 0;
	int i;

	for (;;) {
		if (++steps > SIM_STEPS_MAX) {
			sim_violation("the schedule did not end in %d steps "
			    "(virtual time %.3f ms)", SIM_STEPS_MAX,
			    (double)sim_now_us / 1000.0);
			return;
		}
		while (sim_evdone < sim_nev &&
		    sim_ev_at[sim_evdone] <= sim_now_us)
			sim_change(sim_ev_what[sim_evdone++]);
		sim_redis_step();
		for (i = 0; i < sim_nclients; i++)
			sim_client_step(&sim_clients[i], i);
		if (sim_loop_turn())
			continue;
		if (sim_all_done())
			return;
		sim_now_us = sim_next();
		if (sim_now_us == UINT64_MAX || sim_now_us > SIM_LIMIT_US)
			return;
	}
}

static void
sim_teardown(void)
{
	int i;

	for (i = 0; i < sim_nworkers; i++)
		sim_worker_stop(&sim_workers[i]);
	for (i = 0; i < sim_nclients; i++)
		if (sim_clients[i].c_fd != -1)
			close(sim_clients[i].c_fd);
	sim_redis_reset();
	if (sim_loop_pending() != 0 && sim_verbose)
		fprintf(stderr, "sim: %d events left after teardown\n",
		    sim_loop_pending());
	sim_loop_reset();
}

/* What the failed schedule was, for the report. */
static void
sim_describe(uint64_t seed)
{
	int i, r;

	fprintf(stderr, "SIM FAIL seed=%" PRIu64 " (%s, %d worker%s, %d "
	    "clients, key=%lld)\n%s", seed, sim_mode_name[sim_mode],
	    sim_nworkers, sim_nworkers > 1 ? "s" : "", sim_nclients,
	    sim_world.sw_key, sim_fail);
	for (i = 0; i < sim_nclients; i++) {
		const struct sim_client *c = &sim_clients[i];

		fprintf(stderr, "  client %d (worker %d%s%s):", i, c->c_worker,
		    c->c_pipelined ? ", pipelined" : "",
		    c->c_left ? ", left" : "");
		for (r = 0; r < c->c_nreq; r++) {
			fprintf(stderr, " %s", c->c_kind[r] == 'H' ? "HEAD" :
			    "GET");
			if (r < c->c_nresp)
				fprintf(stderr, "=%d", c->c_status[r]);
			if (r < c->c_nresp && c->c_num[r] >= 0)
				fprintf(stderr, "(%lld)", c->c_num[r]);
		}
		fputc('\n', stderr);
	}
	fprintf(stderr, "  replay: SIM_SEED=%" PRIu64 " SIM_VERBOSE=1 "
	    "tests/sim/sim\n", seed);
}

/*
 * A failure on one line (SIM_BRIEF, for long runs): the seed and the
 * first line of each violation's invariant.
 */
static void
sim_brief_line(uint64_t seed)
{
	const char *p;

	fprintf(stderr, "SIM FAIL seed=%" PRIu64 " %s:", seed,
	    sim_mode_name[sim_mode]);
	for (p = sim_fail; *p; p = strchr(p, '\n') + 1) {
		if (p[0] == 'I' && p[2] == ':')
			fprintf(stderr, " %.2s", p);
		if (strchr(p, '\n') == NULL)
			break;
	}
	fputc('\n', stderr);
}

/*
 * One schedule; returns 0 if every invariant held.  A failure is run
 * again, to show that its seed replays it: the same violations, to the
 * byte (a difference is a bug of the simulation, and fails the run too).
 */
static int
sim_schedule(uint64_t seed, int replay)
{
	static char first[sizeof(sim_fail)];
	int failed;

	if (sim_setup(seed) == -1)
		exit(2);
	sim_run();
	sim_check();
	failed = sim_fail[0] != '\0';
	if (failed && sim_brief)
		sim_brief_line(seed);
	else if (failed)
		sim_describe(seed);
	sim_teardown();
	if (!failed || !replay || sim_brief)
		return failed;
	memcpy(first, sim_fail, sizeof(first));
	if (sim_setup(seed) == -1)
		exit(2);
	sim_run();
	sim_check();
	if (strcmp(first, sim_fail) != 0)
		fprintf(stderr, "  the replay differs (a bug of the "
		    "simulation):\n%s", sim_fail);
	else
		fprintf(stderr, "  (replayed: the same)\n");
	sim_teardown();
	return failed;
}

/* The seed of schedule i of a run (splitmix64 of the run's seed and i). */
static uint64_t
sim_seed_of(uint64_t base, uint64_t i)
{
	uint64_t z = base + (i + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
sim_env(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v ? strtoull(v, NULL, 0) : dflt;
}

int
main(void)
{
	uint64_t base, n, i, failures = 0, maxfail;
	struct timespec t0, t1;
	const char *one = getenv("SIM_SEED");

	sim_verbose = getenv("SIM_VERBOSE") != NULL;
	sim_brief = getenv("SIM_BRIEF") != NULL;
	sim_i5_strict = getenv("SIM_I5_STRICT") != NULL;
	signal(SIGPIPE, SIG_IGN);       /* as the daemon: hiredis write()s */
	log_init(1, sim_verbose ? LOG_DEBUG : LOG_CRIT);
	if (sim_redis_init() == -1)
		return 2;
	atexit(sim_redis_fini);         /* the sockets' directory, on any exit */
	if (one != NULL && *one) {
		failures = sim_schedule(strtoull(one, NULL, 0), 0);
		if (!failures)
			printf("seed %s: every invariant held\n", one);
		return failures ? 1 : 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	base = sim_env("SIM_BASE_SEED", (uint64_t)t0.tv_nsec ^
	    ((uint64_t)t0.tv_sec << 20) ^ (uint64_t)getpid());
	n = sim_env("SIM_SCHEDULES", 3000);
	maxfail = sim_env("SIM_MAX_FAILURES", 10);
	printf("sim: %" PRIu64 " schedules, SIM_BASE_SEED=%" PRIu64 "\n", n,
	    base);
	fflush(stdout);
	for (i = 0; i < n && failures < maxfail; i++) {
		failures += sim_schedule(sim_seed_of(base, i), 1);
		if ((i + 1) % 100000 == 0) {
			printf("sim: %" PRIu64 " schedules, %" PRIu64
			    " failed\n", i + 1, failures);
			fflush(stdout);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("sim: %" PRIu64 " schedules in %.1f s, %" PRIu64 " failed "
	    "(SIM_BASE_SEED=%" PRIu64 ")\n", i, (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, failures, base);
	return failures ? 1 : 0;
}
