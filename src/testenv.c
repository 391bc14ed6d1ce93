/*
 * testenv.c - the test suite's hooks in the environment.
 *
 * A few waits of the daemon are too long for a test (a binary upgrade's
 * 30 s) or too short to make a race visible (a worker's start): the test
 * suite sets HITCOUNTD_TEST_* variables to change them.  Owns reading
 * those variables, bounded so that a stray value cannot hang the daemon.
 * Calls nothing of the daemon's.  Called by master.c and spawn.c.
 */
#include "config.h"

#include <stdlib.h>

#include "testenv.h"

long
testenv_ms(const char *name, long dflt)
{
	const char *s = getenv(name);
	long ms;

	if (s == NULL || (ms = strtol(s, NULL, 10)) <= 0 || ms > 60000)
		return dflt;
	return ms;
}
