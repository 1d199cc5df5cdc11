"""Blink: both eyes' lids dip and rise again within a blink's time, seen by a dedicated eye
model (face_engine/eyes.py: the lids' opening in eye widths) and judged against this face's own
noise, so that the rule fits a steady webcam, a shaking phone and narrow eyes alike.

A blink is a *dip*: the deepest frame of a short stretch where the less-closed eye is below its
open level, with the lids higher on both sides of it (before: on average over the two eyes, since
a wink may already hold one eye low; after: on each eye). At 10 frames/s a brief blink is often
caught half-closed on a single frame, so the dip's depth alone decides little. What makes it
evidence is that it stands out of what this stream's measures do when no blink happens:

- the eyes' *look* changed: closed lids hide the dark iris and lash line, a large change of the
  aligned, blurred eye patch (1 - normalised cross-correlation, blind to brightness) against the
  open frames on either side, larger than the look's own frame-to-frame change on open eyes (a
  photo's eye pixels are the same pixels after alignment, however it is moved, so its look
  changes only with blur and resampling, which this noise measure sees too); and the dip stands
  out of the opening's noise at least moderately;
- or the dip alone stands far out of the opening's frame-to-frame noise on open eyes (a
  half-closed lid on a steady, sharp face).

A dip is not a blink when the eyes were not fully open shortly before it (a long closure, eyes
shut or slit, a squint), when it does not rise again within the window (looking down, a frown),
or when the landmarks' rigid points jump against each other in the aligned frame (the fit lost
the face). Camera motion moves nothing in the aligned frame, and a head turning while the eyes
blink is let through: people often blink as they turn their head or shift their gaze."""

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


def look_change(a: EyeView, b: EyeView) -> float:
    """How much both eyes' look changed between two views: the smaller eye's change."""
    return min(appearance_change(p, q) for p, q in zip(a.patches, b.patches, strict=True))


@dataclass(frozen=True)
class BlinkFrame:
    """What the blink signal made of one frame, for explanations: the openings against the
    open level; where a dip was judged on this frame, the look change of each eye at its
    deepest frame (the larger of before and after), the dip's rise (the smaller of before and
    after) and what the evidence needed (``needed``: look change, rise), and the head's largest
    shift over the dip; ``event``: None, ``closing`` (below the open level), ``blink``
    (counted), or ``rejected:REASON`` (``no_eye_change``, ``not_from_open``, ``head_jump``,
    ``too_long``)."""

    ratios: tuple[float, float] | None
    changes: tuple[float, float] | None = None
    head_shift: float | None = None
    event: str | None = None
    rise: float | None = None
    needed: tuple[float, float | None] | None = None


NOTHING = BlinkFrame(None)


@dataclass(frozen=True)
class _Seen:
    """A frame in the blink window: its view, openings against the open level, and the head's
    shift since the frame before."""

    view: EyeView
    ratios: np.ndarray
    shift: float | None

    @property
    def depth(self) -> float:
        """The less-closed eye's ratio: a blink closes both."""
        return float(self.ratios.max())


def _median_step(values: deque) -> float:
    """Median absolute change between consecutive entries (both eyes pooled)."""
    return float(np.median(np.abs(np.diff(np.array(values), axis=0))))


class BlinkSignal:
    """Feed it every usable face; ``update`` returns True on the frame a blink is confirmed
    (the first frame after the dip on which the lids have risen again)."""

    def __init__(self, config: LivenessConfig) -> None:
        self.config = config
        self._levels: deque[tuple[float, float]] = deque(maxlen=config.baseline_frames)
        self._open_ratios: deque[np.ndarray] = deque(maxlen=config.blink_noise_frames)
        self._open_looks: deque[float] = deque(maxlen=config.blink_noise_frames)
        self._window: deque[_Seen] = deque()
        self._last_open: _Seen | None = None
        self._counted_at = -np.inf  # frames up to the last count's belong to it
        self._reported: set[float] = set()  # window frames whose rejection as deepest was reported
        self._previous: EyeView | None = None
        self.eyes_open = True  # the last frame's eyes were at their open level (or unknown)
        self.last = NOTHING  # the last frame's measures
        self.last_blink_began: float | None = None  # the first frame of the last counted dip

    def reset(self) -> None:
        """The face was lost: a dip in progress no longer counts."""
        self.eyes_open = True
        self._window.clear()
        self._reported.clear()
        self._last_open = None
        self._previous = None

    def update(self, view: EyeView) -> bool:
        self.last = NOTHING
        counted = self._update(view)
        self._previous = view
        return counted

    @property
    def opening_noise(self) -> float | None:
        """Frame-to-frame change of the open eyes' ratios (None until enough open frames)."""
        if len(self._open_ratios) < self.config.blink_noise_min_frames:
            return None
        return _median_step(self._open_ratios)

    @property
    def look_noise(self) -> float | None:
        """Frame-to-frame look change of open eyes (None until enough open frames)."""
        if len(self._open_looks) < self.config.blink_noise_min_frames:
            return None
        return float(np.median(self._open_looks))

    def _update(self, view: EyeView) -> bool:
        config = self.config
        if len(self._levels) < 2:
            # The open level needs a first measure: these frames are taken as open.
            self._levels.append(view.openings)
            first = _Seen(view, np.ones(2), None)
            self._window.append(first)
            self._accept_open(first)
            return False
        level = np.percentile(np.array(self._levels), config.baseline_percentile, axis=0)
        ratios = np.asarray(view.openings, dtype=np.float64) / np.maximum(level, 1e-6)
        seen = _Seen(view, ratios, head_shift(view, self._previous) if self._previous is not None else None)
        self.last = BlinkFrame((float(ratios[0]), float(ratios[1])), event=self._leave_window(view.time))
        counted = self._judge(seen)
        self._window.append(seen)
        self.eyes_open = seen.depth >= config.open_ratio
        if self.eyes_open:
            self._levels.append(view.openings)
            self._accept_open(seen)
        elif self.last.event is None:
            self.last = BlinkFrame(self.last.ratios, event="closing")
        return counted

    def _accept_open(self, seen: _Seen) -> None:
        """An open-eyed frame: the noise measures take it (the look's change only between
        frames close in time, or a slow drift of pose would count as noise)."""
        self._open_ratios.append(seen.ratios)
        last = self._last_open
        if last is not None and seen.view.time - last.view.time <= self.config.blink_look_noise_gap:
            self._open_looks.append(look_change(seen.view, last.view))
        self._last_open = seen

    def _leave_window(self, now: float) -> str | None:
        """Drop frames older than the blink window. A deep dip that leaves it with the eyes
        still below their open level is a closure too long for a blink: reported once."""
        config = self.config
        event = None
        while self._window and now - self._window[0].view.time > config.blink_window_seconds:
            gone = self._window.popleft()
            reported = gone.view.time in self._reported
            self._reported.discard(gone.view.time)  # its time never comes back
            if (gone.view.time > self._counted_at and gone.depth < config.close_ratio and not reported
                    and all(seen.depth < config.open_ratio for seen in self._window)):
                event = "rejected:too_long"
        return event

    def _judge(self, now: _Seen) -> bool:
        """Whether the window's deepest frame since the last count, with ``now`` after it, is a
        blink; a rejected dip standing out of the noise is reported once."""
        config = self.config
        candidates = [seen for seen in self._window if seen.view.time > self._counted_at]
        if not candidates:
            return False
        deepest = min(candidates, key=lambda seen: seen.depth)
        if deepest.depth >= config.open_ratio:
            return False  # open eyes throughout: the common frame, nothing more to measure
        before = [seen for seen in self._window if self._counted_at <= seen.view.time < deepest.view.time]
        if not before:
            return False
        reference = max(before, key=lambda seen: float(np.mean(seen.ratios - deepest.ratios)))
        rise = min(float(np.mean(reference.ratios - deepest.ratios)),
                   float(np.min(now.ratios - deepest.ratios)))
        if rise < config.min_blink_rise:
            return False
        opening_noise, look_noise = self.opening_noise, self.look_noise
        # Until the noise is known, a prior stands in for it (LivenessConfig says which).
        noise_or_prior = config.blink_prior_noise if opening_noise is None else opening_noise
        moderate = max(config.min_blink_rise, config.blink_rise_noise * noise_or_prior)
        if rise < moderate:
            return False  # a dip within the opening's noise: nothing to report
        # Each eye's look at the deepest frame against the open frames on either side of it.
        changes = [max(appearance_change(deep, before_patch), appearance_change(deep, after_patch))
                   for deep, before_patch, after_patch
                   in zip(deepest.view.patches, reference.view.patches, now.view.patches, strict=True)]
        look = min(changes)
        look_needed = max(config.min_look_change, config.look_change_noise
                          * (config.blink_prior_look_noise if look_noise is None else look_noise))
        # A dip alone is evidence only against a measured noise.
        rise_needed = (None if opening_noise is None
                       else max(config.min_blink_rise, config.strong_rise_noise * opening_noise))
        shifts = [seen.shift for seen in (*self._window, now)
                  if seen.shift is not None and seen.view.time > reference.view.time]
        last_open = self._last_open
        if last_open is None or deepest.view.time - last_open.view.time > config.blink_open_within:
            reason = "not_from_open"
        elif look < look_needed and (rise_needed is None or rise < rise_needed):
            reason = "no_eye_change"
        elif shifts and max(shifts) > config.max_blink_head_shift:
            reason = "head_jump"
        else:
            reason = None
        if reason is not None and deepest.view.time in self._reported:
            return False
        self.last = BlinkFrame(
            self.last.ratios, (changes[0], changes[1]), max(shifts) if shifts else None,
            "blink" if reason is None else f"rejected:{reason}", rise, (look_needed, rise_needed),
        )
        if reason is not None:
            self._reported.add(deepest.view.time)
            return False
        self._counted_at = now.view.time
        # The dip began on the first frame after the most open one before it.
        self.last_blink_began = min(seen.view.time for seen in self._window
                                    if seen.view.time > reference.view.time)
        return True
