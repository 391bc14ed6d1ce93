/*
 * signals.h - the process-wide signal dispositions of the master and of
 * the processes it forks.
 */
#ifndef HITCOUNTD_SIGNALS_H
#define HITCOUNTD_SIGNALS_H

#include <signal.h>

/*
 * Master, at start: block the master's signals (CHLD, HUP, TERM, QUIT,
 * INT, USR1, USR2, WINCH, TTIN, TTOU), give each a handler that only
 * records its arrival for signals_take(), and ignore PIPE.  *unblocked is
 * the mask to wait with (ppoll()): the mask before the call without the
 * master's signals, so that they are delivered only while waiting.
 * Returns 0, or -1 after logging.
 */
int signals_master(sigset_t *unblocked);

/*
 * Master: 1 if sig arrived since the last call for it, else 0; the
 * record is cleared.  QUIT counts as TERM (ask for SIGTERM).  Only for the
 * signals signals_master() handles.
 */
int signals_take(int sig);

/*
 * In a child of the master, a worker or a binary upgrade's new master,
 * before it has handlers of its own: the master's signals that mean
 * nothing to it (HUP, USR2, WINCH, TTIN, TTOU) are ignored, the others
 * get their default action; they stay blocked as they were at the fork,
 * so that one arriving now waits for the handlers instead of killing the
 * process.  Dispositions and the mask both survive execve().
 */
void signals_child(void);

#endif
