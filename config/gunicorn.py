"""gunicorn's settings for the production server (scripts/serve-production.sh, ``-c
python:config.gunicorn``); the command line gives the rest.

Both hooks end with ``gc.freeze()``: what start-up built (the landmark model's numba and
LLVM objects in the master; Django, the application and the networks in each worker: about
230,000 objects) lives as long as the process, yet every full collection walked it with the
GIL held. Frozen, it is left out of every collection, and collections no longer write to the
headers of the master's objects, whose pages the workers then keep sharing."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker


def on_starting(server: Arbiter) -> None:
    """Loads the 68-point landmark model in the master, before it forks the workers: dlib's
    trees parsed into 67 MB of arrays and their fit compiled (face_engine/shape_model.py).

    Nothing writes to the arrays after loading, so the forked workers share their pages
    instead of each loading a copy, and none compiles the fit again (``bench/load.py`` prints
    each process's PSS). The networks (OpenVINO) are not loaded here: their threads would not
    survive a fork, so each worker's engine threads load them as before."""
    from face_engine.models import shape_predictor

    shape_predictor()
    gc.collect()  # start-up's garbage, not kept for good
    gc.freeze()


def post_worker_init(worker: Worker) -> None:
    """The worker has loaded the application (Django, the routes, the consumers). What its first
    request and first frame would load besides (the views behind the URLs, the networks) is
    loaded now, then frozen with the rest."""
    from django.urls import get_resolver

    from auth_service.services.frames import load_engine_models

    get_resolver().url_patterns  # noqa: B018 (imports the views, DRF and the schema)
    load_engine_models()
    gc.collect()
    gc.freeze()
