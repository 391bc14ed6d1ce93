/*
 * conf.c - the configuration schema, its validation and the environment
 * overrides.
 *
 * The file is read with libconfuse.  Every key the daemon knows is in the
 * schema below with its default; etc/hitcountd.conf and hitcountd.conf(5)
 * list the same keys (tests/check-conf-keys.sh keeps the three in step).
 * Errors name the file, the line and the key, so that `hitcountd -t` can
 * be run before a reload and a broken file never replaces a good one.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <confuse.h>

#include "conf.h"
#include "log.h"
#include "util.h"

static cfg_opt_t conf_redis_opts[] = {
	CFG_STR("host", "redis", CFGF_NONE),
	CFG_INT("port", 6379, CFGF_NONE),
	CFG_STR("key", "visits", CFGF_NONE),
	CFG_INT("timeout_ms", 1000, CFGF_NONE),
	CFG_STR("password", "", CFGF_NONE),
	CFG_INT("db", 0, CFGF_NONE),
	CFG_STR_LIST("sentinels", "{}", CFGF_NONE),
	CFG_STR("master_name", "mymaster", CFGF_NONE),
	CFG_STR("sentinel_password", "", CFGF_NONE),
	CFG_INT("min_replicas_acked", 0, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t conf_opts[] = {
	CFG_STR_LIST("listen", "{\"0.0.0.0:5000\"}", CFGF_NONE),
	CFG_INT("workers", 0, CFGF_NONE),
	CFG_STR("pidfile", "/run/hitcountd.pid", CFGF_NONE),
	CFG_INT("shutdown_timeout", 8, CFGF_NONE),
	CFG_INT("keepalive_timeout", 5, CFGF_NONE),
	CFG_INT("header_timeout", 10, CFGF_NONE),
	CFG_INT("max_connections", 4096, CFGF_NONE),
	CFG_INT("backlog", 511, CFGF_NONE),
	CFG_INT("max_header_size", 8192, CFGF_NONE),
	CFG_INT("max_headers", 100, CFGF_NONE),
	CFG_STR("log_level", "info", CFGF_NONE),
	CFG_STR("user", "nobody", CFGF_NONE),
	CFG_STR("group", "", CFGF_NONE),
	CFG_BOOL("allow_root", cfg_false, CFGF_NONE),
	CFG_STR("log_format", "text", CFGF_NONE),
	CFG_STR("access_log", "", CFGF_NONE),
	CFG_STR("metrics_path", "/metrics", CFGF_NONE),
	CFG_STR("readyz_path", "/readyz", CFGF_NONE),
	CFG_STR_LIST("metrics_listen", "{}", CFGF_NONE),
	CFG_SEC("redis", conf_redis_opts, CFGF_NONE),
	CFG_END()
};

/* The allowed range of every integer key (names are unique across sections). */
static const struct {
	const char *name;
	long min, max;
} conf_ranges[] = {
	{ "workers", 0, 256 },
	{ "shutdown_timeout", 1, 3600 },
	{ "keepalive_timeout", 0, 3600 },
	{ "header_timeout", 1, 3600 },
	{ "max_connections", 1, 1000000 },
	{ "backlog", 1, 65535 },
	{ "max_header_size", 1024, 1048576 },
	{ "max_headers", 1, 10000 },
	{ "port", 1, 65535 },
	{ "timeout_ms", 1, 600000 },
	{ "db", 0, 1000000 },
	{ "min_replicas_acked", 0, 100 },
};

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

static int
conf_validate_int(cfg_t *cfg, cfg_opt_t *opt)
{
	long v = cfg_opt_getnint(opt, cfg_opt_size(opt) - 1);
	size_t i;

	for (i = 0; i < nitems(conf_ranges); i++) {
		if (strcmp(conf_ranges[i].name, opt->name) != 0)
			continue;
		if (v < conf_ranges[i].min || v > conf_ranges[i].max) {
			cfg_error(cfg, "option '%s': %ld is out of range "
			    "(%ld..%ld)", opt->name, v, conf_ranges[i].min,
			    conf_ranges[i].max);
			return -1;
		}
	}
	return 0;
}

static int
conf_validate_nonempty(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);

	if (s == NULL || *s == '\0') {
		cfg_error(cfg, "option '%s' must not be empty", opt->name);
		return -1;
	}
	return 0;
}

static int
conf_validate_listen(cfg_t *cfg, cfg_opt_t *opt)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[256];
	unsigned int i;

	if (cfg_opt_size(opt) == 0 && strcmp(opt->name, "listen") == 0) {
		cfg_error(cfg, "option 'listen' needs at least one address");
		return -1;
	}
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
conf_validate_user(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);

	if (s && *s && getpwnam(s) == NULL) {
		cfg_error(cfg, "option 'user': no such user '%s'", s);
		return -1;
	}
	return 0;
}

static int
conf_validate_group(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);

	if (s && *s && getgrnam(s) == NULL) {
		cfg_error(cfg, "option 'group': no such group '%s'", s);
		return -1;
	}
	return 0;
}

int
conf_split_hostport(const char *text, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = text;
	size_t n;
	char *end;
	long p;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		h = text + 1;
		n = close - h;
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL || strchr(text, ':') != colon)
			return -1;
		n = colon - text;
	}
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno || p < 1 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

static int
conf_validate_sentinels(cfg_t *cfg, cfg_opt_t *opt)
{
	char host[256];
	unsigned int i;
	int port;

	for (i = 0; i < cfg_opt_size(opt); i++) {
		const char *s = cfg_opt_getnstr(opt, i);

		if (conf_split_hostport(s, host, sizeof(host), &port) == -1) {
			cfg_error(cfg, "option 'sentinels': '%s' is not "
			    "HOST:PORT", s);
			return -1;
		}
	}
	return 0;
}

static int
conf_validate_log_format(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);

	if (log_format_from_name(s) == -1) {
		cfg_error(cfg, "option 'log_format': '%s' is not one of "
		    "text, kv, json", s);
		return -1;
	}
	return 0;
}

/* A path to serve: "" (off) or starting with '/' and free of spaces. */
static int
conf_validate_path(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);
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

static int
conf_validate_log_level(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);

	if (log_level_from_name(s) == -1) {
		cfg_error(cfg, "option 'log_level': '%s' is not one of "
		    "error, warning, info, debug", s);
		return -1;
	}
	return 0;
}

int
conf_parse_listen(const char *text, struct sockaddr_storage *ss,
    socklen_t *len, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *colon, *port, *h = host;
	size_t hlen;
	char *end;
	long p;
	int rc;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "'%s': expected [ADDRESS]:PORT",
			    text);
			return -1;
		}
		hlen = close - text - 1;
		if (hlen == 0 || hlen >= sizeof(host)) {
			snprintf(err, errlen, "'%s': bad IPv6 address", text);
			return -1;
		}
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
		port = close + 2;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL || strchr(text, ':') != colon) {
			snprintf(err, errlen, "'%s': expected ADDRESS:PORT "
			    "(IPv6 as [ADDRESS]:PORT)", text);
			return -1;
		}
		hlen = colon - text;
		if (hlen == 0 || hlen >= sizeof(host)) {
			snprintf(err, errlen, "'%s': missing address", text);
			return -1;
		}
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		port = colon + 1;
	}
	errno = 0;
	p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno || p < 1 || p > 65535) {
		snprintf(err, errlen, "'%s': port must be 1..65535", text);
		return -1;
	}
	if (strcmp(host, "*") == 0)
		h = "0.0.0.0";
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(h, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "'%s': %s", text, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Parse a port number from the environment: 1..65535 or -1. */
static int
conf_env_port(const char *s)
{
	char *end;
	long p;

	errno = 0;
	p = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno || p < 1 || p > 65535)
		return -1;
	return (int)p;
}

/*
 * REDIS_HOST and REDIS_PORT, as the original Docker setup passes them.
 * REDIS_PORT may also be in the "tcp://HOST:PORT" form that Docker's
 * legacy links export.
 */
static int
conf_apply_env(cfg_t *cfg, char *err, size_t errlen)
{
	cfg_t *redis = cfg_getsec(cfg, "redis");
	const char *host = getenv("REDIS_HOST");
	const char *port = getenv("REDIS_PORT");

	if (port && *port) {
		if (strncmp(port, "tcp://", 6) == 0) {
			const char *a = port + 6;
			const char *colon = strrchr(a, ':');
			char linkhost[256];
			int p = colon ? conf_env_port(colon + 1) : -1;

			if (p == -1 || colon == a ||
			    (size_t)(colon - a) >= sizeof(linkhost)) {
				snprintf(err, errlen, "REDIS_PORT: '%s' is "
				    "not tcp://HOST:PORT", port);
				return -1;
			}
			memcpy(linkhost, a, colon - a);
			linkhost[colon - a] = '\0';
			cfg_setint(redis, "port", p);
			if (host == NULL || *host == '\0')
				cfg_setstr(redis, "host", linkhost);
		} else {
			int p = conf_env_port(port);

			if (p == -1) {
				snprintf(err, errlen, "REDIS_PORT: '%s' is "
				    "not a port number (1..65535)", port);
				return -1;
			}
			cfg_setint(redis, "port", p);
		}
	}
	if (host && *host)
		cfg_setstr(redis, "host", host);
	return 0;
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

/* Rules between keys, which the per-key validators cannot see. */
static int
conf_check_consistency(const struct conf *cf, char *err, size_t errlen)
{
	size_t i, j;

	for (i = 0; i < cf->cf_nlisten; i++)
		for (j = i + 1; j < cf->cf_nlisten; j++) {
			const struct conf_listen *a = &cf->cf_listen[i];
			const struct conf_listen *b = &cf->cf_listen[j];

			if (a->l_admin == b->l_admin ||
			    a->l_addrlen != b->l_addrlen ||
			    memcmp(&a->l_addr, &b->l_addr, a->l_addrlen) != 0)
				continue;
			snprintf(err, errlen, "%s: option 'metrics_listen': '%s' "
			    "is also a 'listen' address", cf->cf_path,
			    b->l_text);
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
	return 0;
}

static char *
conf_strdup(const char *s)
{
	return strdup(s ? s : "");
}

struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
	struct conf *cf = NULL;
	cfg_t *cfg, *redis;
	size_t i, nadmin;
	int rc;

	conf_errbuf = err;
	conf_errlen = errlen;
	conf_errset = 0;
	err[0] = '\0';

	cfg = cfg_init(conf_opts, CFGF_NONE);
	if (cfg == NULL) {
		snprintf(err, errlen, "%s: cannot initialise the parser", path);
		return NULL;
	}
	cfg_set_error_function(cfg, conf_errfunc);
	conf_top = cfg;
	for (i = 0; i < nitems(conf_ranges); i++) {
		const char *name = conf_ranges[i].name;
		char full[64];

		if (strcmp(name, "port") == 0 || strcmp(name, "timeout_ms") == 0
		    || strcmp(name, "db") == 0 ||
		    strcmp(name, "min_replicas_acked") == 0) {
			snprintf(full, sizeof(full), "redis|%s", name);
			name = full;
		}
		cfg_set_validate_func(cfg, name, conf_validate_int);
	}
	cfg_set_validate_func(cfg, "listen", conf_validate_listen);
	cfg_set_validate_func(cfg, "metrics_listen", conf_validate_listen);
	cfg_set_validate_func(cfg, "log_format", conf_validate_log_format);
	cfg_set_validate_func(cfg, "metrics_path", conf_validate_path);
	cfg_set_validate_func(cfg, "readyz_path", conf_validate_path);
	cfg_set_validate_func(cfg, "log_level", conf_validate_log_level);
	cfg_set_validate_func(cfg, "user", conf_validate_user);
	cfg_set_validate_func(cfg, "group", conf_validate_group);
	cfg_set_validate_func(cfg, "redis|host", conf_validate_nonempty);
	cfg_set_validate_func(cfg, "redis|key", conf_validate_nonempty);
	cfg_set_validate_func(cfg, "redis|master_name", conf_validate_nonempty);
	cfg_set_validate_func(cfg, "redis|sentinels", conf_validate_sentinels);

	errno = 0;
	rc = cfg_parse(cfg, path);
	if (rc == CFG_FILE_ERROR) {
		snprintf(err, errlen, "%s: %s", path,
		    errno ? strerror(errno) : "cannot read the file");
		goto fail;
	}
	if (rc != CFG_SUCCESS) {
		if (!conf_errset)
			snprintf(err, errlen, "%s: syntax error", path);
		goto fail;
	}
	if (conf_apply_env(cfg, err, errlen) == -1)
		goto fail;

	cf = calloc(1, sizeof(*cf));
	if (cf == NULL)
		goto nomem;
	cf->cf_path = strdup(path);
	nadmin = cfg_size(cfg, "metrics_listen");
	cf->cf_nlisten = cfg_size(cfg, "listen") + nadmin;
	cf->cf_listen = calloc(cf->cf_nlisten, sizeof(*cf->cf_listen));
	if (cf->cf_path == NULL || cf->cf_listen == NULL)
		goto nomem;
	for (i = 0; i < cf->cf_nlisten; i++) {
		struct conf_listen *l = &cf->cf_listen[i];
		size_t npub = cf->cf_nlisten - nadmin;

		/* The public addresses first: -H asks the first one. */
		l->l_admin = i >= npub;
		l->l_text = strdup(l->l_admin ?
		    cfg_getnstr(cfg, "metrics_listen", i - npub) :
		    cfg_getnstr(cfg, "listen", i));
		if (l->l_text == NULL)
			goto nomem;
		if (conf_parse_listen(l->l_text, &l->l_addr, &l->l_addrlen,
		    err, errlen) == -1)
			goto fail;
	}
	cf->cf_workers = cfg_getint(cfg, "workers");
	cf->cf_pidfile = conf_strdup(cfg_getstr(cfg, "pidfile"));
	cf->cf_shutdown_timeout = cfg_getint(cfg, "shutdown_timeout");
	cf->cf_keepalive_timeout = cfg_getint(cfg, "keepalive_timeout");
	cf->cf_header_timeout = cfg_getint(cfg, "header_timeout");
	cf->cf_max_connections = cfg_getint(cfg, "max_connections");
	cf->cf_backlog = cfg_getint(cfg, "backlog");
	cf->cf_max_header_size = cfg_getint(cfg, "max_header_size");
	cf->cf_max_headers = cfg_getint(cfg, "max_headers");
	cf->cf_log_level = log_level_from_name(cfg_getstr(cfg, "log_level"));
	cf->cf_user = conf_strdup(cfg_getstr(cfg, "user"));
	cf->cf_group = conf_strdup(cfg_getstr(cfg, "group"));
	cf->cf_allow_root = cfg_getbool(cfg, "allow_root");
	cf->cf_log_format = log_format_from_name(cfg_getstr(cfg, "log_format"));
	cf->cf_access_log = conf_strdup(cfg_getstr(cfg, "access_log"));
	cf->cf_metrics_path = conf_strdup(cfg_getstr(cfg, "metrics_path"));
	cf->cf_readyz_path = conf_strdup(cfg_getstr(cfg, "readyz_path"));
	if (cf->cf_access_log == NULL || cf->cf_metrics_path == NULL ||
	    cf->cf_readyz_path == NULL)
		goto nomem;
	if (cf->cf_user == NULL || cf->cf_group == NULL)
		goto nomem;
	if (conf_resolve_ids(cf, err, errlen) == -1)
		goto fail;
	if (conf_check_consistency(cf, err, errlen) == -1)
		goto fail;
	if (geteuid() == 0 && cf->cf_uid == 0 && !cf->cf_allow_root) {
		snprintf(err, errlen, "%s: refusing to run workers as root: set "
		    "'user' to an unprivileged user, or allow_root = true",
		    path);
		goto fail;
	}
	redis = cfg_getsec(cfg, "redis");
	cf->cf_redis.host = conf_strdup(cfg_getstr(redis, "host"));
	cf->cf_redis.port = cfg_getint(redis, "port");
	cf->cf_redis.key = conf_strdup(cfg_getstr(redis, "key"));
	cf->cf_redis.timeout_ms = cfg_getint(redis, "timeout_ms");
	cf->cf_redis.password = conf_strdup(cfg_getstr(redis, "password"));
	cf->cf_redis.db = cfg_getint(redis, "db");
	cf->cf_redis.nsentinels = cfg_size(redis, "sentinels");
	if (cf->cf_redis.nsentinels > 0) {
		cf->cf_redis.sentinels = calloc(cf->cf_redis.nsentinels,
		    sizeof(*cf->cf_redis.sentinels));
		if (cf->cf_redis.sentinels == NULL)
			goto nomem;
		for (i = 0; i < cf->cf_redis.nsentinels; i++) {
			cf->cf_redis.sentinels[i] =
			    strdup(cfg_getnstr(redis, "sentinels", i));
			if (cf->cf_redis.sentinels[i] == NULL)
				goto nomem;
		}
	}
	cf->cf_redis.master_name = conf_strdup(cfg_getstr(redis, "master_name"));
	cf->cf_redis.sentinel_password =
	    conf_strdup(cfg_getstr(redis, "sentinel_password"));
	cf->cf_redis.min_replicas_acked = cfg_getint(redis,
	    "min_replicas_acked");
	if (cf->cf_redis.master_name == NULL ||
	    cf->cf_redis.sentinel_password == NULL)
		goto nomem;
	if (cf->cf_pidfile == NULL || cf->cf_redis.host == NULL ||
	    cf->cf_redis.key == NULL || cf->cf_redis.password == NULL)
		goto nomem;
	cfg_free(cfg);
	conf_errbuf = NULL;
	conf_top = NULL;
	return cf;

nomem:
	snprintf(err, errlen, "%s: out of memory", path);
fail:
	conf_free(cf);
	cfg_free(cfg);
	conf_errbuf = NULL;
	conf_top = NULL;
	return NULL;
}

void
conf_free(struct conf *cf)
{
	size_t i;

	if (cf == NULL)
		return;
	for (i = 0; cf->cf_listen && i < cf->cf_nlisten; i++)
		free(cf->cf_listen[i].l_text);
	free(cf->cf_listen);
	free(cf->cf_path);
	free(cf->cf_pidfile);
	free(cf->cf_user);
	free(cf->cf_group);
	free(cf->cf_access_log);
	free(cf->cf_metrics_path);
	free(cf->cf_readyz_path);
	free(cf->cf_redis.host);
	free(cf->cf_redis.key);
	free(cf->cf_redis.password);
	for (i = 0; cf->cf_redis.sentinels && i < cf->cf_redis.nsentinels; i++)
		free(cf->cf_redis.sentinels[i]);
	free(cf->cf_redis.sentinels);
	free(cf->cf_redis.master_name);
	free(cf->cf_redis.sentinel_password);
	free(cf);
}

/* Print s as a libconfuse quoted string. */
static void
conf_print_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', fp);
		fputc(*s, fp);
	}
	fputc('"', fp);
}

/* Print the addresses of one kind (admin or not) as a list option. */
static void
conf_print_list(FILE *fp, const char *name, const struct conf *cf, int admin)
{
	size_t i;
	int first = 1;

	fprintf(fp, "%s = {", name);
	for (i = 0; i < cf->cf_nlisten; i++) {
		if (cf->cf_listen[i].l_admin != admin)
			continue;
		if (!first)
			fputs(", ", fp);
		conf_print_str(fp, cf->cf_listen[i].l_text);
		first = 0;
	}
	fputs("}\n", fp);
}

int
conf_print(const struct conf *cf, FILE *fp)
{
	size_t i;

	fprintf(fp, "# effective configuration of %s\n", cf->cf_path);
	conf_print_list(fp, "listen", cf, 0);
	conf_print_list(fp, "metrics_listen", cf, 1);
	fprintf(fp, "workers = %d\n", cf->cf_workers);
	fputs("pidfile = ", fp);
	conf_print_str(fp, cf->cf_pidfile);
	fprintf(fp, "\nshutdown_timeout = %d\n", cf->cf_shutdown_timeout);
	fprintf(fp, "keepalive_timeout = %d\n", cf->cf_keepalive_timeout);
	fprintf(fp, "header_timeout = %d\n", cf->cf_header_timeout);
	fprintf(fp, "max_connections = %d\n", cf->cf_max_connections);
	fprintf(fp, "backlog = %d\n", cf->cf_backlog);
	fprintf(fp, "max_header_size = %d\n", cf->cf_max_header_size);
	fprintf(fp, "max_headers = %d\n", cf->cf_max_headers);
	fprintf(fp, "log_level = \"%s\"\n", log_level_name(cf->cf_log_level));
	fputs("user = ", fp);
	conf_print_str(fp, cf->cf_user);
	fputs("\ngroup = ", fp);
	conf_print_str(fp, cf->cf_group);
	fprintf(fp, "\nallow_root = %s\n", cf->cf_allow_root ? "true" : "false");
	fprintf(fp, "log_format = \"%s\"\n", log_format_name(cf->cf_log_format));
	fputs("access_log = ", fp);
	conf_print_str(fp, cf->cf_access_log);
	fputs("\nmetrics_path = ", fp);
	conf_print_str(fp, cf->cf_metrics_path);
	fputs("\nreadyz_path = ", fp);
	conf_print_str(fp, cf->cf_readyz_path);
	fputs("\n", fp);
	fputs("redis {\n    host = ", fp);
	conf_print_str(fp, cf->cf_redis.host);
	fprintf(fp, "\n    port = %d\n    key = ", cf->cf_redis.port);
	conf_print_str(fp, cf->cf_redis.key);
	fprintf(fp, "\n    timeout_ms = %d\n    password = ",
	    cf->cf_redis.timeout_ms);
	/* Never echo a secret: -T output ends up in bug reports. */
	conf_print_str(fp, cf->cf_redis.password[0] ? "********" : "");
	fprintf(fp, "\n    db = %d\n    sentinels = {", cf->cf_redis.db);
	for (i = 0; i < cf->cf_redis.nsentinels; i++) {
		if (i)
			fputs(", ", fp);
		conf_print_str(fp, cf->cf_redis.sentinels[i]);
	}
	fputs("}\n    master_name = ", fp);
	conf_print_str(fp, cf->cf_redis.master_name);
	fputs("\n    sentinel_password = ", fp);
	conf_print_str(fp, cf->cf_redis.sentinel_password[0] ? "********" : "");
	fprintf(fp, "\n    min_replicas_acked = %d\n}\n",
	    cf->cf_redis.min_replicas_acked);
	return ferror(fp) ? -1 : 0;
}

int
conf_worker_count(const struct conf *cf)
{
	long n;

	if (cf->cf_workers > 0)
		return cf->cf_workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > 256)
		n = 256;
	return (int)n;
}
