#!/usr/bin/env bash
# The production server: gunicorn managing several uvicorn worker processes
# (config.workers.FaceAuthWorker) that share PostgreSQL and the Redis channel layer, so a
# session created through one worker can stream on any other and a cancel reaches it.
#
# Needs DJANGO_SECRET_KEY, FACEAUTH_ENCRYPTION_KEY, DATABASE_URL (PostgreSQL) and REDIS_URL
# (see README, "Production"). Sizing (README, "Capacity"): WEB_CONCURRENCY worker processes,
# default one per core; FACEAUTH_ENGINE_THREADS engine threads in each, default 2;
# FACEAUTH_DB_POOL_SIZE, default 10 here: each worker's pool of open database connections
# (0, or FACEAUTH_DB_CONN_MAX_AGE set alone: none; each thread keeps its connection that long,
# default 60 s).
# HOST and PORT choose the address (default 127.0.0.1:8000); extra arguments go to gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DJANGO_SECRET_KEY:?set DJANGO_SECRET_KEY (production secrets have no default)}"
: "${DATABASE_URL:?set DATABASE_URL=postgres://...: the workers share one database}"
: "${REDIS_URL:?set REDIS_URL=redis://...: the workers share the Redis channel layer}"
case "$DATABASE_URL" in
    postgres://*|postgresql://*|pgsql://*) ;;
    *) echo "DATABASE_URL must be PostgreSQL: SQLite cannot be shared by several processes" >&2; exit 2 ;;
esac
cores=$(nproc)
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-$cores}"
export FACEAUTH_ENGINE_THREADS="${FACEAUTH_ENGINE_THREADS:-2}"
# Keep database connections open between calls: a new PostgreSQL connection for every progress
# write took 8% of a worker's CPU under load (py-spy), and Django serves each HTTP request on a
# thread of its own, so only a pool keeps the connections of session creations.
# A deployment that sets FACEAUTH_DB_CONN_MAX_AGE itself (the earlier way) keeps it, without a pool.
if [ -n "${FACEAUTH_DB_CONN_MAX_AGE:-}" ] && [ -z "${FACEAUTH_DB_POOL_SIZE:-}" ]; then
    export FACEAUTH_DB_POOL_SIZE=0
fi
export FACEAUTH_DB_POOL_SIZE="${FACEAUTH_DB_POOL_SIZE:-10}"
if [ "$FACEAUTH_DB_POOL_SIZE" = 0 ]; then
    export FACEAUTH_DB_CONN_MAX_AGE="${FACEAUTH_DB_CONN_MAX_AGE:-60}"
fi
# Prometheus metrics of all workers are added up from per-process files in one directory,
# emptied at each start (auth_service/metrics.py).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/faceauth-metrics-${PORT:-8000}}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
.venv/bin/python manage.py migrate --noinput
echo "FaceAuth: $WEB_CONCURRENCY workers x $FACEAUTH_ENGINE_THREADS engine threads on $cores cores" >&2
# --reuse-port: each worker opens its own listening socket (SO_REUSEPORT) and the kernel
# spreads new connections over them evenly. On one shared socket the worker that woke first
# took them: 82 against 36 frames/s, and the busy worker's backlog refused sessions while the
# other idled. (Another server bound to the same port would share its connections: the
# script's port must be this server's alone.)
exec .venv/bin/gunicorn config.asgi:application \
    --config python:config.gunicorn \
    --worker-class config.workers.FaceAuthWorker \
    --workers "$WEB_CONCURRENCY" \
    --reuse-port \
    --bind "${HOST:-127.0.0.1}:${PORT:-8000}" \
    --graceful-timeout 30 \
    --timeout 60 \
    --keep-alive 5 \
    "$@"
