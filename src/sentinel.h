/*
 * sentinel.h - where the Redis primary is, in the sentinels' word.
 */
#ifndef HITCOUNTD_SENTINEL_H
#define HITCOUNTD_SENTINEL_H

struct event_base;
struct evdns_base;
struct conf;
struct sentinel;

/*
 * The answer to sentinel_ask(): the primary is host:port; or host is NULL
 * and why says, for the log, why the sentinel asked could not tell.
 */
typedef void sentinel_answer_cb(void *arg, const char *host, int port,
    const char *why);

/*
 * The sentinels now name host:port as the primary: a check found that it
 * is not the one being watched, or a sentinel announced it (any time
 * after the first sentinel_ask(), possibly where the caller is already
 * going).  Or, host NULL, a sentinel announced that it is promoting a
 * replica: the primary is about to be another, not yet known.  The watch
 * has ended either way.
 */
typedef void sentinel_moved_cb(void *arg, const char *host, int port);

/*
 * Ask the sentinels of cf->cf_redis (at least one) about the primary
 * named cf_redis.master_name, on base; sentinels given by name are looked
 * up with dns.  cf and dns must outlive the sentinel.  Returns NULL on
 * allocation failure.
 */
struct sentinel *sentinel_new(struct event_base *base, struct evdns_base *dns,
    const struct conf *cf, sentinel_answer_cb *answer,
    sentinel_moved_cb *moved, void *arg);

/*
 * Ask the next sentinel in turn where the primary is; answer is called
 * exactly once, within timeout_ms, possibly before this returns.  A check
 * (sentinel_watch()) or an earlier question still out is given up, without
 * an answer.  An answer with a port that is not a decimal number from 1 to
 * 65535 counts as no answer.  The first call also subscribes to the
 * sentinels' announcements (sentinelsub.c), for as long as s lives.
 */
void sentinel_ask(struct sentinel *s);

/*
 * Ask a sentinel once a second whether the primary is still host:port,
 * until sentinel_unwatch() or sentinel_ask(); moved is called when it is
 * not (and the watch ends).  A sentinel that cannot tell, or names a
 * malformed port, is logged and the next one is asked the next time.
 */
void sentinel_watch(struct sentinel *s, const char *host, int port);

/* Stop watching; a check under way is given up.  Idempotent. */
void sentinel_unwatch(struct sentinel *s);

/* Free s and close any connection to a sentinel; no callback is called. */
void sentinel_free(struct sentinel *s);

#endif
