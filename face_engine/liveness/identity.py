"""Identity continuity: the face is embedded about once a second and whenever it reappears,
every few seconds only while a face tracker follows it unbroken from frame to frame; an
embedding that matches none of the earlier ones, twice in a row, ends the session."""

from __future__ import annotations

import numpy as np

from face_engine.embed import embed
from face_engine.types import Face, LivenessConfig


class IdentitySignal:
    def __init__(self, config: LivenessConfig) -> None:
        self.config = config
        self._known: list[np.ndarray] = []
        self._last_check: float | None = None
        self._failed_checks = 0
        self._face_was_missing = True
        self._followed_since_check = False
        self.changed = False
        self.last_similarity: float | None = None  # the last check's best match to the person

    def face_lost(self) -> None:
        self._face_was_missing = True

    def update(self, image: np.ndarray, face: Face, now: float, continued: bool = False) -> np.ndarray | None:
        """The embedding computed on this frame, or None when no check was due. ``continued``:
        the face tracker followed this face from the previous frame (``TrackedFrame.continued``)."""
        # After a failed check the next one comes at the usual pace whatever the tracker says.
        self._followed_since_check = self._followed_since_check and continued and not self._failed_checks
        config = self.config
        interval = config.identity_followed_seconds if self._followed_since_check else config.identity_seconds
        due = self._face_was_missing or self._last_check is None or now - self._last_check >= interval
        self._face_was_missing = False
        if not due:
            return None
        embedding = embed(image, face)
        self.last_similarity = self.similarity(embedding)
        self._last_check = now
        self._followed_since_check = True
        if not self.matches(embedding):
            self._failed_checks += 1
            if self._failed_checks >= self.config.face_changed_checks:
                self.changed = True
            return embedding
        self._failed_checks = 0
        self._known.append(embedding)
        return embedding

    def similarity(self, embedding: np.ndarray) -> float | None:
        """Best cosine of ``embedding`` with the person checked so far (None before the first check)."""
        return max(float(embedding @ known) for known in self._known) if self._known else None

    def matches(self, embedding: np.ndarray) -> bool:
        """Whether ``embedding`` is of the person checked so far (True before the first check)."""
        best = self.similarity(embedding)
        return best is None or best >= self.config.same_person_min
