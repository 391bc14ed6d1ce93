/*
 * confvalid.h - the checks of single configuration values, as libconfuse
 * reads them, and the listen address parser they use.
 */
#ifndef HITCOUNTD_CONFVALID_H
#define HITCOUNTD_CONFVALID_H

#include <stddef.h>
#include <sys/socket.h>

#include <confuse.h>

/* What a string option is set to: its last value ("" if none). */
const char *confvalid_str(cfg_opt_t *opt);

/*
 * The checks of the list kinds of key: every entry of a listen or
 * metrics_listen list parses as confvalid_listen_addr() does, every entry
 * of sentinels or cluster is HOST:PORT.  Each 0 or -1 after cfg_error().
 */
int confvalid_listen(cfg_t *cfg, cfg_opt_t *opt);
int confvalid_hostports(cfg_t *cfg, cfg_opt_t *opt);

/*
 * The keys' own checks (k_check in confkey.c's table), each 0 or -1 after
 * cfg_error(): user and group name an existing user and group; path is
 * a path to serve ("" or "/name", no space, not "/" or "/healthz"); file
 * is "" or an absolute path (the daemon runs in /); socket is a file
 * short enough for sockaddr_un.
 */
int confvalid_user(cfg_t *cfg, cfg_opt_t *opt);
int confvalid_group(cfg_t *cfg, cfg_opt_t *opt);
int confvalid_path(cfg_t *cfg, cfg_opt_t *opt);
int confvalid_file(cfg_t *cfg, cfg_opt_t *opt);
int confvalid_socket(cfg_t *cfg, cfg_opt_t *opt);

/*
 * Parse "HOST:PORT" ("[v6]:PORT", "*:PORT" for every IPv4 address) into
 * a socket address; HOST may be a name, resolved now.  Returns 0, or -1
 * with "'TEXT': reason" in err.
 */
int confvalid_listen_addr(const char *text, struct sockaddr_storage *ss,
    socklen_t *len, char *err, size_t errlen);

#endif
