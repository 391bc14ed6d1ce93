#!/bin/sh
# Entry point of the redis:7 stand-in (see the Dockerfile beside it).
set -e
# First argument an option or a .conf file: it is for redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
# Without a config file, Debian's redis-server would be in protected
# mode (only loopback clients); the official image's is not.  These
# defaults come first, so the caller's own options still win.  A config
# file (which must be the first argument) is taken as it is.
if [ "$1" = redis-server ] && { [ $# -eq 1 ] || [ "${2#-}" != "$2" ]; }; then
	shift
	set -- redis-server --bind 0.0.0.0 --protected-mode no \
	    --daemonize no "$@"
fi
# As the official image: files created by Redis are not world-readable.
if [ "$(umask)" = 0022 ]; then
	umask 0077
fi
exec "$@"
