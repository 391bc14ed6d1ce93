/*
 * confsecret.c - the password files: password_file and
 * sentinel_password_file read into the passwords they stand for.
 *
 * A password kept in a file of its own (a Docker or Kubernetes secret)
 * stays out of the configuration file and of the environment.  The file
 * is read when the configuration is loaded, in the master, so that -t
 * finds a missing one and a reload reads a changed one; it must hold the
 * password alone on one line, and one that its group or others can read
 * works with a warning.  The buffers are wiped after use.  It calls
 * log.c; conf.c calls it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "confdata.h"
#include "confsecret.h"
#include "log.h"

/* The longest password a password file may hold. */
#define CONFSECRET_MAX 4096

/*
 * The password in the file at path, for key: the file's one line, without
 * its newline, into *dst.  A file that group or others can read works,
 * with a warning.
 */
static int
confsecret_read(const struct conf *cf, const char *key, const char *path,
    char **dst, char *err, size_t errlen)
{
	char buf[CONFSECRET_MAX + 2], *s = NULL;
	struct stat st;
	ssize_t n = 0, got;
	int fd;

	/* O_NONBLOCK: a FIFO put there must not hang the master. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1 || fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: option '%s': %s: %s", cf->cf_path,
		    key, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: option '%s': %s is not a regular "
		    "file", cf->cf_path, key, path);
		goto out;
	}
	while (n < (ssize_t)sizeof(buf) - 1 &&
	    (got = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += got;
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n == 0 || n > CONFSECRET_MAX || strlen(buf) != (size_t)n ||
	    strchr(buf, '\n') != NULL) {
		snprintf(err, errlen, "%s: option '%s': %s must hold the "
		    "password alone, on one line of at most %d bytes",
		    cf->cf_path, key, path, CONFSECRET_MAX);
		goto out;
	}
	if ((s = strdup(buf)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", cf->cf_path);
		goto out;
	}
	if (st.st_mode & (S_IRGRP | S_IROTH))
		log_warnx("%s: option '%s': %s can be read by %s (mode %04o): "
		    "make it readable by its owner only", cf->cf_path, key,
		    path, (st.st_mode & S_IROTH) ? "anyone" : "its group",
		    (unsigned int)(st.st_mode & 07777));
	free(*dst);
	*dst = s;
out:
	explicit_bzero(buf, sizeof(buf));
	if (fd != -1)
		close(fd);
	return s != NULL ? 0 : -1;
}

/* Read password_file and sentinel_password_file, those that are set. */
int
confsecret_read_all(struct conf *cf, char *err, size_t errlen)
{
	if (cf->cf_redis.password_file[0] && confsecret_read(cf,
	    "password_file", cf->cf_redis.password_file, &cf->cf_redis.password,
	    err, errlen) == -1)
		return -1;
	if (cf->cf_redis.sentinel_password_file[0] && confsecret_read(cf,
	    "sentinel_password_file", cf->cf_redis.sentinel_password_file,
	    &cf->cf_redis.sentinel_password, err, errlen) == -1)
		return -1;
	return 0;
}
