#!/usr/bin/env bash
# Installs FaceAuth, migrates the database, creates a demo API client (its keys are printed
# once, on the first run) and starts the server with HTTP, WebSockets and the demo page.
# HOST and PORT choose the address (default 127.0.0.1:8000); DATABASE_URL and REDIS_URL
# switch to PostgreSQL and Redis (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python manage.py migrate --noinput
address="${HOST:-127.0.0.1}:${PORT:-8000}"
if .venv/bin/python manage.py create_client demo 2>/dev/null; then
    echo "Use these keys with the client script or the demo page (shown only this once)."
else
    echo "The demo client already exists (its keys were printed on the first run)."
    echo "New keys: .venv/bin/python manage.py create_client demo --rotate"
fi
cat <<EOT

Demo page:      http://${address}/demo/
Client script:  .venv/bin/python test_websocket_auth.py API_KEY SECRET_KEY http://${address} enrollment user123 --video ../shared/faces/video/liveportrait_d9.mp4

EOT
exec .venv/bin/python manage.py runserver "$address"
