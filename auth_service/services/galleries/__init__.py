"""Where 1:N search runs: one interface, interchangeable backends, chosen by the
FACEAUTH_GALLERY_BACKEND setting. The service (services.gallery) never knows which.

The database's FaceTemplate rows are the truth; a backend holds a derived copy for fast
nearest-neighbour search and is told after each commit which templates were added or removed.
``search`` is a shortlist: services.gallery scores its candidates exactly from the database,
so a backend that lags (a worker that missed an invalidation, an index being rebuilt) can
only miss a user, never name a deleted one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np
from django.conf import settings

from face_engine.embed import EMBEDDING_SIZE


def to_bytes(embedding: np.ndarray) -> bytes:
    """A template's embedding as stored in FaceTemplate.embedding (little-endian float32)."""
    return np.asarray(embedding, dtype="<f4").reshape(-1).tobytes()


def from_bytes(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype="<f4")


@dataclass(frozen=True)
class TemplateMatrix:
    """Many templates at once: ids (N,), owners (N,) and unit-length embeddings (N, 128)."""

    template_ids: np.ndarray
    user_ids: np.ndarray
    vectors: np.ndarray

    @classmethod
    def build(cls, template_ids, user_ids, vectors) -> TemplateMatrix:
        vectors = np.asarray(vectors, np.float32).reshape(len(template_ids), EMBEDDING_SIZE)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return cls(
            np.asarray(template_ids, np.int64),
            np.asarray(user_ids, dtype=object),
            vectors / np.where(norms > 0, norms, 1.0),
        )

    def __len__(self) -> int:
        return len(self.template_ids)


def client_templates(client_id: str) -> TemplateMatrix:
    """Every template of the client, read from the database."""
    from auth_service.models import FaceTemplate

    rows = list(
        FaceTemplate.objects.filter(user__client_id=client_id)
        .order_by("id")
        .values_list("id", "user__user_id", "embedding")
    )
    vectors = [from_bytes(blob) for _, _, blob in rows]
    return TemplateMatrix.build(
        [row[0] for row in rows], [row[1] for row in rows],
        np.stack(vectors) if vectors else np.empty((0, EMBEDDING_SIZE), np.float32),
    )


@dataclass(frozen=True)
class Hit:
    """A template near a probe, with its cosine similarity."""

    template_id: int
    user_id: str
    similarity: float


class GalleryBackend(Protocol):
    def add(self, client_id: str, templates: TemplateMatrix) -> None:
        """The client's new templates (called after they are committed)."""

    def remove(self, client_id: str, template_ids: Sequence[int]) -> None:
        """Templates of the client that were deleted (called after the commit)."""

    def search(self, client_id: str, probes: np.ndarray, k: int) -> list[list[Hit]]:
        """For each row of ``probes`` (P, 128), the client's ``k`` nearest templates by cosine
        similarity, nearest first."""


@cache
def _backend(name: str) -> GalleryBackend:
    if name == "pgvector":
        from auth_service.services.galleries.pgvector import PgvectorGallery

        return PgvectorGallery()
    from auth_service.services.galleries.memory import MemoryGallery

    return MemoryGallery()


def backend() -> GalleryBackend:
    """The backend FACEAUTH_GALLERY_BACKEND names (one instance per process)."""
    return _backend(settings.FACEAUTH_GALLERY_BACKEND)
