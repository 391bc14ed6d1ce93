/*
 * sim_loop.c - the subset of libevent that hitcountd's Redis and client
 * code uses (event_new/assign/add/del/free/active/pending, common
 * timeouts, evdns_getaddrinfo), and its clock (clock.h), on virtual time.
 *
 * The simulation links the daemon's real counter.c, redisconn.c, conn.c
 * and the rest; only the loop, the clock and the sockets' far ends are
 * replaced.  This loop keeps libevent's one promise those files rely on,
 * that an event activated during a turn runs in the same turn, after the
 * ones already active (that is how a turn's visits become one INCRBY),
 * and leaves to the seed what libevent leaves to the kernel: the order in
 * which ready descriptors and expired timers run.  Readiness is polled
 * with zero timeout, so the loop never waits: when nothing is ready, the
 * harness moves virtual time to the next deadline.  Nothing here reads
 * the real clock, so a seed replays the same schedule exactly.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>

#include "clock.h"
#include "sim.h"

uint64_t sim_now_us;
int sim_verbose;

static uint64_t sim_rng_state;

/* Start the sequence of a schedule (0 is taken as a fixed seed). */
void
sim_rng_seed(uint64_t seed)
{
	sim_rng_state = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

/* The next number of the seed's sequence (sim.h). */
uint64_t
sim_rng(void)
{
	uint64_t x = sim_rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	sim_rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* A number in [0, n), 0 for n 0. */
uint64_t
sim_rand(uint64_t n)
{
	return n == 0 ? 0 : sim_rng() % n;
}

/* 1 with probability pm per mille. */
int
sim_chance(int pm)
{
	return (int)sim_rand(1000) < pm;
}

/* A line on stderr, with the virtual time, when SIM_VERBOSE is set. */
void
sim_trace(const char *fmt, ...)
{
	va_list ap;

	if (!sim_verbose)
		return;
	fprintf(stderr, "sim %8.3f ms: ", (double)sim_now_us / 1000.0);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The clock (clock.h), on virtual time: its contracts are clock.h's. */
uint64_t
clock_us(void)
{
	return sim_now_us;
}

uint64_t
clock_ms(void)
{
	return sim_now_us / 1000;
}

uint64_t
clock_coarse_ms(void)
{
	return sim_now_us / 1000;
}

const char *
clock_http_date(void)
{
	return "Mon, 07 Dec 2026 00:00:00 GMT";
}

const char *
clock_log_date(void)
{
	return "07/Dec/2026:00:00:00 +0000";
}

/* An event, laid over the storage of libevent's struct event. */
struct sim_ev {
	evutil_socket_t se_fd;
	short se_events;
	short se_res;                   /* what it is active for */
	event_callback_fn se_cb;
	void *se_arg;
	int se_added;                   /* registered: watched or timed */
	int se_timed;
	int se_active;
	uint64_t se_tv_us;              /* the timeout given to event_add() */
	uint64_t se_deadline;
};

_Static_assert(sizeof(struct sim_ev) <= sizeof(struct event),
    "struct sim_ev must fit in struct event");

#define SEV(ev) ((struct sim_ev *)(void *)(ev))

/* libevent's bases are opaque: this one is the loop's, and is unique. */
struct event_base {
	int eb_unused;
};

static struct event_base sim_base;
static struct sim_ev **sim_reg;         /* added events, in order added */
static size_t sim_nreg, sim_regcap;
static struct sim_ev **sim_actq;        /* the active queue, FIFO */
static size_t sim_acthead, sim_nact, sim_actcap;

/* The one base every event of the simulation is on. */
struct event_base *
sim_loop_base(void)
{
	return &sim_base;
}

static void
sim_grow(void *pp, size_t *cap, size_t need)
{
	void **p = pp;

	if (need <= *cap)
		return;
	*cap = *cap ? *cap * 2 : 64;
	if (*cap < need)
		*cap = need;
	*p = realloc(*p, *cap * sizeof(void *));
	if (*p == NULL)
		abort();
}

static void
sim_unregister(struct sim_ev *se)
{
	size_t i;

	if (!se->se_added)
		return;
	se->se_added = 0;
	se->se_timed = 0;
	for (i = 0; i < sim_nreg; i++)
		if (sim_reg[i] == se) {
			memmove(&sim_reg[i], &sim_reg[i + 1],
			    (sim_nreg - i - 1) * sizeof(sim_reg[0]));
			sim_nreg--;
			return;
		}
}

static void
sim_deactivate(struct sim_ev *se)
{
	size_t i;

	if (!se->se_active)
		return;
	se->se_active = 0;
	for (i = sim_acthead; i < sim_acthead + sim_nact; i++)
		if (sim_actq[i] == se)
			sim_actq[i] = NULL;
}

static void
sim_activate(struct sim_ev *se, short res)
{
	if (se->se_active) {
		se->se_res |= res;
		return;
	}
	if (sim_acthead > 0 && sim_nact == 0)
		sim_acthead = 0;
	sim_grow(&sim_actq, &sim_actcap, sim_acthead + sim_nact + 1);
	sim_actq[sim_acthead + sim_nact++] = se;
	se->se_active = 1;
	se->se_res = res;
}

/* libevent's API, with its contracts, from here on. */
int
event_assign(struct event *ev, struct event_base *base, evutil_socket_t fd,
    short events, event_callback_fn cb, void *arg)
{
	struct sim_ev *se = SEV(ev);

	(void)base;
	memset(se, 0, sizeof(*se));
	se->se_fd = fd;
	se->se_events = events;
	se->se_cb = cb;
	se->se_arg = arg;
	return 0;
}

struct event *
event_new(struct event_base *base, evutil_socket_t fd, short events,
    event_callback_fn cb, void *arg)
{
	struct event *ev = malloc(sizeof(*ev));

	if (ev != NULL)
		event_assign(ev, base, fd, events, cb, arg);
	return ev;
}

int
event_add(struct event *ev, const struct timeval *tv)
{
	struct sim_ev *se = SEV(ev);

	if (!se->se_added) {
		sim_grow(&sim_reg, &sim_regcap, sim_nreg + 1);
		sim_reg[sim_nreg++] = se;
		se->se_added = 1;
	}
	se->se_timed = tv != NULL;
	if (tv != NULL) {
		se->se_tv_us = (uint64_t)tv->tv_sec * 1000000 +
		    (uint64_t)tv->tv_usec;
		se->se_deadline = sim_now_us + se->se_tv_us;
	}
	return 0;
}

int
event_del(struct event *ev)
{
	struct sim_ev *se = SEV(ev);

	sim_unregister(se);
	sim_deactivate(se);
	return 0;
}

void
event_free(struct event *ev)
{
	if (ev == NULL)
		return;
	event_del(ev);
	free(ev);
}

void
event_active(struct event *ev, int res, short ncalls)
{
	(void)ncalls;
	sim_activate(SEV(ev), (short)res);
}

int
event_pending(const struct event *ev, short what, struct timeval *tv)
{
	const struct sim_ev *se = (const struct sim_ev *)(const void *)ev;
	int flags = 0;

	(void)tv;
	if (se->se_added) {
		flags |= se->se_events & (EV_READ | EV_WRITE | EV_SIGNAL);
		if (se->se_timed)
			flags |= EV_TIMEOUT;
	}
	if (se->se_active)
		flags |= se->se_res;
	return flags & what;
}

const struct timeval *
event_base_init_common_timeout(struct event_base *base,
    const struct timeval *duration)
{
	static struct timeval tvs[16];
	static size_t ntv;
	size_t i;

	(void)base;
	for (i = 0; i < ntv; i++)
		if (tvs[i].tv_sec == duration->tv_sec &&
		    tvs[i].tv_usec == duration->tv_usec)
			return &tvs[i];
	if (ntv == sizeof(tvs) / sizeof(tvs[0]))
		abort();
	tvs[ntv] = *duration;
	return &tvs[ntv++];
}

/*
 * What se's descriptor is ready for, of what it waits for, from its
 * poll() result p.
 */
static short
sim_ready(const struct sim_ev *se, const struct pollfd *p)
{
	short res = 0;

	if ((se->se_events & EV_READ) && (p->revents & (POLLIN | POLLHUP |
	    POLLERR)))
		res |= EV_READ;
	if ((se->se_events & EV_WRITE) && (p->revents & (POLLOUT | POLLHUP |
	    POLLERR)) && sim_redis_gate(se->se_fd) <= sim_now_us)
		res |= EV_WRITE;
	return res;
}

/*
 * Activate, in a seeded order, what is ready and what has expired: one
 * poll() with zero timeout over every watched descriptor.
 */
static void
sim_poll(void)
{
	struct sim_ev **ready;
	struct pollfd *pfd;
	short *res;
	size_t i, n = 0;

	if (sim_nreg == 0)
		return;
	ready = malloc(sim_nreg * sizeof(*ready));
	res = malloc(sim_nreg * sizeof(*res));
	pfd = calloc(sim_nreg, sizeof(*pfd));
	if (ready == NULL || res == NULL || pfd == NULL)
		abort();
	for (i = 0; i < sim_nreg; i++) {
		const struct sim_ev *se = sim_reg[i];

		pfd[i].fd = -1;         /* poll() skips it */
		if (se->se_fd < 0 || !(se->se_events & (EV_READ | EV_WRITE)))
			continue;
		pfd[i].fd = se->se_fd;
		if (se->se_events & EV_READ)
			pfd[i].events |= POLLIN;
		if (se->se_events & EV_WRITE)
			pfd[i].events |= POLLOUT;
	}
	if (poll(pfd, sim_nreg, 0) == -1)
		abort();
	for (i = 0; i < sim_nreg; i++) {
		struct sim_ev *se = sim_reg[i];
		short r = pfd[i].fd == -1 ? 0 : sim_ready(se, &pfd[i]);

		if (r == 0 && se->se_timed && se->se_deadline <= sim_now_us)
			r = EV_TIMEOUT;
		if (r != 0) {
			ready[n] = se;
			res[n++] = r;
		}
	}
	for (i = n; i > 1; i--) {       /* Fisher-Yates, from the seed */
		size_t j = (size_t)sim_rand(i);
		struct sim_ev *t = ready[i - 1];
		short tr = res[i - 1];

		ready[i - 1] = ready[j];
		res[i - 1] = res[j];
		ready[j] = t;
		res[j] = tr;
	}
	for (i = 0; i < n; i++)
		sim_activate(ready[i], res[i]);
	free(ready);
	free(res);
	free(pfd);
}

/* One turn, as sim.h says; 1 if an event ran. */
int
sim_loop_turn(void)
{
	int ran = 0;

	if (sim_nact == 0)
		sim_poll();
	while (sim_nact > 0) {
		struct sim_ev *se = sim_actq[sim_acthead++];
		short res;

		sim_nact--;
		if (se == NULL)
			continue;       /* deleted while active */
		se->se_active = 0;
		res = se->se_res;
		if (!(se->se_events & EV_PERSIST))
			sim_unregister(se);
		else if (se->se_timed)
			se->se_deadline = sim_now_us + se->se_tv_us;
		ran = 1;
		se->se_cb(se->se_fd, res, se->se_arg);
	}
	sim_acthead = 0;
	return ran;
}

/* The earliest deadline of a timed event, UINT64_MAX if none. */
uint64_t
sim_loop_next_deadline(void)
{
	uint64_t t = UINT64_MAX;
	size_t i;

	for (i = 0; i < sim_nreg; i++)
		if (sim_reg[i]->se_timed && sim_reg[i]->se_deadline < t)
			t = sim_reg[i]->se_deadline;
	return t;
}

/* Events registered or active: 0 once a schedule is torn down. */
int
sim_loop_pending(void)
{
	return (int)(sim_nreg + sim_nact);
}

/* Forget every event (their owners are gone with the schedule). */
void
sim_loop_reset(void)
{
	sim_nreg = 0;
	sim_nact = 0;
	sim_acthead = 0;
}

/*
 * evdns: the simulation's hosts are numeric, so an answer is always at
 * hand and comes before evdns_getaddrinfo() returns, as libevent does
 * for a numeric host; anything else does not resolve.
 */
struct evdns_base {
	int db_unused;
};

struct evdns_base *
evdns_base_new(struct event_base *base, int flags)
{
	(void)base;
	(void)flags;
	return calloc(1, sizeof(struct evdns_base));
}

void
evdns_base_free(struct evdns_base *dns, int fail_requests)
{
	(void)fail_requests;
	free(dns);
}

struct evdns_getaddrinfo_request *
evdns_getaddrinfo(struct evdns_base *dns, const char *nodename,
    const char *servname, const struct evutil_addrinfo *hints,
    evdns_getaddrinfo_cb cb, void *arg)
{
	struct evutil_addrinfo *ai;
	struct sockaddr_in *sin;

	(void)dns;
	(void)servname;
	(void)hints;
	ai = calloc(1, sizeof(*ai) + sizeof(*sin));
	if (ai == NULL)
		abort();
	sin = (struct sockaddr_in *)(void *)(ai + 1);
	if (inet_pton(AF_INET, nodename, &sin->sin_addr) != 1) {
		free(ai);
		cb(EVUTIL_EAI_NONAME, NULL, arg);
		return NULL;
	}
	sin->sin_family = AF_INET;
	ai->ai_family = AF_INET;
	ai->ai_socktype = SOCK_STREAM;
	ai->ai_addr = (struct sockaddr *)sin;
	ai->ai_addrlen = sizeof(*sin);
	cb(0, ai, arg);
	return NULL;
}

void
evdns_getaddrinfo_cancel(struct evdns_getaddrinfo_request *req)
{
	(void)req;      /* never returned: every answer is immediate */
}

void
evutil_freeaddrinfo(struct evutil_addrinfo *ai)
{
	free(ai);
}

const char *
evutil_gai_strerror(int err)
{
	return err == EVUTIL_EAI_NONAME ? "unknown host" : "lookup failed";
}

const char *
evutil_inet_ntop(int af, const void *src, char *dst, size_t len)
{
	return inet_ntop(af, src, dst, (socklen_t)len);
}
