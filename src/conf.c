/*
 * conf.c - loading the configuration: conf_load()'s steps in order, and
 * filling, freeing and reloading struct conf by the table of keys.
 *
 * The keys are one table (confkey.c); this file reads the file with the
 * parser the table makes, applies the environment (confenv.c), fills
 * struct conf by the table, checks the rules between keys (confcheck.c),
 * reads the password files (confsecret.c), and on a reload keeps what
 * only a restart can change, naming it as -T prints it (confdump.c).
 * Errors name the file, the line and the key, so that `hitcountd -t` can
 * be run before a reload and a broken file never replaces a good one.
 * It knows nothing of TLS: the TLS context is made after conf_load() by
 * redistls_attach() (the Redis side), and freed here through the pointer
 * that came with it.  It calls the conf*.c files above, addr.c,
 * cpus.c and log.c; main.c and master.c call it.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int
conf_split_hostport(const char *text, char *host, size_t hostlen, int *port)
{
	char why[128];

	return addr_split(text, strlen(text), 0, host, hostlen, port, why,
	    sizeof(why));
}

/* Append the addresses of key k, read from sec, to cf_listen. */
static int
conf_fill_listen(struct conf *cf, const struct conf_key *k, cfg_t *sec,
    char *err, size_t errlen)
{
	size_t i, n = cfg_size(sec, k->k_opt.name);
	struct conf_listen *l;

	/* Here, not in confkey_validate(): libconfuse checks no empty list. */
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
		if (confvalid_listen_addr(l->cfl_text, &l->cfl_addr,
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
	for (i = 0; i < confkey_count; i++) {
		const struct conf_key *k = &confkey_table[i];
		cfg_t *sec = cfg;

		if (k->k_section != CONF_TOP)
			sec = cfg_getsec(cfg, confkey_sections[k->k_section].name);
		if (conf_fill_key(cf, k, sec, err, errlen) == -1) {
			conf_free(cf);
			return NULL;
		}
	}
	return cf;
}

/* Read path with the schema of confkey_table[]: the parsed file, or NULL. */
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
	cfg = confkey_schema();
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
	for (i = 0; i < confkey_count; i++) {
		const struct conf_key *k = &confkey_table[i];

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

	for (i = 0; i < confkey_count; i++) {
		const struct conf_key *k = &confkey_table[i];

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
