/*
 * worker.h - a worker process: serves clients until told to stop.
 */
#ifndef HITCOUNTD_WORKER_H
#define HITCOUNTD_WORKER_H

#include <stddef.h>

struct conf;

/* Exit status of a worker that must not be replaced (fatal init error). */
#define WORKER_EXIT_NORESPAWN 3

/*
 * Run a worker in the current (freshly forked) process: connect to Redis,
 * take connections from the listening sockets fds[0..nfds-1] and serve
 * them until the master's channel says stop (or SIGTERM/SIGQUIT, graceful;
 * SIGINT, immediate), or the channel closes (the master is gone).
 * admin[i] marks a metrics_listen socket (no counter page there).  chan,
 * if not -1, is the worker's end of its channel (channel.c): it gets
 * CHANNEL_READY once the worker serves, and is closed at the end.  The
 * master's signals must be blocked on entry; the worker unblocks them once
 * its handlers are in place.  Returns the process exit status.
 */
int worker_run(const struct conf *cf, const int *fds, const int *admin,
    size_t nfds, int chan);

/*
 * In the master, before the first worker is forked: the eventfd through
 * which workers that pause for balance wake their siblings (every worker
 * inherits it).  Returns 0, or -1 (logged) if the workers will not
 * balance their connections.
 */
int worker_balance_init(void);

#endif
