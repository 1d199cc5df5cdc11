"""Reading video files as a browser would stream them: at most ``fps`` frames a second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from face_engine.errors import ImageError


def video_frames(
    path: str | Path, *, fps: float = 10.0, start: float = 0.0, duration: float | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(seconds, BGR frame)`` from ``path``, subsampled to ``fps``, from ``start``
    seconds for ``duration`` seconds (to the end when None). Timestamps start at 0.

    Raises ImageError (``invalid_image``) when the file cannot be opened as a video."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ImageError(f"{path} cannot be opened as a video")
    try:
        source_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        step = 1.0 / fps
        next_time = start
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            position = index / source_fps
            index += 1
            if duration is not None and position >= start + duration:
                return
            # Take the first source frame at or after each tick: half a source frame early
            # counts, so 25 fps sources sampled at 10 fps keep an even rhythm.
            if position + 0.5 / source_fps >= next_time:
                yield position - start, frame
                next_time += step
    finally:
        capture.release()


def fit_frame(frame: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """Scale ``frame`` to fit ``width`` x ``height`` and pad it with black, as a webcam
    page does when it draws a square clip into a 640x480 canvas."""
    scale = min(width / frame.shape[1], height / frame.shape[0])
    resized = cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)))
    canvas = np.zeros((height, width, 3), np.uint8)
    top = (height - resized.shape[0]) // 2
    left = (width - resized.shape[1]) // 2
    canvas[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return canvas
