/*
 * confsecret.h - the password files, read into the passwords.
 */
#ifndef HITCOUNTD_CONFSECRET_H
#define HITCOUNTD_CONFSECRET_H

#include <stddef.h>

struct conf;

/*
 * For password_file and sentinel_password_file, those that are set: read
 * the file's one line, without its newline, into cf_redis.password or
 * cf_redis.sentinel_password (replacing it).  Logs a warning for a file
 * its group or others can read.  Returns 0, or -1 with "FILE: option
 * 'KEY': reason" in err.
 */
int confsecret_read_all(struct conf *cf, char *err, size_t errlen);

#endif
