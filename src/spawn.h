/*
 * spawn.h - forking a worker.
 */
#ifndef HITCOUNTD_SPAWN_H
#define HITCOUNTD_SPAWN_H

struct conf;
struct listen_set;
struct workertab;

/* What a worker about to be forked joins, uses and must let go of. */
struct spawn_ctx {
	struct workertab *sc_wt;        /* the master's table: joined */
	struct listen_set *sc_ls;       /* the master's sockets */
	unsigned sc_use;                /* the worker's: LISTEN_CUR or _NEXT */
	int sc_debug;                   /* -d: the log level stays at debug */
	int sc_delay;                   /* HITCOUNTD_TEST_READY_DELAY_MS applies */
	int sc_close[2];                /* the master's own descriptors, or -1 */
};

/*
 * Fork one worker of generation gen with configuration cf, and record it
 * in sc->sc_wt.  The child sheds what is the master's (its signal
 * handlers, the other workers' channels, sc_close, the pidfile's lock,
 * the sockets it does not serve), becomes cf's user and runs worker_run()
 * (worker.c); it exits with WORKER_EXIT_NORESPAWN if it cannot start.
 * Returns 0, or -1 after logging (nothing was forked).
 */
int spawn_worker(const struct spawn_ctx *sc, const struct conf *cf, int gen);

#endif
