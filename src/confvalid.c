/*
 * confvalid.c - the checks of single configuration values, as libconfuse
 * reads them.
 *
 * The table of keys (confkey.c) names, for some keys, one check of their
 * own: user and group exist, a path to serve looks like one, a file is
 * an absolute path, a socket path fits sockaddr_un.  And for the kinds
 * of key that hold addresses, a list of listen addresses (resolved, as
 * bind(2) will take them) and a list of HOST:PORT.  Each takes the
 * option as libconfuse hands it to a validator and reports through
 * cfg_error(), so that the error names the file, the line and the key.
 * It knows nothing of the table or of struct conf: it calls addr.c and
 * libc; confkey.c and conf.c call it.
 */
#include "config.h"

#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <confuse.h>

#include "addr.h"
#include "confvalid.h"

/* What a string option is set to: its last value. */
const char *
confvalid_str(cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);

	return s ? s : "";
}

int
confvalid_listen(cfg_t *cfg, cfg_opt_t *opt)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[256];
	unsigned int i;

	for (i = 0; i < cfg_opt_size(opt); i++) {
		const char *s = cfg_opt_getnstr(opt, i);

		if (confvalid_listen_addr(s, &ss, &len, why,
		    sizeof(why)) == -1) {
			cfg_error(cfg, "option '%s': %s", opt->name, why);
			return -1;
		}
	}
	return 0;
}

int
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

int
confvalid_listen_addr(const char *text, struct sockaddr_storage *ss,
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
