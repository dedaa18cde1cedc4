# Mosquitto 2 from Debian's package on the same BASE as the GridFlex image (no Docker Hub
# image needed): `docker build -f deploy/mosquitto.Dockerfile -t gridflex-mosquitto:dev deploy`.
# It runs as uid 1883 like our other images, so it reads the generated 0600 broker key on
# the shared `config` volume; its config (TLS listener, ACL) comes from `gridflex deploy-config`.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mosquitto \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1883 gridflex \
    && useradd --uid 1883 --gid 1883 --no-create-home --shell /usr/sbin/nologin gridflex \
    && mkdir -p /mosquitto/data \
    && chown 1883:1883 /mosquitto/data
USER 1883:1883
CMD ["mosquitto", "-c", "/config/mosquitto/mosquitto.conf"]
