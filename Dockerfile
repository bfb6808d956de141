# Dockerfile - txcoord and txagent images (one image, two entry points).
# Stage 1 builds with meson on Debian 12; stage 2 carries only the binaries and
# their runtime libraries. Used by docker-compose.yml; the tested path is the
# local cluster (scripts/cluster), this file is kept simple and correct by reading.
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential meson ninja-build pkg-config \
      libpq-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN meson setup /build --buildtype=release -Dtests=false \
 && meson compile -C /build \
 && install -D -m 0755 -t /out /build/coordinator/txcoord /build/coordinator/txctl \
      /build/participant/txagent

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpq5 libmicrohttpd12 libjansson4 libcurl4 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --home-dir /var/lib/txcoord txcoord \
 && mkdir -p /var/lib/txcoord && chown txcoord: /var/lib/txcoord
COPY --from=build /out/ /usr/local/bin/
USER txcoord
WORKDIR /var/lib/txcoord
VOLUME /var/lib/txcoord
# Both daemons shut down cleanly on SIGTERM (docker stop).
CMD ["txcoord", "--help"]
