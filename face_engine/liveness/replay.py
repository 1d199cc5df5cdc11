"""Static replay: consecutive frames whose face pixels are identical to within encoding noise
(the very same picture sent again and again) end the session."""

from __future__ import annotations

import cv2
import numpy as np

from face_engine.types import Box, LivenessConfig


class StaticReplaySignal:
    def __init__(self, config: LivenessConfig) -> None:
        self.config = config
        self._previous: np.ndarray | None = None
        self._static_frames = 0
        self.detected = False

    def update(self, image: np.ndarray, box: Box) -> None:
        x0, y0 = max(box.x, 0), max(box.y, 0)
        crop = image[y0:box.y + box.height, x0:box.x + box.width]
        if crop.size == 0:
            return
        patch = cv2.resize(crop, (48, 48), interpolation=cv2.INTER_LINEAR).astype(np.int16)
        if self._previous is not None:
            difference = float(np.abs(patch - self._previous).mean())
            if difference < self.config.static_max_difference:
                self._static_frames += 1
                if self._static_frames >= self.config.static_frames:
                    self.detected = True
            else:
                self._static_frames = 0
        self._previous = patch
