/*
 * confkey.c - the table of configuration keys, and the parser it makes.
 *
 * Every key the daemon knows is one entry of confkey_table[] below, in
 * the manner of pgbouncer's configuration table: its libconfuse
 * declaration (name, type, default), its section, where its value goes
 * in struct conf, its range, and whether a reload can apply it.  The
 * libconfuse schema and the check of each value as it is read are made
 * here from the table; filling and freeing struct conf and what a reload
 * keeps loop over it in conf.c, and what -T prints in confdump.c, so a
 * new key is one new entry (and a member of struct conf).
 * etc/hitcountd.conf and hitcountd.conf(5) list the same keys with the
 * same defaults (tests/check-conf-keys.sh keeps the three in step).
 * It calls confvalid.c (the keys' own checks), log.c (level and format
 * names) and libconfuse; conf.c, confenv.c and confdump.c call it.
 */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include <confuse.h>

#include "confdata.h"
#include "confkey.h"
#include "confvalid.h"
#include "log.h"
#include "util.h"

/* The sections as libconfuse options; confkey_schema() adds their keys. */
const cfg_opt_t confkey_sections[CONF_NSECTIONS] = {
	CFG_END(),              /* CONF_TOP is no section */
	CFG_SEC("redis", NULL, CFGF_NONE),
};

/* offsetof(struct conf, m), a compile-time error unless m has type t. */
#define CONF_OFF(m, t)  (offsetof(struct conf, m) + \
	0 * sizeof((t *)0 == &((struct conf *)0)->m))

/* The kind and place of a key: the rest of a confkey_table[] entry. */
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
const struct conf_key confkey_table[] = {
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

const size_t confkey_count = nitems(confkey_table);

const struct conf_key *
confkey_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(confkey_table); i++)
		if (strcmp(confkey_table[i].k_opt.name, name) == 0)
			return &confkey_table[i];
	return NULL;
}

/*
 * The kinds whose value is a word of a list, by kind: log.c's reader of
 * the word (-1 for none of them) and the words, as an error lists them.
 */
struct confkey_words {
	int (*cw_lookup)(const char *);
	const char *cw_words;
};

static const struct confkey_words confkey_words[] = {
	[CONF_LEVEL] = { log_level_from_name, "error, warning, info, debug" },
	[CONF_FORMAT] = { log_format_from_name, "text, kv, json" },
};

/*
 * The validator of every option: libconfuse calls it after each value it
 * reads from the file (never for a default).  The checks of the key's
 * kind and flags, then the key's own.
 */
static int
confkey_validate(cfg_t *cfg, cfg_opt_t *opt)
{
	const struct conf_key *k = confkey_find(opt->name);
	const struct confkey_words *w;
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
	case CONF_FORMAT:
		w = &confkey_words[k->k_kind];
		s = confvalid_str(opt);
		if (w->cw_lookup(s) == -1) {
			cfg_error(cfg, "option '%s': '%s' is not one of %s",
			    opt->name, s, w->cw_words);
			return -1;
		}
		break;
	case CONF_LISTEN:
		if (confvalid_listen(cfg, opt) == -1)
			return -1;
		break;
	case CONF_HOSTPORTS:
		if (confvalid_hostports(cfg, opt) == -1)
			return -1;
		break;
	case CONF_STR:
		if ((k->k_flags & CONF_NONEMPTY) &&
		    *confvalid_str(opt) == '\0') {
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
 * A parser with the schema of confkey_table[]: each section's keys, and at
 * the top level the top keys and one CFG_SEC per section.  cfg_init()
 * copies the options, so they may live on the stack.
 */
cfg_t *
confkey_schema(void)
{
	cfg_opt_t opts[CONF_NSECTIONS][nitems(confkey_table) + CONF_NSECTIONS];
	cfg_opt_t end = CFG_END();
	size_t n[CONF_NSECTIONS] = { 0 }, i;
	int s;

	for (i = 0; i < nitems(confkey_table); i++) {
		const struct conf_key *k = &confkey_table[i];
		cfg_opt_t *o = &opts[k->k_section][n[k->k_section]++];

		*o = k->k_opt;
		o->validcb = confkey_validate;
	}
	for (s = CONF_TOP + 1; s < CONF_NSECTIONS; s++) {
		opts[s][n[s]] = end;
		opts[CONF_TOP][n[CONF_TOP]] = confkey_sections[s];
		opts[CONF_TOP][n[CONF_TOP]++].subopts = opts[s];
	}
	opts[CONF_TOP][n[CONF_TOP]] = end;
	return cfg_init(opts[CONF_TOP], CFGF_NONE);
}
