/*
 * upgrade.h - replacing the running binary without losing a request.
 */
#ifndef HITCOUNTD_UPGRADE_H
#define HITCOUNTD_UPGRADE_H

#include <sys/types.h>

struct listen_set;

/*
 * Remember, at start, the binary (/proc/self/exe, read before it can be
 * replaced) and the arguments a binary upgrade will execute again.
 * argv must stay valid for the life of the process.  Returns 0 or -1.
 */
int upgrade_init(char **argv);

/*
 * Old master: fork and execute the binary on disk again, handing over the
 * listening sockets of ls as LISTEN_FDS (named "http" or "metrics").
 * *pid is the new master, *fd the read end of the pipe on which it
 * reports that it serves (upgrade_poll()).  Returns 0, or -1 after
 * logging (nothing was started).
 */
int upgrade_start(const struct listen_set *ls, pid_t *pid, int *fd);

/*
 * Old master, when fd is readable: 1 once the new master has reported
 * that its workers serve (*newpid is its pid), 0 if its report is not
 * complete yet, -1 if the pipe closed first (the new master failed).
 */
int upgrade_poll(int fd, pid_t *newpid);

/*
 * New master, at start: the descriptor on which to report readiness if
 * this process was started by a binary upgrade, else -1; *activated is
 * set when the sockets handed over were the service manager's.  Clears
 * the variables of the hand-over from the environment.
 */
int upgrade_inherited(int *activated);

/*
 * New master: report on fd that it serves.  Keep fd open: the old master
 * keeps its end until it has drained and exited, so that fd's end of file
 * (POLLERR on this end) tells when the hand-over is complete.  Returns 0,
 * or -1 (the old master is gone already).
 */
int upgrade_report_ready(int fd);

#endif
