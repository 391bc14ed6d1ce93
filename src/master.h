/*
 * master.h - the supervising process.
 */
#ifndef HITCOUNTD_MASTER_H
#define HITCOUNTD_MASTER_H

struct conf;
struct listen_set;

/*
 * Supervise: fork the workers, then handle signals until told to stop.
 * Takes ownership of cf; ls holds the listening sockets, those in use by
 * cf marked LISTEN_CUR (listen.c), and is emptied on return.  report_fd,
 * if not -1, is where a master started by a binary upgrade reports that
 * its workers serve (upgrade.c).  debug (-d) keeps the log level at debug
 * across reloads.  Returns the process exit status.
 */
int master_run(struct conf *cf, struct listen_set *ls, int report_fd,
    int debug);

#endif
