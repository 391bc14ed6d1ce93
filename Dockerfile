# hitcountd container image: the C replacement of the Flask web container.
#
#   docker build -t hitcountd .
#   docker network create hitcountd-net
#   docker run -d --name redis --network hitcountd-net redis:7
#   docker run -d --name web --network hitcountd-net -p 5000:5000 hitcountd
#   curl localhost:5000          # Page visited 1 times
#
# Two stages: "build" compiles with the -dev packages and the autotools,
# the runtime stage holds only the shared libraries, the binary, its
# configuration and its man pages.  The daemon runs as an unprivileged
# user, in the foreground (-D), logging to stderr (docker logs), as PID 1
# so that `docker stop` sends its SIGTERM straight to the master, which
# stops gracefully.  REDIS_HOST and REDIS_PORT in the environment
# override the Redis address of the configuration (default redis:6379).
# Arguments after the image name replace the default "-D -f
# /etc/hitcountd.conf", e.g. `docker run --rm hitcountd -V` or `... -d`.

############################################################ build stage
FROM debian:bookworm-slim AS build

# The dependencies first: this layer is reused as long as the list does
# not change, whatever happens to the sources.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev make autoconf automake pkg-config \
        libhiredis-dev libconfuse-dev libevent-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /usr/src/hitcountd

# Then the build system: configure is regenerated only when it changes.
COPY autogen.sh configure.ac Makefile.am ./
COPY m4/ m4/
RUN ./autogen.sh

# Then the sources: the context less what .dockerignore keeps out (.git,
# build outputs, tests).
COPY . .
RUN ./configure --prefix=/usr/local --sysconfdir=/etc \
 && make -j"$(nproc)" \
 && make install-strip DESTDIR=/staging \
 && /staging/usr/local/sbin/hitcountd -V

########################################################## runtime stage
FROM debian:bookworm-slim

# Only the shared libraries hitcountd is linked with (no curl, no
# compiler).  `hitcountd -H` is the health check client.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libhiredis0.14 libconfuse2 libevent-2.1-7 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 hitcountd \
 && useradd --system --uid 10001 --gid hitcountd --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin hitcountd

COPY --from=build /staging/usr/local/sbin/hitcountd /usr/local/sbin/hitcountd
COPY --from=build /staging/usr/local/share/man/ /usr/local/share/man/
# The packaged example, every key at its default, for reference.
COPY --from=build /staging/etc/hitcountd.conf /usr/local/share/doc/hitcountd/hitcountd.conf.example
# The container's configuration: no pidfile, listen on 0.0.0.0:5000.
COPY etc/hitcountd-container.conf /etc/hitcountd.conf
RUN hitcountd -t -f /etc/hitcountd.conf

# Numeric, so that a runtime can tell that it is not root.
USER 10001:10001
EXPOSE 5000

HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/sbin/hitcountd", "-H", "-f", "/etc/hitcountd.conf"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/sbin/hitcountd"]
CMD ["-D", "-f", "/etc/hitcountd.conf"]
