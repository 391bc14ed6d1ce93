/*
 * workertab.c - the master's table of its workers.
 *
 * Owns the master's view of each worker (struct wstate: pid, generation,
 * metrics slot, the master's end of its channel, whether it serves and
 * whether it was told to stop) and what is done to workers as a set:
 * counting a generation, commanding it over the channels (channel.c),
 * with a signal as the fallback for a worker whose channel is gone, and
 * killing it.  It decides nothing: when to fork, replace, stop or kill a
 * worker is the master's (master.c), as the fork itself is spawn.c's.
 *
 * Calls channel.c, metrics.c (a worker's slot is released with its entry)
 * and log.c.  Called by master.c and spawn.c.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "log.h"
#include "metrics.h"
#include "workertab.h"

int
workertab_reserve(struct workertab *wt)
{
	struct wstate *w;
	size_t ncap;

	if (wt->wt_n < wt->wt_cap)
		return 0;
	ncap = wt->wt_cap ? wt->wt_cap * 2 : 8;
	w = realloc(wt->wt_w, ncap * sizeof(*w));
	if (w == NULL) {
		log_warn("realloc");
		return -1;
	}
	wt->wt_w = w;
	wt->wt_cap = ncap;
	return 0;
}

void
workertab_add(struct workertab *wt, pid_t pid, int gen, int slot, int chan)
{
	struct wstate *w = &wt->wt_w[wt->wt_n++];

	memset(w, 0, sizeof(*w));
	w->ws_pid = pid;
	w->ws_gen = gen;
	w->ws_slot = slot;
	w->ws_chan = chan;
}

size_t
workertab_find(const struct workertab *wt, pid_t pid)
{
	size_t i;

	for (i = 0; i < wt->wt_n; i++)
		if (wt->wt_w[i].ws_pid == pid)
			break;
	return i;
}

void
workertab_forget(struct workertab *wt, size_t i)
{
	struct wstate *w = &wt->wt_w[i];

	metrics_slot_release(w->ws_slot);
	if (w->ws_chan != -1)
		close(w->ws_chan);
	wt->wt_w[i] = wt->wt_w[--wt->wt_n];
}

void
workertab_clear(struct workertab *wt)
{
	while (wt->wt_n > 0)
		workertab_forget(wt, wt->wt_n - 1);
	free(wt->wt_w);
	memset(wt, 0, sizeof(*wt));
}

void
workertab_close_in_child(const struct workertab *wt)
{
	size_t i;

	for (i = 0; i < wt->wt_n; i++)
		if (wt->wt_w[i].ws_chan != -1)
			close(wt->wt_w[i].ws_chan);
}

int
workertab_count(const struct workertab *wt, int gen, int running_only)
{
	size_t i;
	int n = 0;

	for (i = 0; i < wt->wt_n; i++)
		if (wt->wt_w[i].ws_gen == gen &&
		    (!running_only || !wt->wt_w[i].ws_stopping))
			n++;
	return n;
}

int
workertab_gen_ready(const struct workertab *wt, int gen)
{
	size_t i;
	int n = 0;

	for (i = 0; i < wt->wt_n; i++) {
		if (wt->wt_w[i].ws_gen != gen || wt->wt_w[i].ws_stopping)
			continue;
		if (!wt->wt_w[i].ws_ready)
			return 0;
		n++;
	}
	return n > 0;
}

void
workertab_command(const struct wstate *w, enum channel_msg msg)
{
	int sig;

	if (w->ws_chan != -1 && channel_send(w->ws_chan, msg) == 0)
		return;
	switch (msg) {
	case CHANNEL_STOP: sig = SIGTERM; break;
	case CHANNEL_HALT: sig = SIGINT; break;
	case CHANNEL_REOPEN: sig = SIGUSR1; break;
	default: return;
	}
	log_debug("worker %ld: channel closed, sending signal %d",
	    (long)w->ws_pid, sig);
	if (kill(w->ws_pid, sig) == -1 && errno != ESRCH)
		log_warn("kill %ld", (long)w->ws_pid);
}

void
workertab_command_all(const struct workertab *wt, enum channel_msg msg)
{
	size_t i;

	for (i = 0; i < wt->wt_n; i++)
		workertab_command(&wt->wt_w[i], msg);
}

void
workertab_stop_gen(struct workertab *wt, int gen, enum channel_msg how)
{
	size_t i;

	for (i = 0; i < wt->wt_n; i++) {
		if (gen != -1 && wt->wt_w[i].ws_gen != gen)
			continue;
		wt->wt_w[i].ws_stopping = 1;
		workertab_command(&wt->wt_w[i], how);
	}
}

void
workertab_stop_one(struct workertab *wt, int gen)
{
	size_t i;

	for (i = wt->wt_n; i-- > 0;)
		if (wt->wt_w[i].ws_gen == gen && !wt->wt_w[i].ws_stopping)
			break;
	log_info("stopping worker %ld", (long)wt->wt_w[i].ws_pid);
	wt->wt_w[i].ws_stopping = 1;
	workertab_command(&wt->wt_w[i], CHANNEL_STOP);
}

void
workertab_kill_gen(const struct workertab *wt, int gen)
{
	size_t i;

	for (i = 0; i < wt->wt_n; i++)
		if (wt->wt_w[i].ws_gen == gen &&
		    kill(wt->wt_w[i].ws_pid, SIGKILL) == -1 && errno != ESRCH)
			log_warn("kill %ld", (long)wt->wt_w[i].ws_pid);
}

void
workertab_kill_all(struct workertab *wt)
{
	size_t i;

	for (i = 0; i < wt->wt_n; i++) {
		struct wstate *w = &wt->wt_w[i];

		if (kill(w->ws_pid, SIGKILL) == -1 && errno != ESRCH &&
		    !w->ws_killed)
			log_warn("kill %ld", (long)w->ws_pid);
		w->ws_killed = 1;
	}
}

size_t
workertab_pollfds(const struct workertab *wt, struct pollfd *pfd)
{
	size_t i, n = 0;

	for (i = 0; i < wt->wt_n; i++) {
		if (wt->wt_w[i].ws_chan == -1 || wt->wt_w[i].ws_ready)
			continue;
		pfd[n].fd = wt->wt_w[i].ws_chan;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
	return n;
}

void
workertab_read(struct workertab *wt, int fd)
{
	struct wstate *w;
	char buf[16];
	size_t i;
	int n;

	for (i = 0; i < wt->wt_n; i++)
		if (wt->wt_w[i].ws_chan == fd)
			break;
	if (i == wt->wt_n)
		return;
	w = &wt->wt_w[i];
	n = channel_recv(fd, buf, sizeof(buf));
	if (n > 0 && memchr(buf, CHANNEL_READY, (size_t)n) != NULL)
		w->ws_ready = 1;
	else if (n == 0) {
		/* Exiting: commands now go by signal, if at all. */
		close(w->ws_chan);
		w->ws_chan = -1;
	}
}
