"""Shared test fixtures: where the real faces are (../shared/faces beside the checkout)."""

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
