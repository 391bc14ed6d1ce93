/*
 * master.h - the supervising process.
 */
#ifndef HITCOUNTD_MASTER_H
#define HITCOUNTD_MASTER_H

struct conf;

/* Set by -d: the log level stays at debug across reloads. */
extern int master_debug;

/*
 * Open the listening sockets of cf.  Returns 0, or -1 after logging which
 * address failed and why.  Called before detaching so errors reach the
 * terminal.
 */
int master_listen(struct conf *cf);

/*
 * Supervise: fork the workers, then handle signals until told to stop.
 * Takes ownership of cf.  Returns the process exit status.
 */
int master_run(struct conf *cf);

#endif
