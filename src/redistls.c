/*
 * redistls.c - TLS to Redis: the verified context, and starting TLS on a
 * connection.
 *
 * With redis.tls on, the connection to the primary (redisconn.c) speaks
 * TLS through hiredis_ssl (hiredis 1.x).  We own the OpenSSL SSL_CTX
 * rather than take hiredis's redisSSLContext, because hiredis checks
 * neither the server's name nor lets us say why a handshake failed: the
 * context trusts the CA file or directory of the configuration (the
 * system's store when neither is set), carries the client certificate
 * and key when set, and demands a valid server certificate.  Each
 * connection gets its SSL with the host name to check (tls_server_name,
 * or the host connected to) and, for a name, SNI, then hiredis takes the
 * SSL over and drives the handshake from the event loop through its
 * async read and write hooks, so nothing blocks.
 *
 * The context is made by redistls_attach(), which main.c (-t, -T, -H and
 * the start) and master.c (a reload) call right after conf_load(), in the
 * master, as root (key files are often readable by root alone), before
 * the workers fork: -t and the start fail on a bad file with its name,
 * and a reload, which loads a new configuration, reads the CA and the
 * certificate files again for the new workers; a reload that cannot read
 * them keeps the old ones running.  The context hangs on the struct conf
 * it was made from, with redistls_free() beside it, so that conf_free()
 * frees it without conf.c knowing TLS: conf is the lower layer.
 *
 * In a build without hiredis_ssl (hiredis 0.14) every function is here
 * still, and loading a configuration with tls on fails, saying why.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include "conf.h"
#include "redistls.h"

#ifdef HAVE_HIREDIS_SSL

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/hiredis_ssl.h>

struct redistls {
	SSL_CTX *rt_ctx;
	const char *rt_server_name;     /* the conf's; "" = the host's */
};

/* OpenSSL's last error, as text, and its queue emptied. */
static const char *
redistls_ssl_error(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return why ? why : "unknown OpenSSL error";
}

/*
 * path (key's value) can be opened for reading, and is a directory if
 * dir, else a regular file: OpenSSL's own errors do not say "no such
 * file" or "permission denied".
 */
static int
redistls_check_path(const struct conf *cf, const char *key, const char *path,
    int dir, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
	    (dir ? O_DIRECTORY : 0));
	if (fd == -1 || fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: option '%s': %s: %s", cf->cf_path,
		    key, path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	if (!dir && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: option '%s': %s is not a regular "
		    "file", cf->cf_path, key, path);
		return -1;
	}
	return 0;
}

/* What to trust: the CA file and/or directory, else the system's. */
static int
redistls_load_ca(SSL_CTX *ctx, const struct conf *cf, char *err,
    size_t errlen)
{
	const char *file = cf->cf_redis.tls_ca_file;
	const char *dir = cf->cf_redis.tls_ca_dir;

	if (!file[0] && !dir[0]) {
		if (SSL_CTX_set_default_verify_paths(ctx) == 1)
			return 0;
		snprintf(err, errlen, "%s: the system's CA certificates: %s",
		    cf->cf_path, redistls_ssl_error());
		return -1;
	}
	if (file[0] && redistls_check_path(cf, "tls_ca_file", file, 0, err,
	    errlen) == -1)
		return -1;
	if (dir[0] && redistls_check_path(cf, "tls_ca_dir", dir, 1, err,
	    errlen) == -1)
		return -1;
	if (SSL_CTX_load_verify_locations(ctx, file[0] ? file : NULL,
	    dir[0] ? dir : NULL) != 1) {
		snprintf(err, errlen, "%s: option '%s': %s: %s", cf->cf_path,
		    file[0] ? "tls_ca_file" : "tls_ca_dir", file[0] ? file : dir,
		    redistls_ssl_error());
		return -1;
	}
	return 0;
}

/* The client certificate (with its chain) and its key, when set. */
static int
redistls_load_cert(SSL_CTX *ctx, const struct conf *cf, char *err,
    size_t errlen)
{
	const char *cert = cf->cf_redis.tls_cert_file;
	const char *key = cf->cf_redis.tls_key_file;

	if (!cert[0])
		return 0;
	if (redistls_check_path(cf, "tls_cert_file", cert, 0, err,
	    errlen) == -1 ||
	    redistls_check_path(cf, "tls_key_file", key, 0, err, errlen) == -1)
		return -1;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "%s: option 'tls_cert_file': %s: %s",
		    cf->cf_path, cert, redistls_ssl_error());
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "%s: option 'tls_key_file': %s: %s",
		    cf->cf_path, key, redistls_ssl_error());
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s: option 'tls_key_file': %s is not "
		    "the key of %s: %s", cf->cf_path, key, cert,
		    redistls_ssl_error());
		return -1;
	}
	return 0;
}

/* The context cf asks for into *out (NULL if tls is off): 0 or -1. */
static int
redistls_load(const struct conf *cf, struct redistls **out, char *err,
    size_t errlen)
{
	struct redistls *t = NULL;

	*out = NULL;
	if (!cf->cf_redis.tls)
		return 0;
	redisInitOpenSSL();
	ERR_clear_error();
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", cf->cf_path);
		goto fail;
	}
	t->rt_server_name = cf->cf_redis.tls_server_name;
	if ((t->rt_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "%s: TLS: SSL_CTX_new: %s", cf->cf_path,
		    redistls_ssl_error());
		goto fail;
	}
	/* Redis speaks TLS 1.2 and 1.3; nothing older is worth trusting. */
	SSL_CTX_set_min_proto_version(t->rt_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(t->rt_ctx, SSL_VERIFY_PEER, NULL);
	if (redistls_load_ca(t->rt_ctx, cf, err, errlen) == -1 ||
	    redistls_load_cert(t->rt_ctx, cf, err, errlen) == -1)
		goto fail;
	*out = t;
	return 0;

fail:
	redistls_free(t);
	return -1;
}

void
redistls_free(struct redistls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->rt_ctx);
	free(t);
}

/*
 * What the server's certificate must name: an IP address is checked
 * against the certificate's IP addresses and sent no SNI (RFC 6066 has
 * no SNI for addresses); a name is checked and sent as SNI.
 */
static int
redistls_expect(SSL *ssl, const char *name)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, name, addr) == 1 ||
	    inet_pton(AF_INET6, name, addr) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    name) == 1 ? 0 : -1;
	if (SSL_set_tlsext_host_name(ssl, name) != 1 ||
	    SSL_set1_host(ssl, name) != 1)
		return -1;
	return 0;
}

struct ssl_st *
redistls_start(const struct redistls *t, struct redisAsyncContext *ac,
    const char *host, char *err, size_t errlen)
{
	const char *name = t->rt_server_name[0] ? t->rt_server_name : host;
	SSL *ssl;

	ERR_clear_error();
	if ((ssl = SSL_new(t->rt_ctx)) == NULL) {
		snprintf(err, errlen, "TLS: SSL_new: %s", redistls_ssl_error());
		return NULL;
	}
	if (redistls_expect(ssl, name) == -1) {
		snprintf(err, errlen, "TLS: cannot expect the name '%s': %s",
		    name, redistls_ssl_error());
		SSL_free(ssl);
		return NULL;
	}
	/*
	 * On failure hiredis leaves the SSL to us; on success it owns it.
	 * Over loopback the handshake may already have failed here.
	 */
	if (redisInitiateSSL(&ac->c, ssl) != REDIS_OK) {
		if (redistls_why(ssl, err, errlen) == -1)
			snprintf(err, errlen, "TLS: %s", ac->c.errstr);
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

int
redistls_why(struct ssl_st *ssl, char *buf, size_t len)
{
	long verdict = SSL_get_verify_result(ssl);
	unsigned long e = ERR_peek_last_error();

	if (!SSL_is_init_finished(ssl) && verdict != X509_V_OK) {
		snprintf(buf, len, "TLS: the server's certificate is refused: "
		    "%s", X509_verify_cert_error_string(verdict));
		ERR_clear_error();
		return 0;
	}
	if (e == 0)
		return -1;
	snprintf(buf, len, "TLS: %s", redistls_ssl_error());
	return 0;
}

int
redistls_done(struct ssl_st *ssl)
{
	return SSL_is_init_finished(ssl);
}

#else   /* !HAVE_HIREDIS_SSL */

static int
redistls_load(const struct conf *cf, struct redistls **out, char *err,
    size_t errlen)
{
	*out = NULL;
	if (!cf->cf_redis.tls)
		return 0;
	snprintf(err, errlen, "%s: tls = true (or a rediss:// REDIS_URL) "
	    "asks for TLS to Redis, which this build of hitcountd lacks: it "
	    "was built without hiredis_ssl (needs hiredis >= 1.0)",
	    cf->cf_path);
	return -1;
}

void
redistls_free(struct redistls *t)
{
	(void)t;
}

struct ssl_st *
redistls_start(const struct redistls *t, struct redisAsyncContext *ac,
    const char *host, char *err, size_t errlen)
{
	(void)t;
	(void)ac;
	(void)host;
	snprintf(err, errlen, "TLS is not built in");
	return NULL;
}

int
redistls_why(struct ssl_st *ssl, char *buf, size_t len)
{
	(void)ssl;
	(void)buf;
	(void)len;
	return -1;
}

int
redistls_done(struct ssl_st *ssl)
{
	(void)ssl;
	return 0;
}

#endif  /* HAVE_HIREDIS_SSL */

int
redistls_attach(struct conf *cf, char *err, size_t errlen)
{
	struct redistls *t;

	if (redistls_load(cf, &t, err, errlen) == -1)
		return -1;
	cf->cf_redis.tls_ctx = t;
	cf->cf_redis.tls_free = redistls_free;
	return 0;
}
