"""gunicorn's settings for the production server (scripts/serve-production.sh, ``-c
python:config.gunicorn``); the command line gives the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter


def on_starting(server: Arbiter) -> None:
    """Loads dlib's 68-point model in the master, before it forks the workers.

    Nothing writes to the model after loading, so the forked workers share its pages instead
    of each loading a copy: about 80 MB less per worker (``bench/load.py`` prints each
    process's PSS). The networks (OpenVINO) are not loaded here: their threads would not
    survive a fork, so each worker's engine threads load them as before."""
    from face_engine.models import shape_predictor

    shape_predictor()
