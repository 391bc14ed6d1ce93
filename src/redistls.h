/*
 * redistls.h - TLS to Redis: the verified context, and starting TLS on a
 * connection.
 */
#ifndef HITCOUNTD_REDISTLS_H
#define HITCOUNTD_REDISTLS_H

#include <stddef.h>

struct conf;
struct redisAsyncContext;
struct redistls;
struct ssl_st;          /* OpenSSL's SSL, opaque here */

/*
 * Make the TLS context cf->cf_redis asks for and attach it to cf
 * (cf_redis.tls_ctx, NULL when tls is off, freed by conf_free()).  Call
 * it after conf_load(), where the configuration is read: in the master,
 * as root (key files are often readable by root alone), before the
 * workers fork.  Reads the CA file or directory and the client
 * certificate and key now, so that -t, the start and a reload find a
 * missing, unreadable or broken file.  Returns 0, or -1 with a reason
 * naming the key and the file in err (or, in a build without TLS, saying
 * so when tls is on); cf is then as conf_load() made it.
 */
int redistls_attach(struct conf *cf, char *err, size_t errlen);

/* Free a context from redistls_attach().  NULL is allowed. */
void redistls_free(struct redistls *t);

/*
 * Start TLS on ac, just connecting to host (the name the server's
 * certificate must carry unless tls_server_name says another).  hiredis
 * then owns the SSL; it is returned only for redistls_why().  Returns
 * NULL with a reason in err when TLS cannot start.
 */
struct ssl_st *redistls_start(const struct redistls *t,
    struct redisAsyncContext *ac, const char *host, char *err, size_t errlen);

/*
 * Why TLS on ssl (from redistls_start(), its context not yet freed)
 * failed: the certificate check's verdict, or OpenSSL's error (an alert
 * from the server, a protocol mismatch).  Returns 0 with the reason in
 * buf, or -1 when TLS has nothing to say (the failure is not its own).
 */
int redistls_why(struct ssl_st *ssl, char *buf, size_t len);

/* 1 when the handshake on ssl (as for redistls_why()) is done, else 0. */
int redistls_done(struct ssl_st *ssl);

#endif
