/*
 * confvalid.h - each configuration value, checked as libconfuse reads it.
 */
#ifndef HITCOUNTD_CONFVALID_H
#define HITCOUNTD_CONFVALID_H

#include <confuse.h>

/*
 * The validator of every option of conf.c's table (its validcb): the
 * checks of the key's kind and flags, then the key's own (k_check).
 * Returns 0, or -1 after cfg_error() with "option 'KEY': reason".
 */
int confvalid_option(cfg_t *cfg, cfg_opt_t *opt);

/*
 * The keys' own checks (k_check in conf.c's table), each 0 or -1 after
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

#endif
