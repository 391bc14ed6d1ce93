/*
 * redisurl.h - REDIS_URL: where Redis is, in the URL form of its clients.
 */
#ifndef HITCOUNTD_REDISURL_H
#define HITCOUNTD_REDISURL_H

#include <stddef.h>
#include <sys/un.h>

/* The longest Unix socket path: sockaddr_un's sun_path holds its NUL too. */
#define REDISURL_SOCKET_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

struct redisurl {
	int ru_tls;                     /* rediss:// */
	char ru_host[256];              /* "" for unix:// */
	int ru_port;                    /* 6379 unless given; 0 for unix:// */
	char ru_socket[REDISURL_SOCKET_MAX + 1];  /* unix://; else "" */
	char *ru_user;                  /* NULL when the URL has none */
	char *ru_password;              /* NULL when the URL has none */
	long ru_db;                     /* -1 when the URL has none */
};

/*
 * Parse url, one of
 *   redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]
 *   rediss://[USER[:PASSWORD]@]HOST[:PORT][/DB]
 *   unix://[USER[:PASSWORD]@]/PATH[?db=DB]
 * (HOST may be "[IPv6]"; "?db=DB" is also taken by the first two), with
 * USER, PASSWORD and PATH percent-decoded.  Returns 0 with u filled in
 * (free with redisurl_clear()), or -1 with u empty and a reason in err
 * that never quotes the URL, which may hold a password.
 */
int redisurl_parse(const char *url, struct redisurl *u, char *err,
    size_t errlen);

/* Free what redisurl_parse() allocated, wiping the password first. */
void redisurl_clear(struct redisurl *u);

#endif
