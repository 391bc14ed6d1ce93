/*
 * confcheck.c - the rules between configuration keys, once all are read.
 *
 * A value can be wrong only beside another: metrics_listen repeating a
 * listen address, metrics_path equal to readyz_path, a password given
 * both in the file and in password_file, cluster with sentinels or a Unix
 * socket or a database other than 0, TLS over a socket or with
 * sentinels.  These are checked on struct conf after the environment is
 * applied, so that a rule broken by REDIS_URL is found too.  The user and
 * group the workers run as are looked up here as well, since refusing to
 * run workers as root depends on them.  It calls libc alone; conf.c
 * calls it.  Errors begin with the file's name (there is no one line to
 * blame).
 */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "confdata.h"
#include "confcheck.h"

/*
 * The uid and gid the workers run as when the daemon starts as root:
 * user's, with group overriding user's primary group.
 */
static int
confcheck_ids(struct conf *cf, char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;

	cf->cf_uid = 0;
	cf->cf_gid = 0;
	if (cf->cf_user[0]) {
		pw = getpwnam(cf->cf_user);
		if (pw == NULL) {
			snprintf(err, errlen, "%s: no such user '%s'",
			    cf->cf_path, cf->cf_user);
			return -1;
		}
		cf->cf_uid = pw->pw_uid;
		cf->cf_gid = pw->pw_gid;
	}
	if (cf->cf_group[0]) {
		gr = getgrnam(cf->cf_group);
		if (gr == NULL) {
			snprintf(err, errlen, "%s: no such group '%s'",
			    cf->cf_path, cf->cf_group);
			return -1;
		}
		cf->cf_gid = gr->gr_gid;
	}
	return 0;
}

/*
 * Rules between keys, and about the user we run as, which the per-key
 * validators cannot see.
 */
static int
confcheck_consistency(const struct conf *cf, char *err, size_t errlen)
{
	size_t i, j;

	for (i = 0; i < cf->cf_nlisten; i++)
		for (j = i + 1; j < cf->cf_nlisten; j++) {
			const struct conf_listen *a = &cf->cf_listen[i];
			const struct conf_listen *b = &cf->cf_listen[j];

			if (a->cfl_admin == b->cfl_admin ||
			    a->cfl_addrlen != b->cfl_addrlen ||
			    memcmp(&a->cfl_addr, &b->cfl_addr,
			    a->cfl_addrlen) != 0)
				continue;
			snprintf(err, errlen, "%s: option 'metrics_listen': '%s' "
			    "is also a 'listen' address", cf->cf_path,
			    b->cfl_text);
			return -1;
		}
	if (cf->cf_metrics_path[0] &&
	    strcmp(cf->cf_metrics_path, cf->cf_readyz_path) == 0) {
		snprintf(err, errlen, "%s: options 'metrics_path' and "
		    "'readyz_path' are both '%s'", cf->cf_path,
		    cf->cf_metrics_path);
		return -1;
	}
	if (cf->cf_access_log[0] && strcmp(cf->cf_access_log, "stderr") != 0 &&
	    cf->cf_access_log[0] != '/') {
		snprintf(err, errlen, "%s: option 'access_log': '%s' is not an "
		    "absolute path (the daemon runs in /)", cf->cf_path,
		    cf->cf_access_log);
		return -1;
	}
	if (geteuid() == 0 && cf->cf_uid == 0 && !cf->cf_allow_root) {
		snprintf(err, errlen, "%s: refusing to run workers as root: set "
		    "'user' to an unprivileged user, or allow_root = true",
		    cf->cf_path);
		return -1;
	}
	return 0;
}

/*
 * The password of Redis (pre "") or of the sentinels (pre "sentinel_"):
 * given one way only, and there for a user name.
 */
static int
confcheck_auth(const struct conf *cf, const char *pre, const char *user,
    const char *password, const char *file, char *err, size_t errlen)
{
	if (password[0] && file[0]) {
		snprintf(err, errlen, "%s: options '%spassword' and "
		    "'%spassword_file' are both set; keep one", cf->cf_path,
		    pre, pre);
		return -1;
	}
	if (user[0] && !password[0] && !file[0]) {
		snprintf(err, errlen, "%s: option '%susername' needs a password "
		    "('%spassword' or '%spassword_file'%s)", cf->cf_path, pre,
		    pre, pre, pre[0] ? "" : ", or REDIS_PASSWORD");
		return -1;
	}
	return 0;
}

/*
 * A cluster is found through its seeds alone, over TCP, and has only
 * database 0: the keys that say otherwise cannot go with 'cluster'.
 */
static int
confcheck_cluster(const struct conf *cf, char *err, size_t errlen)
{
	const char *other = NULL;

	if (cf->cf_redis.ncluster == 0)
		return 0;
	if (cf->cf_redis.nsentinels > 0)
		other = "option 'sentinels'";
	else if (cf->cf_redis.socket[0])
		other = "option 'socket' (or a unix:// REDIS_URL)";
	else if (cf->cf_redis.db != 0) {
		snprintf(err, errlen, "%s: option 'cluster' needs database 0 "
		    "(a cluster has no other), not %d (option 'db' or "
		    "REDIS_URL's path)", cf->cf_path, cf->cf_redis.db);
		return -1;
	}
	if (other == NULL)
		return 0;
	snprintf(err, errlen, "%s: %s and option 'cluster' exclude each other",
	    cf->cf_path, other);
	return -1;
}

/*
 * TLS goes to the primary over TCP only: the sentinels are not reached
 * over TLS (so they cannot be trusted to name a primary for it), and a
 * Unix socket needs none.  A client certificate needs its key.
 */
static int
confcheck_tls(const struct conf *cf, char *err, size_t errlen)
{
	const char *why = NULL;

	if (!cf->cf_redis.tls)
		return 0;
	if (cf->cf_redis.socket[0])
		why = "does not go over a Unix socket ('socket' or unix://)";
	else if (cf->cf_redis.nsentinels > 0)
		why = "is not supported with 'sentinels' (hitcountd does not "
		    "reach sentinels over TLS)";
	else if (!cf->cf_redis.tls_cert_file[0] != !cf->cf_redis.tls_key_file[0])
		why = "takes 'tls_cert_file' and 'tls_key_file' together, or "
		    "neither";
	if (why == NULL)
		return 0;
	snprintf(err, errlen, "%s: TLS to Redis (tls = true, or a rediss:// "
	    "REDIS_URL) %s", cf->cf_path, why);
	return -1;
}

/* Rules between the keys of the redis section. */
static int
confcheck_redis(const struct conf *cf, char *err, size_t errlen)
{
	if (confcheck_auth(cf, "", cf->cf_redis.username,
	    cf->cf_redis.password, cf->cf_redis.password_file, err,
	    errlen) == -1 ||
	    confcheck_auth(cf, "sentinel_", cf->cf_redis.sentinel_username,
	    cf->cf_redis.sentinel_password,
	    cf->cf_redis.sentinel_password_file, err, errlen) == -1)
		return -1;
	if (cf->cf_redis.socket[0] && cf->cf_redis.nsentinels > 0) {
		snprintf(err, errlen, "%s: option 'socket' (or a unix:// "
		    "REDIS_URL) and option 'sentinels' exclude each other",
		    cf->cf_path);
		return -1;
	}
	if (confcheck_cluster(cf, err, errlen) == -1)
		return -1;
	return confcheck_tls(cf, err, errlen);
}

int
confcheck_all(struct conf *cf, char *err, size_t errlen)
{
	if (confcheck_ids(cf, err, errlen) == -1 ||
	    confcheck_consistency(cf, err, errlen) == -1)
		return -1;
	return confcheck_redis(cf, err, errlen);
}
