/*
 * confvalid.c - each configuration value, checked as libconfuse reads it.
 *
 * libconfuse calls confvalid_option() after each value it reads from the
 * file (never for a default), so that an error names the file, the line
 * and the key.  The checks that every key of a kind gets (an integer's
 * range, a log level's name, a listen address, a list of HOST:PORT, a
 * string that must not be empty) come from the key's entry in conf.c's
 * table; the key's own check, if any, is one of the confvalid_*()
 * functions below, which the table names.  Rules between keys wait until
 * all are read (confcheck.c).  It calls conf.c (the table, the listen
 * address parser), addr.c and log.c; conf.c calls it.
 */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <confuse.h>

#include "addr.h"
#include "conf.h"
#include "confkey.h"
#include "confvalid.h"
#include "log.h"

/* What a string option is set to: its last value. */
static const char *
confvalid_str(cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);

	return s ? s : "";
}

static int
confvalid_listen(cfg_t *cfg, cfg_opt_t *opt)
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
confvalid_hostports(cfg_t *cfg, cfg_opt_t *opt)
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

int
confvalid_user(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = confvalid_str(opt);

	if (*s && getpwnam(s) == NULL) {
		cfg_error(cfg, "option 'user': no such user '%s'", s);
		return -1;
	}
	return 0;
}

int
confvalid_group(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = confvalid_str(opt);

	if (*s && getgrnam(s) == NULL) {
		cfg_error(cfg, "option 'group': no such group '%s'", s);
		return -1;
	}
	return 0;
}

/* A path to serve: "" (off) or starting with '/' and free of spaces. */
int
confvalid_path(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = confvalid_str(opt);
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
int
confvalid_file(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = confvalid_str(opt);

	if (*s != '\0' && *s != '/') {
		cfg_error(cfg, "option '%s': '%s' is not an absolute path (the "
		    "daemon runs in /)", opt->name, s);
		return -1;
	}
	return 0;
}

/* A Unix socket: a file, and short enough for sockaddr_un. */
int
confvalid_socket(cfg_t *cfg, cfg_opt_t *opt)
{
	struct sockaddr_un sun;

	if (confvalid_file(cfg, opt) == -1)
		return -1;
	if (strlen(confvalid_str(opt)) >= sizeof(sun.sun_path)) {
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
int
confvalid_option(cfg_t *cfg, cfg_opt_t *opt)
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
		s = confvalid_str(opt);
		if (log_level_from_name(s) == -1) {
			cfg_error(cfg, "option '%s': '%s' is not one of "
			    "error, warning, info, debug", opt->name, s);
			return -1;
		}
		break;
	case CONF_FORMAT:
		s = confvalid_str(opt);
		if (log_format_from_name(s) == -1) {
			cfg_error(cfg, "option '%s': '%s' is not one of "
			    "text, kv, json", opt->name, s);
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
		if ((k->k_flags & CONF_NONEMPTY) && *confvalid_str(opt) == '\0') {
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
