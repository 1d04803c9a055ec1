# Stand-ins for the infrastructure images of compose.prod-like.yml (nats, redis, postgres), for
# machines that reach no image registry: Debian bookworm's own packages on the Debian root that
# .ci/images.sh assembles (the same versions CI's host services run: NATS 2.9, Redis 7.0,
# PostgreSQL 15). They honour what the compose file asks of the official images: the same
# commands, health checks, data folders and POSTGRES_* variables. compose.offline.yml selects
# them; nothing here is meant for production.
#
#   docker build -f deploy/offline-images/infra.Dockerfile --target postgres deploy/offline-images
ARG DEBIAN_IMAGE=clawfleet-offline/debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS nats
# wget: the compose health check asks NATS' monitoring port with it, as on the official image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nats-server wget \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data
VOLUME /data
EXPOSE 4222 8222
ENTRYPOINT ["/usr/sbin/nats-server"]
CMD ["-js", "-sd", "/data", "-m", "8222"]

FROM ${DEBIAN_IMAGE} AS redis
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/redis-entrypoint.sh
VOLUME /data
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/redis-entrypoint.sh"]
CMD ["redis-server"]

FROM ${DEBIAN_IMAGE} AS postgres
# No cluster at install time: the entry point initialises $PGDATA on first start, as the official
# image does.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
