/*
 * confenv.c - the environment over the configuration file.
 *
 * Containers and platforms say where Redis is in the environment:
 * REDIS_HOST and REDIS_PORT (the original Docker setup; REDIS_PORT may be
 * Docker links' tcp://HOST:PORT), REDIS_PASSWORD, and REDIS_URL, which
 * wins over the others.  They are set into the parsed file (libconfuse's
 * cfg_t) before struct conf is filled, so that the rules between keys
 * (confcheck.c) and -T see the values in force.  It calls redisurl.c
 * (taking a REDIS_URL apart), addr.c and conf.c's table (the range of
 * db); conf.c calls it.  An error begins with the variable's name, and
 * never quotes a REDIS_URL, which may hold a password.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <confuse.h>

#include "addr.h"
#include "confenv.h"
#include "confkey.h"
#include "redisurl.h"

/*
 * REDIS_HOST and REDIS_PORT, as the original Docker setup passes them.
 * REDIS_PORT may also be in the "tcp://HOST:PORT" form that Docker's
 * legacy links export.  Either names a TCP address: socket is not used.
 */
static int
confenv_hostport(cfg_t *cfg, char *err, size_t errlen)
{
	cfg_t *redis = cfg_getsec(cfg, "redis");
	const char *host = getenv("REDIS_HOST");
	const char *port = getenv("REDIS_PORT");

	if (port && *port && strncmp(port, "tcp://", 6) == 0) {
		char linkhost[ADDR_HOST_MAX], why[128];
		int p;

		if (addr_split(port + 6, strlen(port + 6), 0, linkhost,
		    sizeof(linkhost), &p, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "REDIS_PORT: '%s' is not "
			    "tcp://HOST:PORT: %s", port, why);
			return -1;
		}
		cfg_setint(redis, "port", p);
		if (host == NULL || *host == '\0')
			cfg_setstr(redis, "host", linkhost);
	} else if (port && *port) {
		int p = addr_port(port, strlen(port));

		if (p == -1) {
			snprintf(err, errlen, "REDIS_PORT: '%s' is not a port "
			    "number (1..65535)", port);
			return -1;
		}
		cfg_setint(redis, "port", p);
	}
	if (host && *host)
		cfg_setstr(redis, "host", host);
	if ((host && *host) || (port && *port))
		cfg_setstr(redis, "socket", "");
	return 0;
}

/*
 * rediss:// turns TLS on, with the tls_* keys of the file (the system's
 * CAs when it names none).  A build without TLS refuses it when the
 * TLS context is made (redistls_attach()).
 */
static void
confenv_tls(cfg_t *redis)
{
	cfg_setbool(redis, "tls", cfg_true);
}

/* Set db to the URL's database, if in the range of the key. */
static int
confenv_db(cfg_t *redis, long db, char *err, size_t errlen)
{
	const struct conf_key *k = confkey_find("db");

	if (db < k->k_min || db > k->k_max) {
		snprintf(err, errlen, "REDIS_URL: database %ld is out of range "
		    "(%ld..%ld)", db, k->k_min, k->k_max);
		return -1;
	}
	cfg_setint(redis, "db", db);
	return 0;
}

/*
 * REDIS_URL, which wins over REDIS_HOST, REDIS_PORT and REDIS_PASSWORD:
 * the address (a port left out is 6379) or the socket, and the database,
 * user name and password where the URL has them.
 */
static int
confenv_url(cfg_t *cfg, char *err, size_t errlen)
{
	cfg_t *redis = cfg_getsec(cfg, "redis");
	const char *url = getenv("REDIS_URL");
	struct redisurl u;
	char why[256];
	int rc = -1;

	if (url == NULL || *url == '\0')
		return 0;
	if (redisurl_parse(url, &u, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "REDIS_URL: %s", why);
		return -1;
	}
	if (u.ru_tls)
		confenv_tls(redis);
	if (u.ru_db != -1 && confenv_db(redis, u.ru_db, err, errlen) == -1)
		goto out;
	cfg_setstr(redis, "socket", u.ru_socket);
	if (u.ru_socket[0] == '\0') {
		cfg_setstr(redis, "host", u.ru_host);
		cfg_setint(redis, "port", u.ru_port);
	}
	if (u.ru_user)
		cfg_setstr(redis, "username", u.ru_user);
	if (u.ru_password) {
		cfg_setstr(redis, "password", u.ru_password);
		cfg_setstr(redis, "password_file", "");
	}
	rc = 0;
out:
	redisurl_clear(&u);
	return rc;
}

/*
 * The environment over the file: REDIS_HOST and REDIS_PORT, then
 * REDIS_PASSWORD (over password and password_file), then REDIS_URL over
 * all of them.
 */
int
confenv_apply(cfg_t *cfg, char *err, size_t errlen)
{
	const char *password = getenv("REDIS_PASSWORD");

	if (confenv_hostport(cfg, err, errlen) == -1)
		return -1;
	if (password && *password) {
		cfg_setstr(cfg_getsec(cfg, "redis"), "password", password);
		cfg_setstr(cfg_getsec(cfg, "redis"), "password_file", "");
	}
	return confenv_url(cfg, err, errlen);
}
