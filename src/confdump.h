/*
 * confdump.h - the configuration in force, in its own syntax.
 */
#ifndef HITCOUNTD_CONFDUMP_H
#define HITCOUNTD_CONFDUMP_H

#include <stddef.h>
#include <stdio.h>

struct conf;
struct conf_key;

/* Write cf in config-file syntax (what -T prints).  Returns 0 or -1. */
int confdump_print(const struct conf *cf, FILE *fp);

/*
 * Key k's value in cf as -T prints it, cut to fit buf (len > 0): buf, or
 * "?" if it cannot be written.
 */
const char *confdump_value(const struct conf *cf, const struct conf_key *k,
    char *buf, size_t len);

#endif
