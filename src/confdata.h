/*
 * confdata.h - the configuration as loaded: struct conf, the values in
 * force, which every layer above the configuration reads.
 *
 * A header of its own so that the files that load the configuration
 * (conf.c and the conf*.c it calls) all see the struct without including
 * each other's headers: conf.h (loading, freeing) includes this one, and
 * so do confkey.c, confcheck.c, confsecret.c and confdump.c.  Only the
 * conf*.c files write it (and redistls_attach(), the TLS context); the
 * rest of the daemon reads it through conf.h.
 */
#ifndef HITCOUNTD_CONFDATA_H
#define HITCOUNTD_CONFDATA_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct redistls;

struct conf_listen {
	char *cfl_text;                 /* as written, "0.0.0.0:5000" */
	int cfl_admin;                  /* metrics_listen's: no counter page */
	struct sockaddr_storage cfl_addr;
	socklen_t cfl_addrlen;
};

struct conf {
	char *cf_path;
	struct conf_listen *cf_listen;  /* listen, then metrics_listen */
	size_t cf_nlisten;
	int cf_workers;               /* as configured; 0 = one per CPU */
	char *cf_pidfile;             /* "" = none */
	int cf_shutdown_timeout;      /* seconds */
	int cf_shutdown_delay;        /* seconds served unready after TERM */
	int cf_keepalive_timeout;     /* seconds, 0 = no keep-alive */
	int cf_header_timeout;        /* seconds */
	int cf_max_connections;       /* per worker */
	int cf_backlog;
	int cf_max_header_size;       /* bytes */
	int cf_max_headers;
	int cf_log_level;             /* syslog priority */
	char *cf_user;                /* workers' user when started as root */
	char *cf_group;               /* "" = the user's primary group */
	int cf_allow_root;            /* workers may run as root */
	uid_t cf_uid;                 /* resolved from cf_user (0 if "") */
	gid_t cf_gid;
	int cf_log_format;            /* LOG_FORMAT_* */
	char *cf_access_log;          /* "" off, "stderr", or a file */
	char *cf_metrics_path;        /* "" = not served */
	char *cf_readyz_path;         /* "" = not served */
	int cf_readyz_redis;          /* readyz_path also follows Redis */
	struct {
		char *host;
		int port;
		char *socket;         /* a Unix socket instead of host/port */
		char *key;
		int timeout_ms;
		char *username;       /* "" = AUTH with the password alone */
		char *password;       /* password_file's content if that is set */
		char *password_file;
		int db;
		char **sentinels;     /* "host:port"; none = use host/port */
		size_t nsentinels;
		char *master_name;
		char *sentinel_username;
		char *sentinel_password;  /* or sentinel_password_file's content */
		char *sentinel_password_file;
		int min_replicas_acked;  /* > 0: confirm INCRs with WAIT */
		char **cluster;       /* "host:port" seeds; none = no cluster */
		size_t ncluster;
		int tls;              /* TLS to the primary (redistls.c) */
		char *tls_ca_file;    /* "" and tls_ca_dir "": the system's */
		char *tls_ca_dir;
		char *tls_cert_file;  /* the client certificate; "" = none */
		char *tls_key_file;
		char *tls_server_name;  /* "" = the host connected to */
		/* The TLS context, made by redistls_attach() after
		 * conf_load() (NULL if tls is off or not yet made), and how
		 * conf_free() frees it: conf.c knows nothing of TLS. */
		struct redistls *tls_ctx;
		void (*tls_free)(struct redistls *);
	} cf_redis;
};

#endif
