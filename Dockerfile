# syntax=docker/dockerfile:1
# Image of the source-soundlink Airbyte connector.
#
# Airbyte's own pipeline builds Python connectors without a Dockerfile, from
# `connectorBuildOptions.baseImage` in metadata.yaml and its template for Python connectors. This Dockerfile
# exists so that `docker build .` works outside that pipeline, and gives the same result: the same pinned
# base image (unit_tests/test_metadata.py keeps it equal to metadata.yaml), the connector installed into
# the base image's Python under /usr/local, `/entrypoint.sh` running the `source-soundlink` console script,
# and the non-root user `airbyte`. Two differences, both on purpose: the dependencies are the exact set
# that poetry.lock pins (with their hashes) rather than a fresh resolution, and there is one stage (the
# template's builder stage only keeps git and ssh out of the image; copying its /usr/local over the base's
# would leave the base's older dist-info next to upgraded packages).
#
# Any Debian-based image with Python 3.11, `python`/`pip` on PATH installing into /usr/local and a
# user `airbyte` (uid 1000) works as a stand-in: scripts/build_image.sh builds one from Debian's
# packages and passes it as `--build-arg BASE_IMAGE=...`.
#
# Behind a TLS-intercepting proxy, hand pip the proxy's CA bundle as a build secret; it is mounted
# for the pip steps only and never stored in a layer:
#   docker buildx build --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt -t airbyte/source-soundlink:dev .
#   podman build --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt -t airbyte/source-soundlink:dev .
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

FROM ${BASE_IMAGE}

WORKDIR /airbyte/integration_code

# 1. Third-party dependencies: the `main` group of poetry.lock, hash-checked, nothing resolved anew.
#    This layer only changes with poetry.lock, so editing the connector's code does not reinstall them.
COPY poetry.lock scripts/lock_requirements.py ./
RUN --mount=type=secret,id=ca_bundle \
    set -eu; \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    python lock_requirements.py poetry.lock --group main > /tmp/requirements.txt; \
    pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt lock_requirements.py

# 2. The connector package itself (console script `source-soundlink`, manifest.yaml as package data),
#    built by poetry-core (pinned in pyproject.toml's build-system).
COPY pyproject.toml README.md ./
COPY source_soundlink ./source_soundlink
RUN --mount=type=secret,id=ca_bundle \
    set -eu; \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    pip install --no-cache-dir --disable-pip-version-check --no-deps .; \
    source-soundlink spec > /dev/null

RUN printf '%s\n' '#!/usr/bin/env bash' 'set -e' '' 'source-soundlink "$@"' > /entrypoint.sh \
    && chmod 755 /entrypoint.sh

LABEL io.airbyte.version=0.2.0
LABEL io.airbyte.name=airbyte/source-soundlink

USER airbyte

ENV AIRBYTE_ENTRYPOINT="/entrypoint.sh"
ENTRYPOINT ["/entrypoint.sh"]
