/*
 * sentinelsub.h - the sentinels' announcements, as they are published.
 */
#ifndef HITCOUNTD_SENTINELSUB_H
#define HITCOUNTD_SENTINELSUB_H

struct event_base;
struct evdns_base;
struct conf;
struct sentinelsub;

/* message was published on channel, by one of the sentinels. */
typedef void sentinelsub_cb(void *arg, const char *channel,
    const char *message);

/*
 * Subscriptions to channels (NULL-terminated) on every sentinel of
 * cf->cf_redis, on base; sentinels given by name are looked up with dns.
 * channels, cf and dns must outlive it.  Nothing happens before
 * sentinelsub_start().  Returns NULL on allocation failure.
 */
struct sentinelsub *sentinelsub_new(struct event_base *base,
    struct evdns_base *dns, const struct conf *cf,
    const char *const *channels, sentinelsub_cb *cb, void *arg);

/*
 * Subscribe on every sentinel (each within timeout_ms), and again, after
 * a pause of 100 ms to 1 s, whenever a subscription fails or is lost.
 * cb may be called from any turn of the loop after this.  Idempotent.
 */
void sentinelsub_start(struct sentinelsub *sb);

/* Close every subscription and free sb; cb is not called.  NULL is allowed. */
void sentinelsub_free(struct sentinelsub *sb);

#endif
