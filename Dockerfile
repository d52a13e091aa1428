# avoviirscollector: one image, run with docker compose, working in the /viirs volume.
#   docker compose up -d --build
# Runs as any non-root UID (compose says user "2001", which has no passwd entry): nothing is
# written outside /viirs and /tmp. `viirscollector run` creates /viirs's layout and execs
# supervisord as PID 1; supervisord runs every daemon and supercronic (the crontab).
FROM python:3.11-slim-bookworm

# supercronic, a pinned release. Its SHA1 is the one published in the release notes of
# https://github.com/aptible/supercronic/releases/tag/v0.2.51 (supercronic-linux-amd64).
# Other architectures get no supercronic: `viirscollector cron` then runs the same crontab
# with its built-in runner (same parsing, no overlapping runs, SIGTERM waits for jobs).
ARG SUPERCRONIC_VERSION=v0.2.51
ARG SUPERCRONIC_SHA1SUM=1692066e350a88ff4d7d6474fe3c7a6c41ec5e89
ARG TARGETARCH=amd64

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN if [ "${TARGETARCH}" = "amd64" ]; then \
        binary=supercronic-linux-amd64; \
        python -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
            "https://github.com/aptible/supercronic/releases/download/${SUPERCRONIC_VERSION}/${binary}" \
            "/usr/local/bin/${binary}" \
        && echo "${SUPERCRONIC_SHA1SUM}  /usr/local/bin/${binary}" | sha1sum -c - \
        && chmod 0755 "/usr/local/bin/${binary}" \
        && ln -s "/usr/local/bin/${binary}" /usr/local/bin/supercronic; \
    else \
        echo "no pinned supercronic for ${TARGETARCH}: the built-in cron runner will be used"; \
    fi

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TZ=UTC \
    VIIRS_BASE_DIR=/viirs \
    VIIRS_CONFIG_DIR=/opt/avoviirscollector

WORKDIR /opt/avoviirscollector

# The package (no test dependencies), then the configuration it runs with.
COPY pyproject.toml README.md ./
COPY avoviirscollector ./avoviirscollector
RUN pip install --no-cache-dir . \
    && viirscollector --help >/dev/null
COPY supervisord.conf crontab ./
COPY etc ./etc

# Writable by any UID when no volume is mounted; a named volume must be writable by the
# container's UID (see docs/operations.md).
RUN mkdir -p /viirs && chmod 1777 /viirs
VOLUME /viirs
WORKDIR /viirs

# 19091 tasks for workers, 19191 queue state, 29092 a message per file.
EXPOSE 19091 19191 29092 19292

USER 2001

HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD ["viirscollector", "health"]

CMD ["viirscollector", "run"]
