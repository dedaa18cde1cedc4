# PostgreSQL 15 from Debian's package on the same BASE as the GridFlex image (no Docker Hub
# image needed): `docker build -f deploy/postgres.Dockerfile -t gridflex-postgres:dev deploy`.
# Runs as uid 1883 (user `gridflex`, also the database's superuser), so it reads the
# generated 0600 `secrets/postgres.password`; deploy/postgres-start.sh initialises the
# data folder once and then becomes the server (stopped by the container's SIGTERM/SIGINT).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1883 gridflex \
    && useradd --uid 1883 --gid 1883 --no-create-home --shell /usr/sbin/nologin gridflex \
    && mkdir -p /var/lib/gridflex-pg \
    && chown 1883:1883 /var/lib/gridflex-pg
COPY postgres-start.sh /usr/local/bin/postgres-start.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/gridflex-pg/data \
    GRIDFLEX_PG_LISTEN=* \
    GRIDFLEX_PG_PORT=5432 \
    GRIDFLEX_PG_PASSWORD_FILE=/config/secrets/postgres.password
USER 1883:1883
STOPSIGNAL SIGINT
CMD ["/usr/local/bin/postgres-start.sh"]
