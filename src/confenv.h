/*
 * confenv.h - the environment over the configuration file.
 */
#ifndef HITCOUNTD_CONFENV_H
#define HITCOUNTD_CONFENV_H

#include <stddef.h>

#include <confuse.h>

/*
 * Set the redis section of cfg, a parsed file of conf.c's schema, from
 * REDIS_HOST and REDIS_PORT, then REDIS_PASSWORD (over password and
 * password_file), then REDIS_URL over all of them.  Returns 0, or -1
 * with "VARIABLE: reason" in err.
 */
int confenv_apply(cfg_t *cfg, char *err, size_t errlen);

#endif
