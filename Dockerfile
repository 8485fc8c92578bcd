# syntax=docker/dockerfile:1
# Image of the source-soundlink Airbyte connector.
#
# Airbyte's builds use the pinned python-connector-base image below (the same value as
# `connectorBuildOptions.baseImage` in metadata.yaml; unit_tests/test_metadata.py keeps them equal).
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

# 1. Third-party dependencies, pinned by constraints.txt. This layer only changes with
#    pyproject.toml or constraints.txt, so editing the connector's code does not reinstall them.
COPY pyproject.toml constraints.txt ./
RUN --mount=type=secret,id=ca_bundle \
    set -eu; \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt; \
    pip install --no-cache-dir --disable-pip-version-check -c constraints.txt -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt

# 2. The connector package itself (console script `source-soundlink`, manifest.yaml as package data).
COPY README.md ./
COPY source_soundlink ./source_soundlink
RUN --mount=type=secret,id=ca_bundle \
    set -eu; \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    pip install --no-cache-dir --disable-pip-version-check -c constraints.txt .; \
    rm -rf build ./*.egg-info; \
    source-soundlink spec > /dev/null

LABEL io.airbyte.version=0.1.0
LABEL io.airbyte.name=airbyte/source-soundlink

USER airbyte

ENV AIRBYTE_ENTRYPOINT="source-soundlink"
ENTRYPOINT ["source-soundlink"]
