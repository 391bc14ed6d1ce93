/*
 * testenv.h - the test suite's hooks in the environment.
 */
#ifndef HITCOUNTD_TESTENV_H
#define HITCOUNTD_TESTENV_H

/*
 * For the test suite only: the milliseconds in environment variable name,
 * from 1 to 60000, else dflt.
 */
long testenv_ms(const char *name, long dflt);

#endif
