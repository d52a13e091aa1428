# avoviirscollector: one image, run with docker compose, working in the /viirs volume.
#   docker compose up -d --build
# Runs as any non-root UID (compose says user "2001", which has no passwd entry: the code
# never needs a user name, bus.py gives posttroll a sender without one). Nothing is written
# outside /viirs and /tmp. `viirscollector run` creates /viirs's layout and execs
# supervisord as PID 1; supervisord runs every daemon and the crontab.
# .ci/container builds this file unchanged and runs docker-compose.yml's service.
FROM python:3.11-slim-bookworm

# supercronic v0.2.51, pinned by the SHA1 published in its release notes,
# https://github.com/aptible/supercronic/releases/tag/v0.2.51 ("supercronic-linux-amd64",
# SUPERCRONIC_SHA1SUM=1692066e...). No arm64 SHA1 is pinned: pass one with
# --build-arg SUPERCRONIC_SHA1SUM_ARM64=... or the built-in runner is used there.
# SUPERCRONIC=download takes vendor/supercronic-linux-<arch> from the build context when it
# is there (offline builds), else downloads the release; =context only the build context's;
# =none no supercronic (`viirscollector cron` runs the crontab itself). The SHA1 is always
# checked (docker/install-supercronic). TARGETARCH has no default on purpose: BuildKit sets
# it to the platform being built, and a default would win over it (docker/buildx#510).
ARG SUPERCRONIC=download
ARG SUPERCRONIC_VERSION=v0.2.51
ARG SUPERCRONIC_SHA1SUM_AMD64=1692066e350a88ff4d7d6474fe3c7a6c41ec5e89
ARG SUPERCRONIC_SHA1SUM_ARM64=
ARG TARGETARCH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

COPY docker/install-supercronic /tmp/install-supercronic
COPY vendor/ /tmp/vendor/
RUN /tmp/install-supercronic && rm -rf /tmp/install-supercronic /tmp/vendor

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TZ=UTC \
    VIIRS_BASE_DIR=/viirs \
    VIIRS_CONFIG_DIR=/opt/avoviirscollector

WORKDIR /opt/avoviirscollector

# The package (no test dependencies) with its dependencies at the versions of
# constraints.txt (refreshed as docs/operations.md says), then its configuration.
COPY constraints.txt pyproject.toml README.md ./
COPY avoviirscollector ./avoviirscollector
RUN pip install --no-cache-dir --constraint constraints.txt . \
    && viirscollector --help >/dev/null
COPY supervisord.conf crontab ./
COPY etc ./etc

# Mode 1777: writable by whatever UID the container runs as. A fresh named volume gets this
# mode because Docker copies the image's /viirs into it (docker-compose.yml does not say
# nocopy), so nobody has to chown the volume.
RUN mkdir -p /viirs && chmod 1777 /viirs
VOLUME /viirs
WORKDIR /viirs

# 19091 tasks for workers, 19191 queue state, 29092 a message per file.
EXPOSE 19091 19191 29092 19292

USER 2001

HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD ["viirscollector", "health"]

CMD ["viirscollector", "run"]
