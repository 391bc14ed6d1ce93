/*
 * acceptq.h - a worker's accept thread, and the queue through which it
 * hands accepted sockets to the worker's loop.
 */
#ifndef HITCOUNTD_ACCEPTQ_H
#define HITCOUNTD_ACCEPTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct acceptq;

/* An accepted socket, as acceptq_take() gives it. */
struct acceptq_conn {
	int ac_fd;
	int ac_admin;                   /* from a metrics_listen socket */
	struct sockaddr_storage ac_ss;
};

/*
 * Start the accept thread of the listening sockets fds[0..n-1] (admin[i]
 * marks a metrics_listen one), registered exclusive (EPOLLEXCLUSIVE) so
 * that a new connection wakes one worker's thread.  It takes connections
 * only once acceptq_set() says so, and at most credit of them before
 * acceptq_give() returns some.  It counts its wakeups for new connections
 * into *wakeups, and those that found none into *empty (either may be
 * NULL); it is their only writer.  Returns NULL, after logging, if the
 * kernel or the process cannot (the caller then polls the sockets).
 */
struct acceptq *acceptq_start(const int *fds, const int *admin, size_t n,
    int credit, uint64_t *wakeups, uint64_t *empty);

/*
 * The descriptor to watch edge-triggered (EV_ET): each edge says that
 * acceptq_take() has sockets.  It stays readable; never read it.
 */
int acceptq_fd(const struct acceptq *aq);

/* Take connections (on) or leave them to the other workers (off). */
void acceptq_set(struct acceptq *aq, int on);

/* n more connections may be taken (a client's socket was closed). */
void acceptq_give(struct acceptq *aq, int n);

/*
 * Look at the listeners again now, even with no new wakeup: connections
 * another worker left waiting (it paused) would wake nobody.
 */
void acceptq_poke(struct acceptq *aq);

/*
 * Move up to max accepted sockets into out, oldest first; the caller owns
 * them.  Logs what the thread could not do since the last call.  Returns
 * how many.
 */
size_t acceptq_take(struct acceptq *aq, struct acceptq_conn *out,
    size_t max);

/*
 * Stop the thread and wait for it: from the return on, no connection is
 * accepted any more.  Those already accepted stay for acceptq_take().
 */
void acceptq_stop(struct acceptq *aq);

/* Stop the thread if it runs, close what was not taken, free aq. */
void acceptq_free(struct acceptq *aq);

#endif
