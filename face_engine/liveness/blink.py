"""Blink: both eyes close and reopen within a blink's time, seen by a dedicated eye model
(face_engine/eyes.py: the lids' opening in eye widths) and confirmed in the face-aligned
frame (face_frame.py).

The eye opening alone is not evidence: a photo moved by hand, tilted or blurred wobbles it.
So a closure also needs the eyes' *appearance* to change against the last open frame (closed
lids hide the dark iris and lash line: a large change in the aligned, blurred eye patch, which
a photo cannot produce whatever its motion, because after alignment its eye pixels are the
same pixels), and it must end within a blink's time (lids lowered by looking down, a frown or
a squint stay down for longer).

Motion is judged in the face-aligned frame, where moving the camera (shake, a walk, a phone at
arm's length) moves nothing: only the landmarks' rigid points jumping against each other by
more than a head can turn in one frame rejects a closure (the landmarks lost the face). A head
turning while the eyes blink is let through: people often blink as they turn their head or
shift their gaze, and the head pose is no guide at a closure (the pose fit uses the eye
points, and jumped by 16 degrees at liveportrait_d0's blink)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from face_engine.eyes import EyeState
from face_engine.liveness.face_frame import ALIGNED_EYE_DISTANCE, LEFT_EYE_AT, RIGHT_EYE_AT, AlignedFace
from face_engine.types import LivenessConfig

_EYE_HALF = (11, 7)  # half width and height of an eye patch in aligned pixels


@dataclass(frozen=True)
class EyeView:
    """What the blink signal keeps of one frame."""

    openings: tuple[float, float]  # the eye model's, (subject's right, left)
    patches: tuple[np.ndarray, np.ndarray]
    rigid: np.ndarray
    time: float


def eye_view(face: AlignedFace, eyes: EyeState, now: float) -> EyeView:
    """The eye patches of the aligned face, with the eye model's openings."""
    blurred = cv2.GaussianBlur(face.gray, (5, 5), 1.0).astype(np.float32)
    half_width, half_height = _EYE_HALF
    right, left = (
        blurred[round(y) - half_height:round(y) + half_height, round(x) - half_width:round(x) + half_width]
        for x, y in (RIGHT_EYE_AT, LEFT_EYE_AT)
    )
    return EyeView(eyes.opening, (right, left), face.rigid, now)


def appearance_change(a: np.ndarray, b: np.ndarray) -> float:
    """1 - normalised cross-correlation: 0 for the same pattern whatever the brightness and
    contrast (flicker, exposure), up to 2 for an inverted one."""
    a = a - a.mean()
    b = b - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 1.0 - float((a * b).sum()) / norm if norm > 1e-6 else 0.0


def head_shift(a: EyeView, b: EyeView) -> float:
    """RMS movement of the eye corners and nose against each other (in the aligned frame, so
    camera motion does not count) between two views, in eye distances."""
    return float(np.sqrt(((a.rigid - b.rigid) ** 2).sum(axis=1).mean())) / ALIGNED_EYE_DISTANCE


@dataclass(frozen=True)
class BlinkFrame:
    """What the blink signal made of one frame, for explanations: the openings against the
    open-eye level, the appearance change per eye, the head's shift in the aligned frame, and
    ``event``: None, ``closing`` (a closure began), ``blink`` (counted), or ``rejected:REASON``
    (``no_eye_change``, ``head_jump``, ``too_long``)."""

    ratios: tuple[float, float] | None
    changes: tuple[float, float] | None
    head_shift: float | None
    event: str | None


class BlinkSignal:
    """Feed it every usable face; ``update`` returns True on the frame a blink completes."""

    def __init__(self, config: LivenessConfig) -> None:
        self.config = config
        self._open: deque[tuple[float, float]] = deque(maxlen=config.baseline_frames)
        self._reference: EyeView | None = None  # the last open-eyed frame
        self._closed: EyeView | None = None  # the first frame of the current closure
        self._previous: EyeView | None = None  # the frame before this one
        self._armed = True
        self.eyes_open = True  # the last frame's eyes were at their open level (or unknown)
        self.last = BlinkFrame(None, None, None, None)  # the last frame's measures
        self.last_blink_began: float | None = None  # when the last counted blink's closure began

    def reset(self) -> None:
        """The face was lost: a closure in progress no longer counts."""
        self.eyes_open = True
        self._closed = None
        self._reference = None
        self._previous = None

    def update(self, view: EyeView) -> bool:
        self.last = BlinkFrame(None, None, None, None)
        counted = self._update(view)
        self._previous = view
        return counted

    def _note(self, ratios: list[float], event: str | None, changes: list[float] | None = None,
              shift: float | None = None) -> None:
        self.last = BlinkFrame(
            (ratios[0], ratios[1]), None if changes is None else (changes[0], changes[1]), shift, event,
        )

    def _update(self, view: EyeView) -> bool:
        config = self.config
        if len(self._open) < 3:
            self._open.append(view.openings)
            self._reference = view
            return False
        baseline = np.percentile(np.array(self._open), config.baseline_percentile, axis=0)
        ratios = [opening / max(base, 1e-6) for opening, base in zip(view.openings, baseline, strict=True)]
        opened = self.eyes_open = min(ratios) >= config.open_ratio
        self._note(ratios, None)
        if self._closed is not None:
            if view.time - self._closed.time > config.max_blink_seconds:
                # Closed for longer than a blink: a squint, a frown, a look down or eyes shut,
                # not a blink. Look for the next closure once the eyes are open (now, or later).
                self._closed, self._armed = None, opened
                self._note(ratios, "rejected:too_long")
                if opened:
                    self._accept_open(view)
            elif opened or (min(ratios) >= config.close_ratio and self._looks_as_before(view)):
                self.last_blink_began = self._closed.time
                self._closed = None
                self._accept_open(view)
                self._note(ratios, "blink")
                return True
            return False
        if self._armed and self._reference is not None and max(ratios) < config.open_ratio:
            changes = self.eye_changes(view)
            # An eye is closing when its opening falls well below its open level, or below
            # the open level with a strong change of look (a lid caught half-closed at
            # 10 frames/s: liveportrait_s32 at 1.4 s and 2.2 s).
            closing = [
                ratio < config.close_ratio or change >= config.strong_eye_change
                for ratio, change in zip(ratios, changes, strict=True)
            ]
            if all(closing):
                shift = head_shift(view, self._previous) if self._previous is not None else None
                if min(changes) < config.min_eye_change:
                    event = "rejected:no_eye_change"
                elif shift is None or shift > config.max_blink_head_shift:
                    event = "rejected:head_jump"
                else:
                    event = "closing"
                if event == "closing":
                    self._closed = view
                else:
                    self._armed = False  # narrowed eyes without a blink: wait for open eyes
                self._note(ratios, event, changes, shift)
                return False
        if opened:
            self._armed = True
            self._accept_open(view)
        return False

    def eye_changes(self, view: EyeView) -> list[float]:
        """Appearance change of each eye against the last open-eyed frame."""
        assert self._reference is not None
        return [
            appearance_change(patch, reference)
            for patch, reference in zip(view.patches, self._reference.patches, strict=True)
        ]

    def _looks_as_before(self, view: EyeView) -> bool:
        """Both eyes look as they did before the closure: reopened, though the landmarks'
        eye ratio may lag (measured on liveportrait_s18 at 5.6 s)."""
        return float(np.mean(self.eye_changes(view))) < self.config.min_eye_change / 2

    def _accept_open(self, view: EyeView) -> None:
        self._open.append(view.openings)
        self._reference = view
