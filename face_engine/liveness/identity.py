"""Identity continuity: the face is embedded about once a second and whenever it reappears;
an embedding that matches none of the earlier ones, twice in a row, ends the session."""

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
        self.changed = False

    def face_lost(self) -> None:
        self._face_was_missing = True

    def update(self, image: np.ndarray, face: Face, now: float) -> np.ndarray | None:
        """The embedding computed on this frame, or None when no check was due."""
        due = (
            self._face_was_missing
            or self._last_check is None
            or now - self._last_check >= self.config.identity_seconds
        )
        self._face_was_missing = False
        if not due:
            return None
        embedding = embed(image, face)
        self._last_check = now
        if self._known:
            best = max(float(embedding @ known) for known in self._known)
            if best < self.config.same_person_min:
                self._failed_checks += 1
                if self._failed_checks >= self.config.face_changed_checks:
                    self.changed = True
                return embedding
        self._failed_checks = 0
        self._known.append(embedding)
        return embedding
