/*
 * conf.c - the configuration: the table of keys, and loading, filling,
 * freeing and reloading struct conf by it.
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
 *
 * This file owns the table and conf_load()'s order of steps; the steps
 * live in files of their own: confvalid.c (each value, as libconfuse
 * reads it), confenv.c (the environment over the file), confcheck.c
 * (rules between keys), confsecret.c (the password files) and
 * confdump.c (what -T prints).  It calls those, log.c, cpus.c and addr.c;
 * main.c and master.c call it.  It knows nothing of TLS: the TLS context
 * is made after conf_load() by redistls_attach() (the Redis side), and
 * freed here through the pointer that came with it.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <confuse.h>

#include "addr.h"
#include "conf.h"
#include "confcheck.h"
#include "confdump.h"
#include "confenv.h"
#include "confkey.h"
#include "confsecret.h"
#include "confvalid.h"
#include "cpus.h"
#include "log.h"
#include "util.h"

/* The sections as libconfuse options; conf_schema() adds their keys. */
const cfg_opt_t conf_sections[CONF_NSECTIONS] = {
	CFG_END(),              /* CONF_TOP is no section */
	CFG_SEC("redis", NULL, CFGF_NONE),
};

/* offsetof(struct conf, m), a compile-time error unless m has type t. */
#define CONF_OFF(m, t)  (offsetof(struct conf, m) + \
	0 * sizeof((t *)0 == &((struct conf *)0)->m))

/* The kind and place of a key: the rest of a conf_keys[] entry. */
#define AS_INT(m, min, max)     CONF_INT, CONF_OFF(m, int), 0, min, max
#define AS_BOOL(m)              CONF_BOOL, CONF_OFF(m, int), 0, 0, 0
#define AS_STR(m)               CONF_STR, CONF_OFF(m, char *), 0, 0, 0
#define AS_LEVEL(m)             CONF_LEVEL, CONF_OFF(m, int), 0, 0, 0
#define AS_FORMAT(m)            CONF_FORMAT, CONF_OFF(m, int), 0, 0, 0
#define AS_LISTEN               CONF_LISTEN, 0, 0, 0, 0
#define AS_HOSTPORTS(m, n)      CONF_HOSTPORTS, CONF_OFF(m, char **), \
	CONF_OFF(n, size_t), 0, 0

/*
 * Every key, in the order -T prints them.  Names are unique across
 * sections (the man page lists them so); the keys of a section are
 * together.  listen comes before metrics_listen: the public addresses
 * are first in cf_listen, and -H asks the first one.  A reload applies
 * every key but two (CONF_RESTART): the master opens the pidfile once, at
 * start (main.c), and the backlog goes to listen(2) when an address is
 * bound, and its socket is kept across reloads and binary upgrades.
 */
const struct conf_key conf_keys[] = {
	{ CONF_TOP, CFG_STR_LIST("listen", "{\"0.0.0.0:5000\"}", CFGF_NONE),
	    AS_LISTEN, CONF_NONEMPTY, NULL },
	{ CONF_TOP, CFG_STR_LIST("metrics_listen", "{}", CFGF_NONE),
	    AS_LISTEN, CONF_ADMIN, NULL },
	{ CONF_TOP, CFG_INT("workers", 0, CFGF_NONE),
	    AS_INT(cf_workers, 0, 256), 0, NULL },
	{ CONF_TOP, CFG_STR("pidfile", "/run/hitcountd/hitcountd.pid", CFGF_NONE),
	    AS_STR(cf_pidfile), CONF_RESTART, confvalid_file },
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
	    AS_STR(cf_user), 0, confvalid_user },
	{ CONF_TOP, CFG_STR("group", "", CFGF_NONE),
	    AS_STR(cf_group), 0, confvalid_group },
	{ CONF_TOP, CFG_BOOL("allow_root", cfg_false, CFGF_NONE),
	    AS_BOOL(cf_allow_root), 0, NULL },
	{ CONF_TOP, CFG_STR("log_format", "text", CFGF_NONE),
	    AS_FORMAT(cf_log_format), 0, NULL },
	{ CONF_TOP, CFG_STR("access_log", "", CFGF_NONE),
	    AS_STR(cf_access_log), 0, NULL },
	{ CONF_TOP, CFG_STR("metrics_path", "/metrics", CFGF_NONE),
	    AS_STR(cf_metrics_path), 0, confvalid_path },
	{ CONF_TOP, CFG_STR("readyz_path", "/readyz", CFGF_NONE),
	    AS_STR(cf_readyz_path), 0, confvalid_path },
	{ CONF_TOP, CFG_BOOL("readyz_redis", cfg_true, CFGF_NONE),
	    AS_BOOL(cf_readyz_redis), 0, NULL },
	{ CONF_REDIS, CFG_STR("host", "redis", CFGF_NONE),
	    AS_STR(cf_redis.host), CONF_NONEMPTY, NULL },
	{ CONF_REDIS, CFG_INT("port", 6379, CFGF_NONE),
	    AS_INT(cf_redis.port, 1, 65535), 0, NULL },
	{ CONF_REDIS, CFG_STR("socket", "", CFGF_NONE),
	    AS_STR(cf_redis.socket), 0, confvalid_socket },
	{ CONF_REDIS, CFG_STR("key", "visits", CFGF_NONE),
	    AS_STR(cf_redis.key), CONF_NONEMPTY, NULL },
	{ CONF_REDIS, CFG_INT("timeout_ms", 1000, CFGF_NONE),
	    AS_INT(cf_redis.timeout_ms, 1, 600000), 0, NULL },
	{ CONF_REDIS, CFG_STR("username", "", CFGF_NONE),
	    AS_STR(cf_redis.username), 0, NULL },
	{ CONF_REDIS, CFG_STR("password", "", CFGF_NONE),
	    AS_STR(cf_redis.password), CONF_SECRET, NULL },
	{ CONF_REDIS, CFG_STR("password_file", "", CFGF_NONE),
	    AS_STR(cf_redis.password_file), 0, confvalid_file },
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
	    AS_STR(cf_redis.sentinel_password_file), 0, confvalid_file },
	{ CONF_REDIS, CFG_INT("min_replicas_acked", 0, CFGF_NONE),
	    AS_INT(cf_redis.min_replicas_acked, 0, 100), 0, NULL },
	{ CONF_REDIS, CFG_STR_LIST("cluster", "{}", CFGF_NONE),
	    AS_HOSTPORTS(cf_redis.cluster, cf_redis.ncluster), 0, NULL },
	{ CONF_REDIS, CFG_BOOL("tls", cfg_false, CFGF_NONE),
	    AS_BOOL(cf_redis.tls), 0, NULL },
	{ CONF_REDIS, CFG_STR("tls_ca_file", "", CFGF_NONE),
	    AS_STR(cf_redis.tls_ca_file), 0, confvalid_file },
	{ CONF_REDIS, CFG_STR("tls_ca_dir", "", CFGF_NONE),
	    AS_STR(cf_redis.tls_ca_dir), 0, confvalid_file },
	{ CONF_REDIS, CFG_STR("tls_cert_file", "", CFGF_NONE),
	    AS_STR(cf_redis.tls_cert_file), 0, confvalid_file },
	{ CONF_REDIS, CFG_STR("tls_key_file", "", CFGF_NONE),
	    AS_STR(cf_redis.tls_key_file), 0, confvalid_file },
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

const size_t conf_nkeys = nitems(conf_keys);

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

const struct conf_key *
conf_key_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(conf_keys); i++)
		if (strcmp(conf_keys[i].k_opt.name, name) == 0)
			return &conf_keys[i];
	return NULL;
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
		o->validcb = confvalid_option;
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

/* Append the addresses of key k, read from sec, to cf_listen. */
static int
conf_fill_listen(struct conf *cf, const struct conf_key *k, cfg_t *sec,
    char *err, size_t errlen)
{
	size_t i, n = cfg_size(sec, k->k_opt.name);
	struct conf_listen *l;

	/* Here, not in confvalid_option(): libconfuse checks no empty list. */
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
	if (cfg != NULL && confenv_apply(cfg, err, errlen) == 0)
		cf = conf_fill(cfg, path, err, errlen);
	if (cf != NULL && (confcheck_all(cf, err, errlen) == -1 ||
	    confsecret_read_all(cf, err, errlen) == -1)) {
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

int
conf_worker_count(const struct conf *cf)
{
	if (cf->cf_workers > 0)
		return cf->cf_workers;
	return cpus_usable("/sys/fs/cgroup", "/proc/self/cgroup");
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
		    confdump_value(cur, k, was, sizeof(was)),
		    confdump_value(next, k, now, sizeof(now)), next->cf_path);
		if (conf_keep(next, cur, k) == -1)
			return -1;
	}
	return 0;
}
