/*
 * sim.h - the deterministic simulation of the Redis path (tests/sim):
 * what its three files share.  sim_loop.c is the event loop and the
 * clock (virtual time), sim_redis.c the scripted fake Redis servers and
 * the connect interception, sim_main.c the schedules and the checks.
 */
#ifndef HITCOUNTD_SIM_H
#define HITCOUNTD_SIM_H

#include <stddef.h>
#include <stdint.h>

/* Virtual time, in microseconds since the schedule began. */
extern uint64_t sim_now_us;

/* The schedule's random source (xorshift, seeded per schedule). */
void sim_rng_seed(uint64_t seed);
uint64_t sim_rng(void);
/* A number in [0, n). */
uint64_t sim_rand(uint64_t n);
/* 1 with probability pm per mille. */
int sim_chance(int pm);

/* Trace lines, printed when SIM_VERBOSE is set (a replay). */
extern int sim_verbose;
void sim_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The loop (sim_loop.c). */
struct event_base *sim_loop_base(void);
/*
 * One loop turn as libevent runs it: when nothing is active, poll the
 * watched descriptors with zero timeout and take the expired timers, in
 * a seeded order; then run the active events, and those they activate,
 * until none is left.  Returns 1 if an event ran, 0 if none was ready.
 */
int sim_loop_turn(void);
/* The earliest timer deadline, or UINT64_MAX. */
uint64_t sim_loop_next_deadline(void);
/* Events still registered or active (0 after a clean teardown). */
int sim_loop_pending(void);
/* Forget everything registered (between schedules). */
void sim_loop_reset(void);

/*
 * The fake servers decide when a Redis connection's socket becomes
 * writable (slow or hanging connect): returns the first virtual time fd
 * may report EV_WRITE, 0 when it may now (sim_redis.c).
 */
uint64_t sim_redis_gate(int fd);

#endif

/* The fake Redis servers (sim_redis.c). */
enum sim_kind {
	SK_PRIMARY,     /* a plain Redis primary: the key lives here */
	SK_REPLICA,     /* READONLY to writes, "slave" to ROLE */
	SK_PLAIN,       /* not a cluster node, listed as a cluster seed */
	SK_CLUSTER,     /* a cluster node: serves the slot or redirects */
	SK_SENTINEL,    /* a Sentinel naming the primary */
	SK_HANG         /* accepts, never answers */
};

struct sim_node {
	char sn_ip[16];
	int sn_port;
	int sn_kind;
	int sn_refuse;          /* connect is refused */
	int sn_index;           /* its listener */
	long long sn_stray;     /* visits counted here, against I6 */
	/* Faults, per mille of commands or connections. */
	int sn_p_err;           /* an error reply instead of executing */
	int sn_p_delay;         /* a reply later than timeout_ms */
	int sn_p_cut;           /* the connection lost at some byte */
	int sn_p_hang;          /* the connection goes silent for good */
	int sn_p_slow;          /* a connect slower than timeout_ms, or hung */
};

#define SIM_NODES_MAX   8

/* The schedule's Redis world: the true value of the key, and who serves it. */
struct sim_world {
	long long sw_key;               /* on the primary that serves it */
	int sw_timeout_ms;              /* the daemon's, to script delays */
	unsigned sw_slot;               /* the key's cluster slot */
	struct sim_node *sw_owner;      /* cluster: the slot's primary */
	struct sim_node *sw_importing;  /* cluster: the key moved there (ASK) */
	struct sim_node *sw_primary;    /* sentinel: the primary now */
	struct sim_node sw_nodes[SIM_NODES_MAX];
	int sw_nnodes;
	long long sw_commands;          /* commands executed, for the summary */
};

extern struct sim_world sim_world;

/* Once per process: the listening sockets.  Returns 0 or -1. */
int sim_redis_init(void);
/* Once per process, at exit. */
void sim_redis_fini(void);
/* A node of the schedule's world at ip:port (zeroed faults). */
struct sim_node *sim_redis_node(const char *ip, int port, int kind);
/* Accept, read, execute and answer what is due at sim_now_us. */
void sim_redis_step(void);
/* The next virtual time a server has something to send, or UINT64_MAX. */
uint64_t sim_redis_next(void);
/* Close every server connection and forget the world (between schedules). */
void sim_redis_reset(void);
/* Sentinel mode: promote to, and announce it (+switch-master). */
void sim_redis_failover(struct sim_node *to);
