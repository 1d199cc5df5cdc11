"""Fixtures of the service tests: real database (pytest-django), real clients created by
the service; real face data comes from tests/conftest.py's ``faces_dir``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from auth_service.services import clients, tokens


@pytest.fixture(autouse=True)
def _quick_password_hashing(settings):
    """Each test creates API clients; the production hasher (PBKDF2, about 0.3 s a call) is
    checked in test_clients, everywhere else a quick one keeps the suite fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_background_worker(settings):
    """The per-process background thread (webhooks, heartbeats) belongs to real servers;
    these tests call its functions directly."""
    settings.FACEAUTH_BACKGROUND_WORKER = False


@pytest.fixture(autouse=True)
def _no_admission_control(settings):
    """Tests stream frames as fast as they can, which looks like an overloaded server to
    admission control; test_admission turns it back on where it is the subject."""
    settings.FACEAUTH_ADMISSION_LATENCY_MS = 0


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters live in the cache; every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def credentials(db) -> clients.ClientCredentials:
    return clients.client_create(name="acme")


@pytest.fixture
def other_credentials(db) -> clients.ClientCredentials:
    return clients.client_create(name="globex")


def bearer(creds: clients.ClientCredentials) -> str:
    return "Bearer " + tokens.issue_client_token(client_id=creds.client.client_id).token


@pytest.fixture
def api(credentials) -> APIClient:
    """A DRF test client authenticated as ``credentials`` with a JWT."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(credentials))
    return client


@pytest.fixture
def other_api(other_credentials) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(other_credentials))
    return client


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, np.float32)
    return vector / np.linalg.norm(vector)


def jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def video_jpegs(path: Path, *, start: float = 0.0, duration: float | None = None) -> list[bytes]:
    """A clip as the JPEG frames a browser would send at 10 frames/s."""
    from face_engine.video import video_frames

    return [jpeg(frame) for _, frame in video_frames(path, fps=10, start=start, duration=duration)]
