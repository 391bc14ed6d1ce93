/*
 * pidfile.h - the locked pidfile of the master.
 */
#ifndef HITCOUNTD_PIDFILE_H
#define HITCOUNTD_PIDFILE_H

/*
 * Create or take over path and lock it for the life of the process; a
 * second instance is refused with the running one's pid.  Returns 0, or -1
 * after logging.
 */
int pidfile_open(const char *path);

/* Write this process's pid into the pidfile (no-op without one). 0 / -1. */
int pidfile_write(void);

/*
 * For a binary upgrade: rename the pidfile to its name plus ".oldbin" (the
 * lock goes with it), so that the new master can create its own, or back
 * to its name when the upgrade failed.  Returns 0 or -1 (no-op without a
 * pidfile).
 */
int pidfile_rename_oldbin(void);
int pidfile_restore(void);

/*
 * Remove the pidfile under its current name, unless that name is now
 * another file (an aborted upgrade's old master took it back), and drop
 * the lock.
 */
void pidfile_remove(void);

/*
 * In a forked worker: close the descriptor, so that a worker outliving the
 * master cannot keep the lock that tells a new instance one is running.
 */
void pidfile_close_in_child(void);

#endif
