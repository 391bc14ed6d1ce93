/*
 * master.h - the supervising process.
 */
#ifndef HITCOUNTD_MASTER_H
#define HITCOUNTD_MASTER_H

struct conf;
struct listen_set;

/* Set by -d: the log level stays at debug across reloads. */
extern int master_debug;

/*
 * Supervise: fork the workers, then handle signals until told to stop.
 * Takes ownership of cf; ls holds the listening sockets, those in use by
 * cf marked LISTEN_CUR (listen.c), and is emptied on return.  report_fd,
 * if not -1, is where a master started by a binary upgrade reports that
 * its workers serve (upgrade.c).  Returns the process exit status.
 */
int master_run(struct conf *cf, struct listen_set *ls, int report_fd);

#endif
