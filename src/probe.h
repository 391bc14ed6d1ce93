/*
 * probe.h - hitcountd -H: ask a running hitcountd whether it is alive.
 */
#ifndef HITCOUNTD_PROBE_H
#define HITCOUNTD_PROBE_H

struct conf;

/*
 * GET /healthz from the first listen address of cf (a wildcard address is
 * asked on loopback), waiting at most timeout_ms in all.  Prints one line
 * saying what happened.  Returns 0 if the answer was 200, else 1.
 */
int probe_healthz(const struct conf *cf, int timeout_ms);

#endif
