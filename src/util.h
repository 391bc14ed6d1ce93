/*
 * util.h - small macros any file may use.
 */
#ifndef HITCOUNTD_UTIL_H
#define HITCOUNTD_UTIL_H

/* The number of elements of an array (not of a pointer). */
#define nitems(a)       (sizeof(a) / sizeof((a)[0]))

#endif
