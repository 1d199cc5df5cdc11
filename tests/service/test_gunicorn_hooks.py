"""config/gunicorn.py's hooks: the master (after loading the landmark model) and each worker
(after loading the application) freeze what start-up built, so that full collections no longer
walk it (pauses of 124-307 ms in the workers under load before)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from config import gunicorn as hooks


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # back to ordinary generations: the rest of the session collects as before


def _built_at_start_up() -> list[object]:
    return [[index] for index in range(1000)]  # lists: always tracked by the collector


@pytest.mark.parametrize("hook", ["on_starting", "post_worker_init"])
def test_start_up_objects_are_left_out_of_later_collections(unfrozen, hook):
    kept = _built_at_start_up()
    assert any(item is kept[0] for item in gc.get_objects())
    getattr(hooks, hook)(None)
    # Frozen: in the permanent generation, which no collection visits.
    assert gc.get_freeze_count() >= len(kept)
    assert not any(item is kept[0] for item in gc.get_objects())
    later = ["built after start-up"]
    assert any(item is later for item in gc.get_objects())


def test_a_worker_loads_the_networks_before_its_first_session(unfrozen, monkeypatch, settings):
    from face_engine import antispoof

    settings.FACEAUTH_PRESENTATION_CHECK = True
    monkeypatch.setattr(antispoof, "_networks", {})
    hooks.post_worker_init(None)
    assert set(antispoof._networks) == set(antispoof.DEFAULT_MODELS)
