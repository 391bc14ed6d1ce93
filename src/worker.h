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
 * them until SIGTERM/SIGQUIT (graceful) or SIGINT (immediate).  admin[i]
 * marks a metrics_listen socket (no counter page there).  ready_fd, if
 * not -1, gets one byte once the worker is serving, then is closed.
 * Returns the process exit status.
 */
int worker_run(const struct conf *cf, const int *fds, const int *admin,
    size_t nfds, int ready_fd);

#endif
