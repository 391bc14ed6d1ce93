/*
 * conf.c - the configuration: one table of keys, and the parsing,
 * validation, environment overrides and printing that it drives.
 *
 * Every key the daemon knows is one entry of conf_keys[] below, in the
 * manner of pgbouncer's configuration table: its libconfuse declaration
 * (name, type, default), its section, where its value goes in struct
 * conf, its range, and whether a reload can apply it.  The libconfuse
 * schema, the checks of each value, filling struct conf, freeing it,
 * what -T prints and what a reload keeps are all loops over that table,
 * so a new key is one new entry (and a member of struct conf).
 * etc/hitcountd.conf and hitcountd.conf(5) list the same keys with the
 * same defaults (tests/check-conf-keys.sh keeps the three in step).
 * Errors name the file, the line and the key, so that `hitcountd -t` can
 * be run before a reload and a broken file never replaces a good one.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <confuse.h>

#include "addr.h"
#include "conf.h"
#include "cpus.h"
#include "log.h"
#include "redisurl.h"
#include "util.h"

/* The sections of the file; CONF_TOP is outside any. */
enum conf_section {
	CONF_TOP,
	CONF_REDIS,
	CONF_NSECTIONS
};

/* The sections as libconfuse options; conf_schema() adds their keys. */
static const cfg_opt_t conf_sections[CONF_NSECTIONS] = {
	CFG_END(),              /* CONF_TOP is no section */
	CFG_SEC("redis", NULL, CFGF_NONE),
};

/* How a key's value is kept in struct conf, checked and printed. */
enum conf_kind {
	CONF_INT,               /* int, from k_min to k_max */
	CONF_BOOL,              /* int, 0 or 1 */
	CONF_STR,               /* char *, never NULL */
	CONF_LEVEL,             /* int, a syslog priority written by name */
	CONF_FORMAT,            /* int, a LOG_FORMAT_* written by name */
	CONF_LISTEN,            /* entries of cf_listen (k_off unused) */
	CONF_HOSTPORTS          /* char ** of "HOST:PORT", count at k_noff */
};

#define CONF_NONEMPTY   0x01    /* "" (for a list, {}) is refused */
#define CONF_SECRET     0x02    /* -T prints it masked */
#define CONF_ADMIN      0x04    /* CONF_LISTEN: the metrics-only addresses */
#define CONF_RESTART    0x08    /* a reload cannot apply it (not a list) */

/* The longest password a password file may hold. */
#define CONF_SECRET_MAX 4096

struct conf_key {
	enum conf_section k_section;
	cfg_opt_t k_opt;                /* name, type and default */
	enum conf_kind k_kind;
	size_t k_off, k_noff;           /* members of struct conf */
	long k_min, k_max;              /* CONF_INT */
	unsigned int k_flags;           /* CONF_* above */
	int (*k_check)(cfg_t *, cfg_opt_t *);   /* one more check, or NULL */
};

/* offsetof(struct conf, m), a compile-time error unless m has type t. */
#define CONF_OFF(m, t)  (offsetof(struct conf, m) + \
	0 * sizeof((t *)0 == &((struct conf *)0)->m))

/* The member of cf at offset off, as a t *. */
#define CONF_AT(cf, off, t)     ((t *)(void *)((char *)(cf) + (off)))

/* The kind and place of a key: the rest of a conf_keys[] entry. */
#define AS_INT(m, min, max)     CONF_INT, CONF_OFF(m, int), 0, min, max
#define AS_BOOL(m)              CONF_BOOL, CONF_OFF(m, int), 0, 0, 0
#define AS_STR(m)               CONF_STR, CONF_OFF(m, char *), 0, 0, 0
#define AS_LEVEL(m)             CONF_LEVEL, CONF_OFF(m, int), 0, 0, 0
#define AS_FORMAT(m)            CONF_FORMAT, CONF_OFF(m, int), 0, 0, 0
#define AS_LISTEN               CONF_LISTEN, 0, 0, 0, 0
#define AS_HOSTPORTS(m, n)      CONF_HOSTPORTS, CONF_OFF(m, char **), \
	CONF_OFF(n, size_t), 0, 0

static int conf_check_user(cfg_t *, cfg_opt_t *);
static int conf_check_group(cfg_t *, cfg_opt_t *);
static int conf_check_path(cfg_t *, cfg_opt_t *);
static int conf_check_file(cfg_t *, cfg_opt_t *);
static int conf_check_socket(cfg_t *, cfg_opt_t *);

/*
 * Every key, in the order -T prints them.  Names are unique across
 * sections (the man page lists them so); the keys of a section are
 * together.  listen comes before metrics_listen: the public addresses
 * are first in cf_listen, and -H asks the first one.  A reload applies
 * every key but two (CONF_RESTART): the master opens the pidfile once, at
 * start (main.c), and the backlog goes to listen(2) when an address is
 * bound, and its socket is kept across reloads and binary upgrades.
 */
static const struct conf_key conf_keys[] = {
	{ CONF_TOP, CFG_STR_LIST("listen", "{\"0.0.0.0:5000\"}", CFGF_NONE),
	    AS_LISTEN, CONF_NONEMPTY, NULL },
	{ CONF_TOP, CFG_STR_LIST("metrics_listen", "{}", CFGF_NONE),
	    AS_LISTEN, CONF_ADMIN, NULL },
	{ CONF_TOP, CFG_INT("workers", 0, CFGF_NONE),
	    AS_INT(cf_workers, 0, 256), 0, NULL },
	{ CONF_TOP, CFG_STR("pidfile", "/run/hitcountd/hitcountd.pid", CFGF_NONE),
	    AS_STR(cf_pidfile), CONF_RESTART, conf_check_file },
	{ CONF_TOP, CFG_INT("shutdown_timeout", 8, CFGF_NONE),
	    AS_INT(cf_shutdown_timeout, 1, 3600), 0, NULL },
	{ CONF_TOP, CFG_INT("shutdown_delay", 0, CFGF_NONE),
	    AS_INT(cf_shutdown_delay, 0, 3600), 0, NULL },
	{ CONF_TOP, CFG_INT("keepalive_timeout", 5, CFGF_NONE),
	    AS_INT(cf_keepalive_timeout, 0, 3600), 0, NULL },
	{ CONF_TOP, CFG_INT("header_timeout", 10, CFGF_NONE),
	    AS_INT(cf_header_timeout, 1, 3600), 0, NULL },
	{ CONF_TOP, CFG_INT("max_connections", 4096, CFGF_NONE),
	    AS_INT(cf_max_connections, 1, 1000000), 0, NULL },
	{ CONF_TOP, CFG_INT("backlog", 511, CFGF_NONE),
	    AS_INT(cf_backlog, 1, 65535), CONF_RESTART, NULL },
	{ CONF_TOP, CFG_INT("max_header_size", 8192, CFGF_NONE),
	    AS_INT(cf_max_header_size, 1024, 1048576), 0, NULL },
	{ CONF_TOP, CFG_INT("max_headers", 100, CFGF_NONE),
	    AS_INT(cf_max_headers, 1, 10000), 0, NULL },
	{ CONF_TOP, CFG_STR("log_level", "info", CFGF_NONE),
	    AS_LEVEL(cf_log_level), 0, NULL },
	{ CONF_TOP, CFG_STR("user", "nobody", CFGF_NONE),
	    AS_STR(cf_user), 0, conf_check_user },
	{ CONF_TOP, CFG_STR("group", "", CFGF_NONE),
	    AS_STR(cf_group), 0, conf_check_group },
	{ CONF_TOP, CFG_BOOL("allow_root", cfg_false, CFGF_NONE),
	    AS_BOOL(cf_allow_root), 0, NULL },
	{ CONF_TOP, CFG_STR("log_format", "text", CFGF_NONE),
	    AS_FORMAT(cf_log_format), 0, NULL },
	{ CONF_TOP, CFG_STR("access_log", "", CFGF_NONE),
	    AS_STR(cf_access_log), 0, NULL },
	{ CONF_TOP, CFG_STR("metrics_path", "/metrics", CFGF_NONE),
	    AS_STR(cf_metrics_path), 0, conf_check_path },
	{ CONF_TOP, CFG_STR("readyz_path", "/readyz", CFGF_NONE),
	    AS_STR(cf_readyz_path), 0, conf_check_path },
	{ CONF_TOP, CFG_BOOL("readyz_redis", cfg_true, CFGF_NONE),
	    AS_BOOL(cf_readyz_redis), 0, NULL },
	{ CONF_REDIS, CFG_STR("host", "redis", CFGF_NONE),
	    AS_STR(cf_redis.host), CONF_NONEMPTY, NULL },
	{ CONF_REDIS, CFG_INT("port", 6379, CFGF_NONE),
	    AS_INT(cf_redis.port, 1, 65535), 0, NULL },
	{ CONF_REDIS, CFG_STR("socket", "", CFGF_NONE),
	    AS_STR(cf_redis.socket), 0, conf_check_socket },
	{ CONF_REDIS, CFG_STR("key", "visits", CFGF_NONE),
	    AS_STR(cf_redis.key), CONF_NONEMPTY, NULL },
	{ CONF_REDIS, CFG_INT("timeout_ms", 1000, CFGF_NONE),
	    AS_INT(cf_redis.timeout_ms, 1, 600000), 0, NULL },
	{ CONF_REDIS, CFG_STR("username", "", CFGF_NONE),
	    AS_STR(cf_redis.username), 0, NULL },
	{ CONF_REDIS, CFG_STR("password", "", CFGF_NONE),
	    AS_STR(cf_redis.password), CONF_SECRET, NULL },
	{ CONF_REDIS, CFG_STR("password_file", "", CFGF_NONE),
	    AS_STR(cf_redis.password_file), 0, conf_check_file },
	{ CONF_REDIS, CFG_INT("db", 0, CFGF_NONE),
	    AS_INT(cf_redis.db, 0, 1000000), 0, NULL },
	{ CONF_REDIS, CFG_STR_LIST("sentinels", "{}", CFGF_NONE),
	    AS_HOSTPORTS(cf_redis.sentinels, cf_redis.nsentinels), 0, NULL },
	{ CONF_REDIS, CFG_STR("master_name", "mymaster", CFGF_NONE),
	    AS_STR(cf_redis.master_name), CONF_NONEMPTY, NULL },
	{ CONF_REDIS, CFG_STR("sentinel_username", "", CFGF_NONE),
	    AS_STR(cf_redis.sentinel_username), 0, NULL },
	{ CONF_REDIS, CFG_STR("sentinel_password", "", CFGF_NONE),
	    AS_STR(cf_redis.sentinel_password), CONF_SECRET, NULL },
	{ CONF_REDIS, CFG_STR("sentinel_password_file", "", CFGF_NONE),
	    AS_STR(cf_redis.sentinel_password_file), 0, conf_check_file },
	{ CONF_REDIS, CFG_INT("min_replicas_acked", 0, CFGF_NONE),
	    AS_INT(cf_redis.min_replicas_acked, 0, 100), 0, NULL },
	{ CONF_REDIS, CFG_STR_LIST("cluster", "{}", CFGF_NONE),
	    AS_HOSTPORTS(cf_redis.cluster, cf_redis.ncluster), 0, NULL },
	{ CONF_REDIS, CFG_BOOL("tls", cfg_false, CFGF_NONE),
	    AS_BOOL(cf_redis.tls), 0, NULL },
	{ CONF_REDIS, CFG_STR("tls_ca_file", "", CFGF_NONE),
	    AS_STR(cf_redis.tls_ca_file), 0, conf_check_file },
	{ CONF_REDIS, CFG_STR("tls_ca_dir", "", CFGF_NONE),
	    AS_STR(cf_redis.tls_ca_dir), 0, conf_check_file },
	{ CONF_REDIS, CFG_STR("tls_cert_file", "", CFGF_NONE),
	    AS_STR(cf_redis.tls_cert_file), 0, conf_check_file },
	{ CONF_REDIS, CFG_STR("tls_key_file", "", CFGF_NONE),
	    AS_STR(cf_redis.tls_key_file), 0, conf_check_file },
	{ CONF_REDIS, CFG_STR("tls_server_name", "", CFGF_NONE),
	    AS_STR(cf_redis.tls_server_name), 0, NULL },
};

#undef AS_INT
#undef AS_BOOL
#undef AS_STR
#undef AS_LEVEL
#undef AS_FORMAT
#undef AS_LISTEN
#undef AS_HOSTPORTS

/* libconfuse's error function has no user pointer: parsing is single-threaded. */
static char *conf_errbuf;
static size_t conf_errlen;
static int conf_errset;
static cfg_t *conf_top;         /* sections carry no file name or line */

static void
conf_errfunc(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[512];
	const char *file = NULL;
	int line = 0;

	if (conf_errset)
		return;         /* the first error is the one to fix */
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/*
	 * Inside a section libconfuse counts lines in the section's cfg_t,
	 * which has no file name: take the name from the top and the line
	 * from whichever has counted further.
	 */
	if (cfg && cfg->line > 0)
		line = cfg->line;
	if (conf_top) {
		if (conf_top->line > line)
			line = conf_top->line;
		file = conf_top->filename;
	} else if (cfg)
		file = cfg->filename;
	if (file && line > 0)
		snprintf(conf_errbuf, conf_errlen, "%s:%d: %s", file, line, msg);
	else if (file)
		snprintf(conf_errbuf, conf_errlen, "%s: %s", file, msg);
	else
		snprintf(conf_errbuf, conf_errlen, "%s", msg);
	conf_errset = 1;
}

static const struct conf_key *
conf_key_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(conf_keys); i++)
		if (strcmp(conf_keys[i].k_opt.name, name) == 0)
			return &conf_keys[i];
	return NULL;
}

/* What a string option is set to: its last value. */
static const char *
conf_opt_str(cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);

	return s ? s : "";
}

static int
conf_check_listen(cfg_t *cfg, cfg_opt_t *opt)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[256];
	unsigned int i;

	for (i = 0; i < cfg_opt_size(opt); i++) {
		const char *s = cfg_opt_getnstr(opt, i);

		if (conf_parse_listen(s, &ss, &len, why, sizeof(why)) == -1) {
			cfg_error(cfg, "option '%s': %s", opt->name, why);
			return -1;
		}
	}
	return 0;
}

static int
conf_check_hostports(cfg_t *cfg, cfg_opt_t *opt)
{
	char host[ADDR_HOST_MAX], why[128];
	unsigned int i;
	int port;

	for (i = 0; i < cfg_opt_size(opt); i++) {
		const char *s = cfg_opt_getnstr(opt, i);

		if (addr_split(s, strlen(s), 0, host, sizeof(host), &port, why,
		    sizeof(why)) == -1) {
			cfg_error(cfg, "option '%s': '%s' is not HOST:PORT: %s",
			    opt->name, s, why);
			return -1;
		}
	}
	return 0;
}

static int
conf_check_user(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = conf_opt_str(opt);

	if (*s && getpwnam(s) == NULL) {
		cfg_error(cfg, "option 'user': no such user '%s'", s);
		return -1;
	}
	return 0;
}

static int
conf_check_group(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = conf_opt_str(opt);

	if (*s && getgrnam(s) == NULL) {
		cfg_error(cfg, "option 'group': no such group '%s'", s);
		return -1;
	}
	return 0;
}

/* A path to serve: "" (off) or starting with '/' and free of spaces. */
static int
conf_check_path(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = conf_opt_str(opt);
	const char *c;

	if (*s == '\0')
		return 0;
	for (c = s; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == '?' || *c == 0x7f)
			break;
	if (*s != '/' || *c != '\0' || strcmp(s, "/") == 0 ||
	    strcmp(s, "/healthz") == 0) {
		cfg_error(cfg, "option '%s': '%s' is not a path of its own "
		    "(\"/name\", or \"\" to turn it off)", opt->name, s);
		return -1;
	}
	return 0;
}

/*
 * A file the master opens: "" (none) or an absolute path.  A detached
 * daemon runs in /, so a relative one names another file than the one an
 * admin reads: the pidfile's would never be removed, and USR2 refused.
 */
static int
conf_check_file(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = conf_opt_str(opt);

	if (*s != '\0' && *s != '/') {
		cfg_error(cfg, "option '%s': '%s' is not an absolute path (the "
		    "daemon runs in /)", opt->name, s);
		return -1;
	}
	return 0;
}

/* A Unix socket: a file, and short enough for sockaddr_un. */
static int
conf_check_socket(cfg_t *cfg, cfg_opt_t *opt)
{
	struct sockaddr_un sun;

	if (conf_check_file(cfg, opt) == -1)
		return -1;
	if (strlen(conf_opt_str(opt)) >= sizeof(sun.sun_path)) {
		cfg_error(cfg, "option '%s': the path is longer than %zu bytes",
		    opt->name, sizeof(sun.sun_path) - 1);
		return -1;
	}
	return 0;
}

/*
 * The validator of every option: libconfuse calls it after each value it
 * reads from the file (never for a default).  The checks of the key's
 * kind and flags, then the key's own.
 */
static int
conf_validate(cfg_t *cfg, cfg_opt_t *opt)
{
	const struct conf_key *k = conf_key_find(opt->name);
	const char *s;
	long v;

	switch (k->k_kind) {
	case CONF_INT:
		v = cfg_opt_getnint(opt, cfg_opt_size(opt) - 1);
		if (v < k->k_min || v > k->k_max) {
			cfg_error(cfg, "option '%s': %ld is out of range "
			    "(%ld..%ld)", opt->name, v, k->k_min, k->k_max);
			return -1;
		}
		break;
	case CONF_LEVEL:
		s = conf_opt_str(opt);
		if (log_level_from_name(s) == -1) {
			cfg_error(cfg, "option '%s': '%s' is not one of "
			    "error, warning, info, debug", opt->name, s);
			return -1;
		}
		break;
	case CONF_FORMAT:
		s = conf_opt_str(opt);
		if (log_format_from_name(s) == -1) {
			cfg_error(cfg, "option '%s': '%s' is not one of "
			    "text, kv, json", opt->name, s);
			return -1;
		}
		break;
	case CONF_LISTEN:
		if (conf_check_listen(cfg, opt) == -1)
			return -1;
		break;
	case CONF_HOSTPORTS:
		if (conf_check_hostports(cfg, opt) == -1)
			return -1;
		break;
	case CONF_STR:
		if ((k->k_flags & CONF_NONEMPTY) && *conf_opt_str(opt) == '\0') {
			cfg_error(cfg, "option '%s' must not be empty",
			    opt->name);
			return -1;
		}
		break;
	case CONF_BOOL:
		break;
	}
	return k->k_check ? k->k_check(cfg, opt) : 0;
}

/*
 * A parser with the schema of conf_keys[]: each section's keys, and at
 * the top level the top keys and one CFG_SEC per section.  cfg_init()
 * copies the options, so they may live on the stack.
 */
static cfg_t *
conf_schema(void)
{
	cfg_opt_t opts[CONF_NSECTIONS][nitems(conf_keys) + CONF_NSECTIONS];
	cfg_opt_t end = CFG_END();
	size_t n[CONF_NSECTIONS] = { 0 }, i;
	int s;

	for (i = 0; i < nitems(conf_keys); i++) {
		const struct conf_key *k = &conf_keys[i];
		cfg_opt_t *o = &opts[k->k_section][n[k->k_section]++];

		*o = k->k_opt;
		o->validcb = conf_validate;
	}
	for (s = CONF_TOP + 1; s < CONF_NSECTIONS; s++) {
		opts[s][n[s]] = end;
		opts[CONF_TOP][n[CONF_TOP]] = conf_sections[s];
		opts[CONF_TOP][n[CONF_TOP]++].subopts = opts[s];
	}
	opts[CONF_TOP][n[CONF_TOP]] = end;
	return cfg_init(opts[CONF_TOP], CFGF_NONE);
}

int
conf_split_hostport(const char *text, char *host, size_t hostlen, int *port)
{
	char why[128];

	return addr_split(text, strlen(text), 0, host, hostlen, port, why,
	    sizeof(why));
}

int
conf_parse_listen(const char *text, struct sockaddr_storage *ss,
    socklen_t *len, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char host[ADDR_HOST_MAX], why[128], service[8];
	int port, rc;

	if (addr_split(text, strlen(text), 0, host, sizeof(host), &port, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "'%s': %s", text, why);
		return -1;
	}
	snprintf(service, sizeof(service), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(strcmp(host, "*") == 0 ? "0.0.0.0" : host, service,
	    &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "'%s': %s", text, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/*
 * REDIS_HOST and REDIS_PORT, as the original Docker setup passes them.
 * REDIS_PORT may also be in the "tcp://HOST:PORT" form that Docker's
 * legacy links export.  Either names a TCP address: socket is not used.
 */
static int
conf_env_hostport(cfg_t *cfg, char *err, size_t errlen)
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
conf_env_tls(cfg_t *redis)
{
	cfg_setbool(redis, "tls", cfg_true);
}

/* Set db to the URL's database, if in the range of the key. */
static int
conf_env_db(cfg_t *redis, long db, char *err, size_t errlen)
{
	const struct conf_key *k = conf_key_find("db");

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
conf_env_url(cfg_t *cfg, char *err, size_t errlen)
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
		conf_env_tls(redis);
	if (u.ru_db != -1 && conf_env_db(redis, u.ru_db, err, errlen) == -1)
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
static int
conf_apply_env(cfg_t *cfg, char *err, size_t errlen)
{
	const char *password = getenv("REDIS_PASSWORD");

	if (conf_env_hostport(cfg, err, errlen) == -1)
		return -1;
	if (password && *password) {
		cfg_setstr(cfg_getsec(cfg, "redis"), "password", password);
		cfg_setstr(cfg_getsec(cfg, "redis"), "password_file", "");
	}
	return conf_env_url(cfg, err, errlen);
}

/*
 * The uid and gid the workers run as when the daemon starts as root:
 * user's, with group overriding user's primary group.
 */
static int
conf_resolve_ids(struct conf *cf, char *err, size_t errlen)
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
conf_check_consistency(const struct conf *cf, char *err, size_t errlen)
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
conf_check_auth(const struct conf *cf, const char *pre, const char *user,
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
conf_check_cluster(const struct conf *cf, char *err, size_t errlen)
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
conf_check_tls(const struct conf *cf, char *err, size_t errlen)
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
conf_check_redis(const struct conf *cf, char *err, size_t errlen)
{
	if (conf_check_auth(cf, "", cf->cf_redis.username,
	    cf->cf_redis.password, cf->cf_redis.password_file, err,
	    errlen) == -1 ||
	    conf_check_auth(cf, "sentinel_", cf->cf_redis.sentinel_username,
	    cf->cf_redis.sentinel_password,
	    cf->cf_redis.sentinel_password_file, err, errlen) == -1)
		return -1;
	if (cf->cf_redis.socket[0] && cf->cf_redis.nsentinels > 0) {
		snprintf(err, errlen, "%s: option 'socket' (or a unix:// "
		    "REDIS_URL) and option 'sentinels' exclude each other",
		    cf->cf_path);
		return -1;
	}
	if (conf_check_cluster(cf, err, errlen) == -1)
		return -1;
	return conf_check_tls(cf, err, errlen);
}

/*
 * The password in the file at path, for key: the file's one line, without
 * its newline, into *dst.  A file that group or others can read works,
 * with a warning.
 */
static int
conf_read_secret(const struct conf *cf, const char *key, const char *path,
    char **dst, char *err, size_t errlen)
{
	char buf[CONF_SECRET_MAX + 2], *s = NULL;
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
	if (n == 0 || n > CONF_SECRET_MAX || strlen(buf) != (size_t)n ||
	    strchr(buf, '\n') != NULL) {
		snprintf(err, errlen, "%s: option '%s': %s must hold the "
		    "password alone, on one line of at most %d bytes",
		    cf->cf_path, key, path, CONF_SECRET_MAX);
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
static int
conf_read_secrets(struct conf *cf, char *err, size_t errlen)
{
	if (cf->cf_redis.password_file[0] && conf_read_secret(cf,
	    "password_file", cf->cf_redis.password_file, &cf->cf_redis.password,
	    err, errlen) == -1)
		return -1;
	if (cf->cf_redis.sentinel_password_file[0] && conf_read_secret(cf,
	    "sentinel_password_file", cf->cf_redis.sentinel_password_file,
	    &cf->cf_redis.sentinel_password, err, errlen) == -1)
		return -1;
	return 0;
}

/* Append the addresses of key k, read from sec, to cf_listen. */
static int
conf_fill_listen(struct conf *cf, const struct conf_key *k, cfg_t *sec,
    char *err, size_t errlen)
{
	size_t i, n = cfg_size(sec, k->k_opt.name);
	struct conf_listen *l;

	/* Here, not in conf_validate(): libconfuse validates no empty list. */
	if (n == 0 && (k->k_flags & CONF_NONEMPTY)) {
		snprintf(err, errlen, "%s: option '%s' needs at least one "
		    "address", cf->cf_path, k->k_opt.name);
		return -1;
	}
	l = realloc(cf->cf_listen, (cf->cf_nlisten + n + 1) * sizeof(*l));
	if (l == NULL)
		goto nomem;
	cf->cf_listen = l;
	for (i = 0; i < n; i++) {
		l = &cf->cf_listen[cf->cf_nlisten];
		memset(l, 0, sizeof(*l));
		l->cfl_admin = (k->k_flags & CONF_ADMIN) != 0;
		l->cfl_text = strdup(cfg_getnstr(sec, k->k_opt.name, i));
		if (l->cfl_text == NULL)
			goto nomem;
		cf->cf_nlisten++;
		if (conf_parse_listen(l->cfl_text, &l->cfl_addr,
		    &l->cfl_addrlen, err, errlen) == -1)
			return -1;
	}
	return 0;

nomem:
	snprintf(err, errlen, "%s: out of memory", cf->cf_path);
	return -1;
}

/* Copy the strings of key k, read from sec, into a new array. */
static int
conf_fill_strings(struct conf *cf, const struct conf_key *k, cfg_t *sec)
{
	size_t i, n = cfg_size(sec, k->k_opt.name);
	char **v;

	if (n == 0)
		return 0;
	v = calloc(n, sizeof(*v));
	if (v == NULL)
		return -1;
	*CONF_AT(cf, k->k_off, char **) = v;
	*CONF_AT(cf, k->k_noff, size_t) = n;
	for (i = 0; i < n; i++) {
		v[i] = strdup(cfg_getnstr(sec, k->k_opt.name, i));
		if (v[i] == NULL)
			return -1;
	}
	return 0;
}

/* Set key k's member of cf from its value in sec.  Returns 0 or -1. */
static int
conf_fill_key(struct conf *cf, const struct conf_key *k, cfg_t *sec,
    char *err, size_t errlen)
{
	const char *name = k->k_opt.name, *s;
	char **sp;

	switch (k->k_kind) {
	case CONF_INT:
		*CONF_AT(cf, k->k_off, int) = (int)cfg_getint(sec, name);
		return 0;
	case CONF_BOOL:
		*CONF_AT(cf, k->k_off, int) = cfg_getbool(sec, name) == cfg_true;
		return 0;
	case CONF_LEVEL:
		*CONF_AT(cf, k->k_off, int) =
		    log_level_from_name(cfg_getstr(sec, name));
		return 0;
	case CONF_FORMAT:
		*CONF_AT(cf, k->k_off, int) =
		    log_format_from_name(cfg_getstr(sec, name));
		return 0;
	case CONF_LISTEN:
		return conf_fill_listen(cf, k, sec, err, errlen);
	case CONF_STR:
		s = cfg_getstr(sec, name);
		sp = CONF_AT(cf, k->k_off, char *);
		*sp = strdup(s ? s : "");
		if (*sp != NULL)
			return 0;
		break;
	case CONF_HOSTPORTS:
		if (conf_fill_strings(cf, k, sec) == 0)
			return 0;
		break;
	}
	snprintf(err, errlen, "%s: out of memory", cf->cf_path);
	return -1;
}

/* A new struct conf with the values of the parsed file cfg, or NULL. */
static struct conf *
conf_fill(cfg_t *cfg, const char *path, char *err, size_t errlen)
{
	struct conf *cf;
	size_t i;

	cf = calloc(1, sizeof(*cf));
	if (cf == NULL || (cf->cf_path = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(cf);
		return NULL;
	}
	for (i = 0; i < nitems(conf_keys); i++) {
		const struct conf_key *k = &conf_keys[i];
		cfg_t *sec = cfg;

		if (k->k_section != CONF_TOP)
			sec = cfg_getsec(cfg, conf_sections[k->k_section].name);
		if (conf_fill_key(cf, k, sec, err, errlen) == -1) {
			conf_free(cf);
			return NULL;
		}
	}
	return cf;
}

/* Read path with the schema of conf_keys[]: the parsed file, or NULL. */
static cfg_t *
conf_parse(const char *path, char *err, size_t errlen)
{
	struct stat st;
	cfg_t *cfg;
	int rc;

	/*
	 * libconfuse's flex scanner ends the process when read() fails, as
	 * it does on a directory: that would end the master on a reload.
	 */
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
		return NULL;
	}
	cfg = conf_schema();
	if (cfg == NULL) {
		snprintf(err, errlen, "%s: cannot initialise the parser", path);
		return NULL;
	}
	cfg_set_error_function(cfg, conf_errfunc);
	conf_top = cfg;
	errno = 0;
	rc = cfg_parse(cfg, path);
	if (rc == CFG_SUCCESS)
		return cfg;
	if (rc == CFG_FILE_ERROR)
		snprintf(err, errlen, "%s: %s", path,
		    errno ? strerror(errno) : "cannot read the file");
	else if (!conf_errset)
		snprintf(err, errlen, "%s: syntax error", path);
	cfg_free(cfg);
	conf_top = NULL;
	return NULL;
}

struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
	struct conf *cf = NULL;
	cfg_t *cfg;

	conf_errbuf = err;
	conf_errlen = errlen;
	conf_errset = 0;
	err[0] = '\0';
	cfg = conf_parse(path, err, errlen);
	if (cfg != NULL && conf_apply_env(cfg, err, errlen) == 0)
		cf = conf_fill(cfg, path, err, errlen);
	if (cf != NULL && (conf_resolve_ids(cf, err, errlen) == -1 ||
	    conf_check_consistency(cf, err, errlen) == -1 ||
	    conf_check_redis(cf, err, errlen) == -1 ||
	    conf_read_secrets(cf, err, errlen) == -1)) {
		conf_free(cf);
		cf = NULL;
	}
	if (cfg != NULL)
		cfg_free(cfg);
	conf_errbuf = NULL;
	conf_top = NULL;
	return cf;
}

void
conf_free(struct conf *cf)
{
	size_t i, j;

	if (cf == NULL)
		return;
	for (i = 0; i < nitems(conf_keys); i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->k_kind == CONF_STR) {
			char *s = *CONF_AT(cf, k->k_off, char *);

			if (s != NULL && (k->k_flags & CONF_SECRET))
				explicit_bzero(s, strlen(s));
			free(s);
		}
		if (k->k_kind == CONF_HOSTPORTS) {
			char **v = *CONF_AT(cf, k->k_off, char **);

			for (j = 0; v && j < *CONF_AT(cf, k->k_noff, size_t);
			    j++)
				free(v[j]);
			free(v);
		}
	}
	if (cf->cf_redis.tls_ctx != NULL)
		cf->cf_redis.tls_free(cf->cf_redis.tls_ctx);
	for (i = 0; cf->cf_listen && i < cf->cf_nlisten; i++)
		free(cf->cf_listen[i].cfl_text);
	free(cf->cf_listen);
	free(cf->cf_path);
	free(cf);
}

/*
 * Print s as a libconfuse quoted string.  '$' is escaped too: libconfuse
 * would read "${NAME}" as the environment variable's value.
 */
static void
conf_print_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\' || *s == '$')
			fputc('\\', fp);
		fputc(*s, fp);
	}
	fputc('"', fp);
}

/* Print the n strings of v as a list value. */
static void
conf_print_strings(FILE *fp, char *const *v, size_t n)
{
	size_t i;

	fputc('{', fp);
	for (i = 0; i < n; i++) {
		if (i)
			fputs(", ", fp);
		conf_print_str(fp, v[i]);
	}
	fputc('}', fp);
}

/* Print the addresses of one kind (admin or not) as a list value. */
static void
conf_print_listen(FILE *fp, const struct conf *cf, int admin)
{
	size_t i;
	int first = 1;

	fputc('{', fp);
	for (i = 0; i < cf->cf_nlisten; i++) {
		if (cf->cf_listen[i].cfl_admin != admin)
			continue;
		if (!first)
			fputs(", ", fp);
		conf_print_str(fp, cf->cf_listen[i].cfl_text);
		first = 0;
	}
	fputc('}', fp);
}

/* Print the value of key k in cf, in config-file syntax. */
static void
conf_print_value(FILE *fp, const struct conf *cf, const struct conf_key *k)
{
	const char *s;
	int v = 0;

	if (k->k_kind != CONF_STR && k->k_kind != CONF_LISTEN &&
	    k->k_kind != CONF_HOSTPORTS)
		v = *CONF_AT(cf, k->k_off, const int);
	switch (k->k_kind) {
	case CONF_INT:
		fprintf(fp, "%d", v);
		break;
	case CONF_BOOL:
		fputs(v ? "true" : "false", fp);
		break;
	case CONF_LEVEL:
		conf_print_str(fp, log_level_name(v));
		break;
	case CONF_FORMAT:
		conf_print_str(fp, log_format_name(v));
		break;
	case CONF_STR:
		s = *CONF_AT(cf, k->k_off, char *const);
		/* Never echo a secret: -T output ends up in bug reports. */
		if ((k->k_flags & CONF_SECRET) && *s)
			s = "********";
		conf_print_str(fp, s);
		break;
	case CONF_LISTEN:
		conf_print_listen(fp, cf, (k->k_flags & CONF_ADMIN) != 0);
		break;
	case CONF_HOSTPORTS:
		conf_print_strings(fp, *CONF_AT(cf, k->k_off, char **const),
		    *CONF_AT(cf, k->k_noff, const size_t));
		break;
	}
}

int
conf_print(const struct conf *cf, FILE *fp)
{
	enum conf_section in = CONF_TOP;
	size_t i;

	fprintf(fp, "# effective configuration of %s\n", cf->cf_path);
	for (i = 0; i < nitems(conf_keys); i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->k_section != in) {
			if (in != CONF_TOP)
				fputs("}\n", fp);
			in = k->k_section;
			if (in != CONF_TOP)
				fprintf(fp, "%s {\n", conf_sections[in].name);
		}
		fprintf(fp, "%s%s = ", in != CONF_TOP ? "    " : "",
		    k->k_opt.name);
		conf_print_value(fp, cf, k);
		fputc('\n', fp);
	}
	if (in != CONF_TOP)
		fputs("}\n", fp);
	return ferror(fp) ? -1 : 0;
}

int
conf_worker_count(const struct conf *cf)
{
	if (cf->cf_workers > 0)
		return cf->cf_workers;
	return cpus_usable("/sys/fs/cgroup", "/proc/self/cgroup");
}

/* Key k's value in cf as -T prints it, cut to fit buf. */
static const char *
conf_value_text(const struct conf *cf, const struct conf_key *k, char *buf,
    size_t len)
{
	FILE *fp;

	buf[0] = '\0';
	fp = fmemopen(buf, len - 1, "w");
	if (fp == NULL)
		return "?";
	conf_print_value(fp, cf, k);
	fclose(fp);
	buf[len - 1] = '\0';
	return buf;
}

/* Whether key k, a scalar, has the same value in a and b. */
static int
conf_same(const struct conf *a, const struct conf *b, const struct conf_key *k)
{
	if (k->k_kind == CONF_STR)
		return strcmp(*CONF_AT(a, k->k_off, char *const),
		    *CONF_AT(b, k->k_off, char *const)) == 0;
	return *CONF_AT(a, k->k_off, const int) ==
	    *CONF_AT(b, k->k_off, const int);
}

/* Give next cur's value of key k, a scalar.  Returns 0 or -1. */
static int
conf_keep(struct conf *next, const struct conf *cur, const struct conf_key *k)
{
	char **sp, *s;

	if (k->k_kind != CONF_STR) {
		*CONF_AT(next, k->k_off, int) = *CONF_AT(cur, k->k_off, const int);
		return 0;
	}
	s = strdup(*CONF_AT(cur, k->k_off, char *const));
	if (s == NULL) {
		log_warn("strdup");
		return -1;
	}
	sp = CONF_AT(next, k->k_off, char *);
	free(*sp);
	*sp = s;
	return 0;
}

int
conf_reload_keep(struct conf *next, const struct conf *cur)
{
	char was[256], now[256];
	size_t i;

	for (i = 0; i < nitems(conf_keys); i++) {
		const struct conf_key *k = &conf_keys[i];

		/* No list is CONF_RESTART: the two above know scalars only. */
		if (!(k->k_flags & CONF_RESTART) || k->k_kind == CONF_LISTEN ||
		    k->k_kind == CONF_HOSTPORTS || conf_same(cur, next, k))
			continue;
		log_warnx("reload: option '%s' changed from %s to %s in %s; "
		    "the change takes effect only at a restart", k->k_opt.name,
		    conf_value_text(cur, k, was, sizeof(was)),
		    conf_value_text(next, k, now, sizeof(now)), next->cf_path);
		if (conf_keep(next, cur, k) == -1)
			return -1;
	}
	return 0;
}
