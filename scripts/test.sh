#!/usr/bin/env bash
# Installs everything the whole test suite needs (Python packages, Chromium, ffmpeg,
# crypto-js for Node) and runs it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
[ -d tests/node/node_modules/crypto-js ] || (cd tests/node && npm ci --silent --no-audit --no-fund)
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
