/*
 * workertab.h - the master's table of its workers.
 */
#ifndef HITCOUNTD_WORKERTAB_H
#define HITCOUNTD_WORKERTAB_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

#include "channel.h"

/* What the master knows of one worker (worker.c's struct is the worker's). */
struct wstate {
	pid_t ws_pid;
	int ws_slot;                    /* its metrics slot, or -1 */
	int ws_gen;
	int ws_chan;                    /* master's end of the channel, or -1 */
	int ws_ready;
	int ws_stopping;                /* told to stop: its exit is expected */
	int ws_killed;                  /* SIGKILL tried once already */
};

/* The workers alive, in no order; zeroed is empty. */
struct workertab {
	struct wstate *wt_w;
	size_t wt_n, wt_cap;
};

/*
 * Make room for one more worker, before forking it, so that recording it
 * afterwards (workertab_add()) cannot fail.  Returns 0, or -1 after
 * logging.
 */
int workertab_reserve(struct workertab *wt);

/*
 * Record a worker just forked: pid of generation gen, with metrics slot
 * slot and the master's end chan of its channel, both now the table's.
 * workertab_reserve() must have succeeded since the last add.
 */
void workertab_add(struct workertab *wt, pid_t pid, int gen, int slot,
    int chan);

/* The index of the worker pid, or wt->wt_n if it is not one. */
size_t workertab_find(const struct workertab *wt, pid_t pid);

/*
 * Forget the worker at index i after its exit: release its metrics slot
 * and close its channel.  The last entry takes its place.
 */
void workertab_forget(struct workertab *wt, size_t i);

/* Forget every worker and free the table. */
void workertab_clear(struct workertab *wt);

/*
 * In a freshly forked child: close the master's end of every channel,
 * which are the master's only (the table itself stays as it was).
 */
void workertab_close_in_child(const struct workertab *wt);

/* The workers of generation gen, or only those not told to stop. */
int workertab_count(const struct workertab *wt, int gen, int running_only);

/*
 * 1 if generation gen has workers not told to stop and every one of them
 * has reported that it serves, else 0.
 */
int workertab_gen_ready(const struct workertab *wt, int gen);

/*
 * Send msg over the worker's channel; only if the channel is gone, fall
 * back to the signal that means the same to a worker (STOP: TERM, HALT:
 * INT, REOPEN: USR1; DRAIN has none).
 */
void workertab_command(const struct wstate *w, enum channel_msg msg);

/* workertab_command() to every worker. */
void workertab_command_all(const struct workertab *wt, enum channel_msg msg);

/*
 * Mark every worker of generation gen (or all, for gen -1) as told to
 * stop, and send it how (CHANNEL_STOP or CHANNEL_HALT).
 */
void workertab_stop_gen(struct workertab *wt, int gen, enum channel_msg how);

/*
 * Stop gracefully the newest worker of generation gen that is not told to
 * stop yet (there must be one).
 */
void workertab_stop_one(struct workertab *wt, int gen);

/* SIGKILL to every worker of generation gen, wherever it is stuck. */
void workertab_kill_gen(const struct workertab *wt, int gen);

/* SIGKILL to every worker: the last resort after their own deadline. */
void workertab_kill_all(struct workertab *wt);

/*
 * Fill pfd (room for wt->wt_n entries) with the channels of the workers
 * not ready yet, the only ones with something to say.  Returns how many.
 */
size_t workertab_pollfds(const struct workertab *wt, struct pollfd *pfd);

/*
 * fd, a channel of workertab_pollfds(), is readable or closed: note the
 * worker's readiness, or close a channel whose worker is exiting.  Does
 * nothing if fd is no worker's channel.
 */
void workertab_read(struct workertab *wt, int fd);

#endif
