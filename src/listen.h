/*
 * listen.h - the master's listening sockets and which configuration uses
 * each of them.
 */
#ifndef HITCOUNTD_LISTEN_H
#define HITCOUNTD_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

struct conf;

/* Which configurations use a socket (struct listener's l_uses). */
#define LISTEN_CUR      1       /* the configuration in force */
#define LISTEN_NEXT     2       /* a reload's, until committed or aborted */

struct listener {
	char *l_text;                   /* the address, for the log */
	int l_fd;
	int l_admin;                    /* a metrics_listen address */
	int l_passed;                   /* the service manager's, not bound here */
	struct sockaddr_storage l_addr; /* as bound; matched on reload */
	socklen_t l_addrlen;
	unsigned l_uses;                /* LISTEN_CUR and/or LISTEN_NEXT */
};

struct listen_set {
	struct listener *ls_l;
	size_t ls_n;
	int ls_activated;               /* the service manager's sockets */
};

/*
 * Take the sockets passed in LISTEN_FDS for this process (sd_listen_fds(3)
 * protocol; LISTEN_FDNAMES "metrics" marks a metrics_listen socket) and
 * clear those variables.  activated: the sockets belong to the service
 * manager, and every configuration uses them whatever its addresses;
 * otherwise (a binary upgrade) they are used by no configuration until
 * listen_bind() matches them with its addresses.  Returns the number of
 * sockets taken (0 if none were passed), or -1 after logging.
 */
int listen_adopt(struct listen_set *ls, int activated);

/*
 * Give every address of cf a socket marked with use (LISTEN_CUR or
 * LISTEN_NEXT): one already in ls with the same address and kind, or a new
 * one bound with cf's backlog.  Under socket activation the passed sockets
 * stand for the 'listen' addresses; the metrics_listen ones are bound
 * too unless a socket named "metrics" was passed, so that /metrics never
 * moves to the public socket.  Returns 0, or -1 after logging, with the
 * sockets this call bound closed again (marks it set on sockets already
 * there stay: listen_abort() clears LISTEN_NEXT).
 */
int listen_bind(struct listen_set *ls, const struct conf *cf, unsigned use);

/*
 * End a reload: listen_commit() makes the LISTEN_NEXT sockets current,
 * listen_abort() keeps the current ones.  Either closes every socket no
 * configuration uses any more, which is also how sockets inherited by a
 * binary upgrade that the configuration does not name are let go.
 */
void listen_commit(struct listen_set *ls);
void listen_abort(struct listen_set *ls);

/*
 * The sockets marked with use, as two arrays the caller frees with one
 * free(*fds): their descriptors (*fds) and whether each is a
 * metrics_listen one (*admin).  Returns the count, or -1 (no memory).
 */
int listen_fds(const struct listen_set *ls, unsigned use, int **fds,
    int **admin);

/*
 * In a freshly forked worker: close the sockets not marked with use, so
 * that an address no longer served does not keep accepting connections in
 * a process that will never answer them.  ls itself is left alone.
 */
void listen_close_others(const struct listen_set *ls, unsigned use);

/* Close and forget every socket (the kernel then refuses connections). */
void listen_close_all(struct listen_set *ls);

#endif
