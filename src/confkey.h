/*
 * confkey.h - the shape of the configuration's key table, for the conf
 * files that loop over it.
 *
 * conf.c owns the table, conf_keys[]: one entry per key, saying its
 * section, its libconfuse declaration (name, type, default), its kind,
 * where its value goes in struct conf, its range and flags, and one more
 * check.  confvalid.c checks values against an entry, confenv.c reads a
 * key's range, and confdump.c prints values by kind.  Only conf*.c
 * include this header; the rest of the daemon sees struct conf alone.
 */
#ifndef HITCOUNTD_CONFKEY_H
#define HITCOUNTD_CONFKEY_H

#include <stddef.h>

#include <confuse.h>

/* The sections of the file; CONF_TOP is outside any. */
enum conf_section {
	CONF_TOP,
	CONF_REDIS,
	CONF_NSECTIONS
};

/* How a key's value is kept in struct conf, checked and printed. */
enum conf_kind {
	CONF_INT,               /* int, from k_min to k_max */
	CONF_BOOL,              /* int, 0 or 1 */
	CONF_STR,               /* char *, never NULL */
	CONF_LEVEL,             /* int, a syslog priority written by name */
	CONF_FORMAT,            /* int, a LOG_FORMAT_* written by name */
	CONF_LISTEN,            /* entries of cf_listen (k_off unused) */
	CONF_HOSTPORTS          /* char ** of "HOST:PORT", count at k_noff */
};

#define CONF_NONEMPTY   0x01    /* "" (for a list, {}) is refused */
#define CONF_SECRET     0x02    /* -T prints it masked */
#define CONF_ADMIN      0x04    /* CONF_LISTEN: the metrics-only addresses */
#define CONF_RESTART    0x08    /* a reload cannot apply it (not a list) */

struct conf_key {
	enum conf_section k_section;
	cfg_opt_t k_opt;                /* name, type and default */
	enum conf_kind k_kind;
	size_t k_off, k_noff;           /* members of struct conf */
	long k_min, k_max;              /* CONF_INT */
	unsigned int k_flags;           /* CONF_* above */
	int (*k_check)(cfg_t *, cfg_opt_t *);   /* one more check, or NULL */
};

/* The member of cf at offset off, as a t *. */
#define CONF_AT(cf, off, t)     ((t *)(void *)((char *)(cf) + (off)))

/* Every key, in the order -T prints them (conf.c), and their number. */
extern const struct conf_key conf_keys[];
extern const size_t conf_nkeys;

/* The sections as libconfuse options, by enum conf_section (CONF_TOP's
 * entry is CFG_END()); conf.c adds their keys when it builds the parser. */
extern const cfg_opt_t conf_sections[CONF_NSECTIONS];

/* The entry of the key called name.  name must be a key: the validator
 * is called only for options of the table.  Never NULL for a key. */
const struct conf_key *conf_key_find(const char *name);

#endif
