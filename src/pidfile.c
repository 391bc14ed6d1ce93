/*
 * pidfile.c - the locked pidfile of the master.
 *
 * The pidfile is opened and locked before anything else, so that a second
 * instance is refused with a clear message (rather than "address in
 * use") while the first still runs.  The lock (flock) is held for the life
 * of the master and survives the fork of detaching; a stale file left by a
 * dead process is not locked and is simply taken over.  A binary upgrade
 * renames it to NAME.oldbin, as nginx does, so that the old and the new
 * master each hold a locked pidfile until the old one exits.  When the
 * upgrade is aborted, the old master renames its file back over the new
 * master's at once, while the new one may still be stopping: a master
 * therefore removes the name only while it still names its own file.
 *
 * Owns the pidfile's descriptor, lock and names.  Calls only log.c.
 * Called by main.c (open, write, remove), master.c (the .oldbin rename
 * and its undoing) and spawn.c (a worker lets go of the descriptor).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "log.h"
#include "pidfile.h"

static int pf_fd = -1;
static char *pf_path;           /* as configured */
static char *pf_oldbin;         /* pf_path ".oldbin" */
static const char *pf_now;      /* the name it has now: one of the two */

/*
 * Make the directory the pidfile is in, when it is missing: the default
 * /run/hitcountd/ is systemd's RuntimeDirectory for the unit, and must
 * also exist when the daemon is started without it.  Returns 0 or -1.
 */
static int
pidfile_mkdir(const char *path)
{
	char *dir = strdup(path), *slash;
	int rc = 0;

	if (dir == NULL)
		return -1;
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
			log_warn("mkdir %s", dir);
			rc = -1;
		}
	}
	free(dir);
	return rc;
}

int
pidfile_open(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1 && errno == ENOENT && pidfile_mkdir(path) == 0)
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_warn("pidfile %s", path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			n = read(fd, buf, sizeof(buf) - 1);
			buf[n > 0 ? n : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			log_warnx("pidfile %s: another hitcountd is running "
			    "(pid %s)", path, buf[0] ? buf : "unknown");
		} else
			log_warn("flock %s", path);
		close(fd);
		return -1;
	}
	pf_path = strdup(path);
	if (pf_path == NULL || asprintf(&pf_oldbin, "%s.oldbin", path) == -1) {
		log_warn("pidfile %s", path);
		free(pf_path);
		pf_path = NULL;
		pf_oldbin = NULL;
		close(fd);
		return -1;
	}
	pf_fd = fd;
	pf_now = pf_path;
	return 0;
}

int
pidfile_write(void)
{
	char buf[32];
	int n;

	if (pf_fd == -1)
		return 0;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(pf_fd, 0) == -1 || pwrite(pf_fd, buf, n, 0) != n) {
		log_warn("pidfile %s", pf_now);
		return -1;
	}
	return 0;
}

static int
pidfile_move(const char *to)
{
	if (pf_fd == -1 || pf_now == to)
		return 0;
	if (rename(pf_now, to) == -1) {
		log_warn("rename %s to %s", pf_now, to);
		return -1;
	}
	pf_now = to;
	return 0;
}

int
pidfile_rename_oldbin(void)
{
	return pidfile_move(pf_oldbin);
}

int
pidfile_restore(void)
{
	return pidfile_move(pf_path);
}

/* Whether pf_now still names the file pf_fd has open (and locked). */
static int
pidfile_still_ours(void)
{
	struct stat at, held;

	if (stat(pf_now, &at) == -1) {
		if (errno != ENOENT)
			log_warn("stat %s", pf_now);
		return 0;
	}
	if (fstat(pf_fd, &held) == -1) {
		log_warn("fstat %s", pf_now);
		return 0;
	}
	if (at.st_dev != held.st_dev || at.st_ino != held.st_ino) {
		log_info("pidfile %s now belongs to another master; left in "
		    "place", pf_now);
		return 0;
	}
	return 1;
}

void
pidfile_remove(void)
{
	if (pf_fd == -1)
		return;
	if (pidfile_still_ours() && unlink(pf_now) == -1)
		log_warn("unlink %s", pf_now);
	close(pf_fd);
	pf_fd = -1;
	free(pf_path);
	free(pf_oldbin);
	pf_path = pf_oldbin = NULL;
	pf_now = NULL;
}

void
pidfile_close_in_child(void)
{
	if (pf_fd != -1)
		close(pf_fd);
	pf_fd = -1;
}
