# hitcountd container image: the C replacement of the Flask web container.
#
#   docker build -t hitcountd .
#   docker network create hitcountd-net
#   docker run -d --name redis --network hitcountd-net redis:7
#   docker run -d --name web --network hitcountd-net -p 5000:5000 hitcountd
#   curl localhost:5000          # Page visited 1 times
#
# Two stages: "build" compiles with the -dev packages and the autotools
# and assembles /rootfs; the runtime stage is that directory on an empty
# image (FROM scratch): the binary, the shared libraries ldd names for it
# (the C library and its loader included), its configuration, and
# passwd/group/nsswitch.conf for the unprivileged user and for "nobody"
# (the default 'user', which the configuration check looks up), plus the
# copyright files of the packages those libraries come from, their dpkg
# status entries in /var/lib/dpkg/status.d/ (as distroless images have
# them, so that vulnerability scanners see the copied OpenSSL and glibc
# with their versions), and
# hitcountd's own (its LICENSE, BSD-2-Clause, as
# /usr/share/doc/hitcountd/copyright).  No shell,
# no package manager, no apt or dpkg state, and nothing the daemon
# writes, so `docker run --read-only` works with no tmpfs.  (A slim
# Debian runtime stage that installs the libraries with apt would carry
# ~75 MB of a distribution that hitcountd never runs.)
#
# The build stage is Debian 13 (trixie), the current stable release:
# its hiredis 1.2 has hiredis_ssl, so the image can do TLS to Redis
# (rediss:// in REDIS_URL, or tls = true with the CA file mounted), and
# every library copied comes from one release that has security
# support (Debian 12's hiredis 0.14 has no TLS, and bookworm is past its
# regular security support).  TLS brings OpenSSL's libssl and libcrypto
# (and libcrypto's zlib and zstd): about 12 MB in all instead of 3.
# Debian's CA bundle (ca-certificates) is in the image where OpenSSL
# looks by default (/usr/lib/ssl/cert.pem, a link to
# /etc/ssl/certs/ca-certificates.crt, as on Debian), so that rediss://
# to a server with a publicly signed certificate works as it is; for a
# private CA, mount it and name it in tls_ca_file.
#
# The daemon runs as an unprivileged user, in the foreground (-D),
# logging to stderr (docker logs), as PID 1 so that `docker stop` sends
# its SIGTERM straight to the master, which stops gracefully; `docker
# kill -s HUP` reloads, -s TTIN / -s TTOU add or remove a worker.
# REDIS_HOST and REDIS_PORT in the environment override the Redis
# address of the configuration (default redis:6379).  Arguments after
# the image name replace the default "-D -f /etc/hitcountd.conf", e.g.
# `docker run --rm hitcountd -V` or `... -t -f /etc/hitcountd.conf`.

############################################################ build stage
FROM debian:trixie-slim AS build

# The dependencies first: this layer is reused as long as the list does
# not change, whatever happens to the sources.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev make autoconf automake pkg-config ca-certificates \
        libhiredis-dev libssl-dev libconfuse-dev libevent-dev \
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
 && grep -q '^#define HAVE_HIREDIS_SSL 1' config.h \
 && make install-strip DESTDIR=/staging \
 && /staging/usr/local/sbin/hitcountd -V

# The runtime file system.  Each library as ldd resolves it, at that path
# (the loader first searches the multiarch directories, so no
# ld.so.cache is needed), copied as a file rather than a symbolic link.
COPY etc/hitcountd-container.conf /rootfs/etc/hitcountd.conf
RUN set -eu; r=/rootfs; bin=/staging/usr/local/sbin/hitcountd; \
    mkdir -p "$r/usr/local/sbin"; \
    cp "$bin" "$r/usr/local/sbin/"; \
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do \
        mkdir -p "$r${lib%/*}"; \
        cp -L "$lib" "$r$lib"; \
        pkg=$(dpkg -S "*/${lib##*/}" | head -n 1 | cut -d: -f1); \
        mkdir -p "$r/usr/share/doc/$pkg" "$r/var/lib/dpkg/status.d"; \
        cp "/usr/share/doc/$pkg/copyright" "$r/usr/share/doc/$pkg/"; \
        dpkg-query -s "$pkg" > "$r/var/lib/dpkg/status.d/$pkg"; \
    done; \
    mkdir -p "$r/etc/ssl/certs" "$r/usr/lib/ssl" "$r/usr/share/doc/ca-certificates"; \
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"; \
    ln -s /etc/ssl/certs/ca-certificates.crt "$r/usr/lib/ssl/cert.pem"; \
    cp /usr/share/doc/ca-certificates/copyright "$r/usr/share/doc/ca-certificates/"; \
    mkdir -p "$r/usr/share/doc/hitcountd"; \
    cp /staging/usr/local/share/doc/hitcountd/LICENSE "$r/usr/share/doc/hitcountd/copyright"; \
    printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
        'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' \
        'hitcountd:x:10001:10001:hitcountd:/nonexistent:/usr/sbin/nologin' \
        > "$r/etc/passwd"; \
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'hitcountd:x:10001:' > "$r/etc/group"; \
    printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' > "$r/etc/nsswitch.conf"; \
    find "$r" ! -type d | sort

########################################################## runtime stage
FROM scratch
# The version is configure.ac's (tests/check-licence.sh compares them).
LABEL org.opencontainers.image.title="hitcountd" \
      org.opencontainers.image.description="visitor counter HTTP daemon backed by Redis" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="BSD-2-Clause"

COPY --from=build /rootfs/ /
# The configuration as the daemon will read it (exec form: no shell here).
RUN ["/usr/local/sbin/hitcountd", "-t", "-f", "/etc/hitcountd.conf"]

# Numeric, so that a runtime can tell that it is not root.
USER 10001:10001
EXPOSE 5000

HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/sbin/hitcountd", "-H", "-f", "/etc/hitcountd.conf"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/sbin/hitcountd"]
CMD ["-D", "-f", "/etc/hitcountd.conf"]
