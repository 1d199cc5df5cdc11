"""Presentation attack detection figures (ISO/IEC 30107-3 terms) for passive liveness.

- APCER (attack presentation classification error rate): share of attack presentations
  accepted as live, reported per attack kind (PAI species) and overall.
- BPCER (bona fide presentation classification error rate): share of live presentations
  refused.

A clip counts as accepted when the tracker reports it live within the session's frame budget
(120 frames at 10 frames/s), the way the service ends a session as soon as liveness holds.
Every frame goes through what a browser does to a webcam picture: fitted into 640x480 and
JPEG-encoded at quality 80 (``attacks.browser_frame``)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from face_engine.challenge import ActiveLivenessState, ChallengeTracker
from face_engine.errors import FaceEngineError, ImageError
from face_engine.evaluation.attacks import MAX_FRAMES, Presentation, browser_frame
from face_engine.liveness import LivenessTracker
from face_engine.pipeline import REDETECT_EVERY, FaceTracker, TrackedFrame
from face_engine.types import DEFAULT_LIVENESS, LivenessConfig, LivenessState
from face_engine.video import video_frames

LABELS = ("live", "attack")


@dataclass(frozen=True)
class ClipResult:
    """The verdict on one clip. ``frames`` is how many frames were used: up to the one where
    liveness was confirmed, else all (at most the budget)."""

    name: str
    label: str
    note: str
    live: bool
    blinks: int
    head_motion: bool
    parallax_frames: int
    failure: str | None
    frames: int
    error: str | None = None

    @property
    def correct(self) -> bool:
        return self.error is None and self.live == (self.label == "live")

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "error" or value}


@dataclass(frozen=True)
class SessionFrame:
    """One frame through the service's path: its position in the session, the face tracker's
    result and the liveness state after it."""

    index: int  # 0-based
    time: float  # seconds since the session's first frame
    tracked: TrackedFrame
    state: LivenessState | ActiveLivenessState


def session_frames(
    frames: Iterable[np.ndarray], tracker: LivenessTracker | ChallengeTracker, *, fps: float = 10.0,
    face_tracking: bool = True,
) -> Iterator[SessionFrame]:
    """Feed ``frames`` (already as the server receives them, arriving at ``fps``) through what
    the service does with each frame of a session (auth_service/services/frames.py,
    ``FrameProcessor.process``): the face is followed between detections while ``tracker``
    does not need the detector's landmarks (``needs_detection``), and ``tracker`` takes the
    image, grey image and track continuity the face tracker gives. ``face_tracking`` False
    detects every frame, as FACEAUTH_FACE_TRACKING=false does. The caller decides when to stop."""
    faces = FaceTracker(redetect_every=REDETECT_EVERY if face_tracking else 1, watch_liveness=False)
    for index, frame in enumerate(frames):
        now = index / fps  # a browser's frames arrive at its capture rate
        tracked = faces.analyze(frame, follow=not tracker.needs_detection)
        state = tracker.update(tracked.image, tracked.analysis, now, gray=tracked.gray,
                               continued=tracked.continued)
        yield SessionFrame(index, now, tracked, state)


def evaluate_frames(
    frames: Iterable[np.ndarray], *, fps: float = 10.0, max_frames: int = MAX_FRAMES,
    config: LivenessConfig = DEFAULT_LIVENESS, face_tracking: bool = False,
) -> tuple[bool, LivenessState]:
    """Feed ``frames`` (already as the server receives them) to a tracker at ``fps``; stop at
    the first live verdict or after ``max_frames``. Returns (live, last state). The tracker
    stops measuring a signal once its evidence is in, as the service's passive sessions do
    (so counts stop at what the verdict needs). With ``face_tracking`` the face is followed
    between detections while the tracker does not need the detector's landmarks
    (``LivenessTracker.needs_detection``), as FACEAUTH_FACE_TRACKING does."""
    tracker = LivenessTracker(config, stop_at_evidence=True)
    state = None
    for step in session_frames(islice(frames, max_frames), tracker, fps=fps, face_tracking=face_tracking):
        state = step.state
        assert isinstance(state, LivenessState)  # a passive tracker's
        if state.live:
            return True, state
    if state is None:
        raise ImageError("no frames could be read")
    return False, state


def evaluate(
    name: str, label: str, note: str, frames: Iterable[np.ndarray], *, fps: float = 10.0,
    max_frames: int = MAX_FRAMES, config: LivenessConfig = DEFAULT_LIVENESS, face_tracking: bool = False,
) -> ClipResult:
    """One clip's result; an unreadable clip gives a result with ``error`` set."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, not {label!r}")
    try:
        live, state = evaluate_frames(frames, fps=fps, max_frames=max_frames, config=config,
                                      face_tracking=face_tracking)
    except FaceEngineError as exc:
        return ClipResult(name, label, note, False, 0, False, 0, None, 0, error=exc.message)
    return ClipResult(name, label, note, live, state.blinks, state.head_motion, state.parallax_frames,
                      state.failure, state.frames)


def evaluate_presentation(
    presentation: Presentation, *, config: LivenessConfig = DEFAULT_LIVENESS, face_tracking: bool = False,
) -> ClipResult:
    """Result of a synthesised clip, generated in memory."""
    return evaluate(presentation.name, presentation.label, presentation.kind, presentation.stream(),
                    max_frames=presentation.frames, config=config, face_tracking=face_tracking)


def file_frames(path: Path, fps: float) -> Iterator[np.ndarray]:
    """A video file's frames at ``fps``, as the browser would send them."""
    for _, frame in video_frames(path, fps=fps):
        yield browser_frame(frame)


def read_manifest(manifest: Path) -> list[tuple[Path, str, str]]:
    """Rows ``path,label[,note]`` (paths relative to the manifest's folder; a header row and
    lines starting with # are skipped). Raises ValueError on a bad label."""
    rows = []
    with manifest.open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not row[0].strip() or row[0].startswith("#") or row[0].strip() == "path":
                continue
            if len(row) < 2 or row[1].strip() not in LABELS:
                raise ValueError(f"{manifest}:{number}: expected path,label(live|attack)[,note]")
            note = row[2].strip() if len(row) > 2 else ""
            rows.append((manifest.parent / row[0].strip(), row[1].strip(), note))
    return rows


def summary(results: list[ClipResult]) -> dict:
    """APCER and BPCER overall and per note (attack kind or live variation), with counts."""

    def rates(group: list[ClipResult]) -> dict:
        scored = [result for result in group if result.error is None]
        attacks = [result for result in scored if result.label == "attack"]
        live = [result for result in scored if result.label == "live"]
        accepted = sum(result.live for result in attacks)
        refused = sum(not result.live for result in live)
        figures: dict = {"clips": len(group), "errors": len(group) - len(scored)}
        if attacks:
            figures.update(attacks=len(attacks), attacks_accepted=accepted,
                           apcer=round(accepted / len(attacks), 4))
        if live:
            figures.update(live=len(live), live_refused=refused, bpcer=round(refused / len(live), 4))
        return figures

    kinds: dict[str, list[ClipResult]] = {}
    for result in results:
        kinds.setdefault(f"{result.label}:{result.note or '-'}", []).append(result)
    overall = rates(results)
    per_kind = {kind: rates(group) for kind, group in sorted(kinds.items())}
    attack_rates = [figures["apcer"] for figures in per_kind.values() if "apcer" in figures]
    return {"summary": True, **overall, "max_apcer_per_kind": max(attack_rates) if attack_rates else None,
            "by_kind": per_kind}
