"""Shared test fixtures: where the real faces are (../shared/faces beside the checkout), and
the labelled samples the matching levels were calibrated on."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FACES = (REPO.parent / "shared" / "faces").resolve()


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """../shared/faces; tests that need real faces skip when it is absent."""
    if not FACES.is_dir():
        pytest.skip(f"real face data not found at {FACES} (it sits beside the checkout in CI)")
    return FACES


@pytest.fixture(scope="session")
def labelled_samples(faces_dir: Path) -> list:
    """Every labelled face of the shared faces with its SFace embedding, as
    ``python -m face_engine calibrate`` assembles them (about 20 s, once per run)."""
    from face_engine.evaluation.calibration import shared_faces_samples

    return shared_faces_samples(faces_dir)
