# Todo service image: `docker build -t todo-service .`
#
# BASE_IMAGE must provide python3 with the venv module. The default is the
# official slim image; any Debian-like image works, e.g. one made locally with
# debootstrap (scripts/podman-base-image.sh), where Python is /usr/bin/python3
# rather than /usr/local/bin/python: everything below calls Python through PATH.
ARG BASE_IMAGE=python:3.12-slim

# ---------------------------------------------------------------- build stage
FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every pinned dependency ships as a wheel: no compiler is needed, here or later.
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

# ---------------------------------------------------------------- final stage
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="todo-service" \
      org.opencontainers.image.description="Multi-user todo REST API (Flask, gunicorn)"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLASK_APP=wsgi:app \
    PORT=8000

# An unprivileged user with no login shell and no home directory; the app
# writes only to its instance folder (SQLite quick start, generated JWT key).
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# Code stays owned by root (read-only for the app); only instance/ is writable.
COPY gunicorn.conf.py wsgi.py ./
COPY todo_service ./todo_service
COPY migrations ./migrations
RUN mkdir -p /app/instance && chown app:app /app/instance

# Numeric, so that runtimes (e.g. Kubernetes runAsNonRoot) can tell it is not root.
USER 10001:10001
EXPOSE 8000

# Liveness only (never touches the database); python, since slim has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# Exec form: gunicorn is PID 1 and gets SIGTERM itself (graceful shutdown).
# Release step against a real database: `docker run --rm IMAGE flask db upgrade`
# (or AUTO_MIGRATE=1, see README).
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
