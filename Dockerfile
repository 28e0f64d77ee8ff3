# syntax=docker/dockerfile:1
#
# The Endorsement Ledger image: `ledger serve` (the FastAPI service under uvicorn) and,
# with another command, `ledger mirror`. See docker-compose.yml, deploy/README.md and
# SECURITY.md.
#
# - Runs as the unprivileged user `ledger` (uid and gid 10001), never as root.
# - Works on a read-only root filesystem: the only writable paths are /data (the data
#   directory: published checkpoint, vkey; mount a volume), /mirror (for the mirror
#   service; mount a volume) and /tmp (mount a tmpfs).
# - The log key is read from the Docker secret /run/secrets/log_key. The image holds
#   no key and never creates one at run time: a missing secret stops the server
#   instead of silently starting a new log identity.
# - The build stage turns the sources into wheels; the runtime stage installs the
#   project's wheel with the `server` extra from those wheels only (no index, no
#   compiler, no sources in the final image).

# --- build: the project's wheel and the wheels of its dependencies ----------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ledger ./ledger
COPY keys ./keys
COPY api ./api
COPY cli ./cli
RUN pip wheel --wheel-dir /wheels ".[server]"

# --- runtime ---------------------------------------------------------------------------
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The wheels are bind-mounted from the build stage, so they never become a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "endorsement-ledger[server]"

# The user, and the directories that its volumes will start from: a new named volume
# copies the ownership and mode of the directory it is mounted on.
RUN groupadd --system --gid 10001 ledger \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin ledger \
    && install -d -o 10001 -g 10001 -m 0700 /data \
    && install -d -o 10001 -g 10001 -m 0755 /mirror

COPY --chmod=0755 deploy/docker-entrypoint.sh /usr/local/bin/ledger-entrypoint

# Settings are LEDGER_* variables (api/settings.py). LEDGER_ORIGIN has no usable
# default for a public log: set it. LEDGER_DATABASE_URL defaults to SQLite in /data.
ENV LEDGER_DATA_DIR=/data \
    LEDGER_HOST=0.0.0.0 \
    LEDGER_PORT=8000 \
    LEDGER_LOG_KEY_PATH=/run/secrets/log_key \
    TMPDIR=/tmp

USER 10001:10001
WORKDIR /data
EXPOSE 8000

# Healthy when /healthz answers 200: the database answers and the sequencer runs
# (api/routes/health.py). Python, since the slim image has no curl. Another command
# than `serve` (the mirror) needs its own healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LEDGER_PORT', '8000'), timeout=4); sys.exit(0 if r.status == 200 else 1)"]

ENTRYPOINT ["/usr/local/bin/ledger-entrypoint"]
CMD ["serve"]
