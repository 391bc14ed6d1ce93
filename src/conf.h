/*
 * conf.h - the configuration: what the file says, after validation and
 * environment overrides.  Loading, reloading and freeing struct conf
 * (confdata.h), for main.c and master.c; the rest of the daemon only
 * reads the struct.
 */
#ifndef HITCOUNTD_CONF_H
#define HITCOUNTD_CONF_H

#include <stddef.h>

#include "confdata.h"

/*
 * Read and validate the config file at path, then apply the environment
 * overrides (REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_URL), then read
 * the password files (a warning is logged for one that group or others
 * can read).  The TLS files are not read here: the caller does that with
 * redistls_attach() (cf_redis.tls_ctx is NULL until then).  Returns a new
 * conf owned by the caller (free with conf_free()), or NULL with a
 * one-line message in err, "FILE:LINE: reason" where the file is to
 * blame, "REDIS_URL: reason" where the environment is.  Binds nothing.
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);

/*
 * Before a reload puts next in force in place of cur: for each key that
 * only a restart can apply (pidfile, backlog), log a warning if next
 * changes it, and give next cur's value, so that next says what is in
 * force.  Returns 0, or -1 if out of memory.
 */
int conf_reload_keep(struct conf *next, const struct conf *cur);

/* Free a conf from conf_load().  NULL is allowed. */
void conf_free(struct conf *cf);

/*
 * Split "HOST:PORT" ("[v6]:PORT") without resolving anything.
 * Returns 0, or -1 if it is not of that form.  addr_split() with a
 * NUL-terminated text and no default port, kept until sentinel.c,
 * sentinelsub.c and redisconn.c call addr_split() themselves.
 */
int conf_split_hostport(const char *text, char *host, size_t hostlen,
    int *port);

/* The number of workers to run: cf_workers, or for 0 the CPUs this
 * process may use (cpus_usable(): affinity mask and cgroup quota). */
int conf_worker_count(const struct conf *cf);

#endif
