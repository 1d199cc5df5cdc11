"""The engine's layout: what the service runs is apart from the tooling that measures it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Imports every module of the service (Django set up as a server would) and prints the
# face_engine modules that ended up loaded.
_IMPORT_SERVICE = """
import importlib, pkgutil, sys
import django
django.setup()
import auth_service, config
for package in (auth_service, config):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".migrations." in module.name or module.name.endswith(".wsgi"):
            continue
        importlib.import_module(module.name)
import config.asgi
print("\\n".join(sorted(name for name in sys.modules if name.startswith("face_engine"))))
"""


def test_service_never_imports_the_evaluation_tooling():
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_SERVICE], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "FACEAUTH_WARM_UP_MODELS": "0",
             "FACEAUTH_BACKGROUND_WORKER": "0"},
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "face_engine.liveness" in loaded  # the walk did reach the engine
    assert not [name for name in loaded if name.startswith("face_engine.evaluation")], loaded


def test_evaluation_modules_live_in_their_own_package():
    runtime = {path.stem for path in (ROOT / "face_engine").glob("*.py")}
    tooling = {path.stem for path in (ROOT / "face_engine" / "evaluation").glob("*.py")} - {"__init__"}
    assert {"attacks", "challenge_player", "calibration", "liveness_eval", "benchmark"} <= tooling
    assert not runtime & tooling

