"""gunicorn's settings for the production server (scripts/serve-production.sh, ``-c
python:config.gunicorn``); the command line gives the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter


def on_starting(server: Arbiter) -> None:
    """Loads the 68-point landmark model in the master, before it forks the workers: dlib's
    trees parsed into 67 MB of arrays and their fit compiled (face_engine/shape_model.py).

    Nothing writes to the arrays after loading, so the forked workers share their pages
    instead of each loading a copy, and none compiles the fit again (``bench/load.py`` prints
    each process's PSS). The networks (OpenVINO) are not loaded here: their threads would not
    survive a fork, so each worker's engine threads load them as before."""
    from face_engine.models import shape_predictor

    shape_predictor()
