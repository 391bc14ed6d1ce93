/*
 * confkey.h - the table of configuration keys, for the conf files that
 * loop over it: conf.c (filling, freeing, reloading), confenv.c (a key's
 * range) and confdump.c (printing by kind).  Only conf*.c include it;
 * the rest of the daemon sees struct conf alone.
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

/* Every key, in the order -T prints them, and their number. */
extern const struct conf_key confkey_table[];
extern const size_t confkey_count;

/* The sections as libconfuse options, by enum conf_section (CONF_TOP's
 * entry is CFG_END()), for their names. */
extern const cfg_opt_t confkey_sections[CONF_NSECTIONS];

/* The entry of the key called name, or NULL if there is none. */
const struct conf_key *confkey_find(const char *name);

/*
 * A new libconfuse parser with the schema of the table: each section's
 * keys with their defaults, and a validator on every key that makes the
 * checks of its kind, flags and own check (confvalid.c) as a value is
 * read.  Returns it (free with cfg_free()), or NULL.
 */
cfg_t *confkey_schema(void);

#endif
