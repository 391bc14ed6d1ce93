/*
 * confcheck.h - the rules between configuration keys, once all are read.
 */
#ifndef HITCOUNTD_CONFCHECK_H
#define HITCOUNTD_CONFCHECK_H

#include <stddef.h>

struct conf;

/*
 * Set cf_uid and cf_gid from user and group, then check the rules between
 * the keys of cf (filled, with the environment applied).  Returns 0, or
 * -1 with "FILE: reason" in err.
 */
int confcheck_all(struct conf *cf, char *err, size_t errlen);

#endif
