"""Per-frame processing of one capture session: rate and budget gates, decoding, face
analysis, liveness, sample collection, and the verdict that ends the session.

One FrameProcessor belongs to one WebSocket and is fed frames in order. ``process`` is
CPU-bound (decode, detect, landmarks, sometimes an embedding) and runs in the engine thread
pool (``run_in_engine``), never on the event loop.

Samples: a frame becomes a candidate sample when it has exactly one face of good quality,
the liveness tracker has not failed and still sees the same person, and it is at least
FACEAUTH_SAMPLE_INTERVAL_MS after the previous candidate (spaced samples vary more); its
embedding is the tracker's identity embedding of that frame (see ``_collect``). The
samples that count are the largest group of candidates that all agree with each other
(pairwise cosine similarity at or above the agreement threshold): an odd frame (motion
blur, a half-closed eye) is left out instead of poisoning the templates."""

from __future__ import annotations

import asyncio
import functools
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import cv2
import numpy as np
from django.conf import settings
from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

import face_engine as fe
from auth_service import metrics
from auth_service.errors import (
    FaceAuthError,
    FrameRateExceeded,
    FrameRejected,
    TooManyInvalidFrames,
)
from auth_service.services import admission
from face_engine import antispoof
from face_engine.decode import DEFAULT_FORMATS
from face_engine.liveness.presentation import DEFAULT_PRESENTATION, PresentationConfig

T = TypeVar("T")
_executor: ThreadPoolExecutor | None = None


def engine_executor() -> ThreadPoolExecutor:
    """The process-wide pool for engine work; its size bounds CPU use across sessions.
    The networks are compiled once per process (each thread runs its own inference requests):
    a thread loads them when it starts unless the process has (config/gunicorn.py's workers
    load them before they take connections)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.FACEAUTH_ENGINE_THREADS,
            thread_name_prefix="face-engine",
            initializer=_engine_thread_start,
        )
    return _executor


def _engine_thread_start() -> None:
    # The pool is the parallelism: OpenCV's own threads inside each call would make the
    # pool's threads fight over the same cores.
    cv2.setNumThreads(1)
    load_engine_models()


def load_engine_models() -> None:
    """Loads every network a session may run: the face engine's and, with the presentation
    check on, the anti-spoofing networks (otherwise compiled on a worker's first scored frame).
    Each process loads them once; later calls return at once."""
    fe.load_models()
    presentation = _presentation_config()
    if presentation is not None:
        antispoof.load_models(presentation.models)


async def run_in_engine(function: Callable[..., T], *args: Any) -> T:
    """Runs a CPU-bound call in the engine pool and awaits it (counted in the engine
    backlog gauge while queued or running, timed in the engine-time histogram, its wait
    for a thread told to admission control)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(_timed, _measured, time.monotonic(), function, *args)
    with metrics.ENGINE_BACKLOG.track_inprogress():
        return await loop.run_in_executor(engine_executor(), call)


def _measured(submitted: float, function: Callable[..., T], *args: Any) -> T:
    """Runs the call under admission control's measurement: how long it waited for an engine
    thread, and its time in the engine by the phase of its session (admission.session_phase)."""
    return admission.engine_load.measured(time.monotonic() - submitted, function, *args)


def _timed(function: Callable[..., T], *args: Any) -> T:
    with metrics.ENGINE_TIME.time():
        return function(*args)


@dataclass(frozen=True)
class SessionLimits:
    """Limits of a capture session (SPEC section 4), as announced to the client."""

    max_fps: int
    frame_burst: int
    max_frames: int
    min_frames: int
    session_timeout_seconds: int
    idle_timeout_seconds: int
    max_message_bytes: int
    max_invalid_frames: int

    @property
    def min_frame_interval_ms(self) -> int:
        return math.ceil(1000 / self.max_fps)

    @classmethod
    def from_settings(cls) -> SessionLimits:
        return cls(
            max_fps=settings.FACEAUTH_MAX_FPS,
            frame_burst=settings.FACEAUTH_FRAME_BURST,
            max_frames=settings.FACEAUTH_MAX_FRAMES,
            min_frames=settings.FACEAUTH_MIN_FRAMES,
            session_timeout_seconds=settings.FACEAUTH_SESSION_TIMEOUT_SECONDS,
            idle_timeout_seconds=settings.FACEAUTH_IDLE_TIMEOUT_SECONDS,
            max_message_bytes=settings.FACEAUTH_MAX_MESSAGE_BYTES,
            max_invalid_frames=settings.FACEAUTH_MAX_INVALID_FRAMES,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "max_fps": self.max_fps,
            "min_frame_interval_ms": self.min_frame_interval_ms,
            "frame_burst": self.frame_burst,
            "max_frames": self.max_frames,
            "min_frames": self.min_frames,
            "session_timeout_seconds": self.session_timeout_seconds,
            "idle_timeout_seconds": self.idle_timeout_seconds,
            "max_message_bytes": self.max_message_bytes,
        }


@dataclass(frozen=True)
class ProcessingConfig:
    limits: SessionLimits
    samples_needed: int
    sample_interval: float  # seconds between candidate samples
    agreement_threshold: float
    decode_limits: fe.DecodeLimits
    image_formats: tuple[str, ...] = DEFAULT_FORMATS  # FACEAUTH_ACCEPTED_IMAGE_FORMATS
    liveness_mode: str = "passive"  # "active": challenges (face_engine.challenge)
    face_tracking: bool = True  # FACEAUTH_FACE_TRACKING: skip detection while the face is followed
    # FACEAUTH_PRESENTATION_CHECK / _THRESHOLD: the anti-spoofing check, None when off.
    presentation: PresentationConfig | None = DEFAULT_PRESENTATION
    # Seconds between candidates of our own while samples are short and liveness is still
    # pending: the identity checks that used to bring one a second come every few seconds
    # while the face is followed (LivenessConfig.identity_followed_seconds).
    early_sample_interval: float = fe.LivenessConfig().identity_seconds

    @classmethod
    def from_settings(cls, *, samples_needed: int, liveness_mode: str | None = None) -> ProcessingConfig:
        """``liveness_mode`` is the session's (metadata.liveness); None takes FACEAUTH_LIVENESS_MODE."""
        agreement = settings.FACEAUTH_SAMPLE_AGREEMENT_THRESHOLD
        return cls(
            limits=SessionLimits.from_settings(),
            samples_needed=samples_needed,
            sample_interval=settings.FACEAUTH_SAMPLE_INTERVAL_MS / 1000,
            agreement_threshold=fe.DEFAULT_THRESHOLD if agreement is None else float(agreement),
            decode_limits=fe.DecodeLimits(
                max_bytes=settings.FACEAUTH_MAX_IMAGE_BYTES,
                max_side=settings.FACEAUTH_MAX_IMAGE_SIDE,
                max_pixels=settings.FACEAUTH_MAX_IMAGE_PIXELS,
            ),
            image_formats=tuple(settings.FACEAUTH_ACCEPTED_IMAGE_FORMATS),
            liveness_mode=liveness_mode or settings.FACEAUTH_LIVENESS_MODE,
            face_tracking=settings.FACEAUTH_FACE_TRACKING,
            presentation=_presentation_config(),
        )

    @property
    def pool_size(self) -> int:
        # Room for several outliers besides the samples that count; bounded per session.
        return self.samples_needed * 2 + 4


@dataclass(frozen=True)
class Verdict:
    """The session ends. ``reason`` is None when the evidence is complete (enough agreeing
    samples, liveness passed) and the service decides the outcome from ``embeddings``;
    otherwise it says why the session fails (liveness_failed, presentation_attack,
    insufficient_samples, session_expired) and ``detail`` explains it to people (lazy:
    rendered in the session's language when the session ends)."""

    reason: str | None
    detail: str | Promise | None
    embeddings: list[np.ndarray] = field(default_factory=list)
    liveness: dict = field(default_factory=dict)
    frames_received: int = 0
    frames_processed: int = 0


@dataclass(frozen=True)
class FrameReport:
    """What one frame produced: feedback for the client, and a verdict when it ends the
    session. ``error`` is set instead of ``analysis`` when the image was unusable."""

    frame_number: int
    error: FaceAuthError | None = None
    analysis: fe.FrameAnalysis | None = None
    liveness: fe.LivenessState | None = None
    sample_accepted: bool = False
    samples_collected: int = 0
    verdict: Verdict | None = None


def agreeing_group(embeddings: list[np.ndarray], threshold: float) -> list[int]:
    """Indices of the largest group of embeddings whose pairwise similarity all reach
    ``threshold`` (greedy from each anchor; exact enough for the few samples of a session)."""
    if not embeddings:
        return []
    matrix = np.stack([e / (np.linalg.norm(e) or 1.0) for e in embeddings])
    similarity = matrix @ matrix.T
    agree = similarity >= threshold
    best: list[int] = []
    for anchor in range(len(embeddings)):
        group = [anchor]
        for other in np.argsort(-similarity[anchor]):
            other = int(other)
            if other != anchor and all(agree[other, member] for member in group):
                group.append(other)
        if len(group) > len(best):
            best = sorted(group)
    return best


def _presentation_config() -> PresentationConfig | None:
    if not settings.FACEAUTH_PRESENTATION_CHECK:
        return None
    threshold = settings.FACEAUTH_PRESENTATION_THRESHOLD
    return DEFAULT_PRESENTATION if threshold is None else replace(DEFAULT_PRESENTATION, threshold=threshold)


class FrameProcessor:
    """State of one capture session between frames."""

    def __init__(self, config: ProcessingConfig) -> None:
        self.config = config
        # Without face tracking the detector runs on every frame (redetect_every=1).
        # The liveness tracker says when it needs the detector's landmarks (process()).
        self.face_tracker = fe.FaceTracker(
            redetect_every=fe.REDETECT_EVERY if config.face_tracking else 1, watch_liveness=False
        )
        self.tracker: fe.LivenessTracker | fe.ChallengeTracker
        if config.liveness_mode == "active":
            # Drawn here, when the socket claims the session: the sequence exists only in
            # this process and is never sent ahead; each challenge shows when it is due.
            challenges = fe.draw_challenges(secrets.SystemRandom())
            passive = fe.LivenessTracker(presentation=config.presentation)
            self.tracker = fe.ChallengeTracker(passive, challenges)
        else:
            self.tracker = fe.LivenessTracker(stop_at_evidence=True, presentation=config.presentation)
        self.state: fe.LivenessState | fe.ActiveLivenessState | None = None
        self.candidates: deque[np.ndarray] = deque(maxlen=config.pool_size)
        self.group: list[int] = []
        self.frames_received = 0  # frames admitted past the rate gate (the frame budget)
        self.frames_processed = 0  # frames decoded and analysed
        self.rate_rejections = 0
        self.invalid_in_row = 0
        self._tokens = float(config.limits.frame_burst)
        self._tokens_at: float | None = None
        self._last_candidate_at: float | None = None
        # When the session was created, on the monotonic clock (admission's setup time).
        self.created_at: float | None = None

    # --- gates, on the event loop (cheap) ---
    def admit(self, now: float) -> None:
        """Counts a frame against the budget, or refuses it (FrameRateExceeded, non-fatal)
        when the client sends faster than max_fps on average. A token bucket: it refills at
        max_fps frames a second and holds frame_burst, so arrivals that jitter closer than
        1000/max_fps ms pass while a flood does not. A client that keeps sending too fast is
        cut off after max_frames refusals."""
        limits = self.config.limits
        if self._tokens_at is not None:
            refill = (now - self._tokens_at) * limits.max_fps
            self._tokens = min(float(limits.frame_burst), self._tokens + refill)
        self._tokens_at = now
        # A millionth of a frame of slack absorbs float rounding of exact-rate clients.
        if self._tokens < 1 - 1e-6:
            self.rate_rejections += 1
            if self.rate_rejections > limits.max_frames:
                raise TooManyInvalidFrames(_("Too many frames sent above the frame rate limit."))
            wait_ms = math.ceil((1 - self._tokens) * 1000 / limits.max_fps)
            raise FrameRateExceeded(format_lazy(
                _("Frame dropped: frames must average at most {fps} per second (bursts of {burst}); "
                  "the next one is accepted in {wait} ms."),
                fps=limits.max_fps, burst=limits.frame_burst, wait=wait_ms,
            ))
        self._tokens -= 1
        self.frames_received += 1

    def note_invalid(self) -> None:
        """Counts an unusable message; too many in a row end the session."""
        self.invalid_in_row += 1
        if self.invalid_in_row >= self.config.limits.max_invalid_frames:
            raise TooManyInvalidFrames(format_lazy(
                _("{count} unusable messages in a row; the session was closed."), count=self.invalid_in_row
            ))

    # --- the frame itself, in the engine pool ---
    def process(self, data: bytes | str, now: float) -> FrameReport:
        """Decodes and analyses one admitted frame. Raises TooManyInvalidFrames only."""
        try:
            frame = self.face_tracker.decode(
                data, limits=self.config.decode_limits, formats=self.config.image_formats,
                follow=not self.tracker.needs_detection,
            )
        except fe.ImageError as exc:
            self.note_invalid()
            return FrameReport(
                self.frames_received,
                error=FrameRejected(exc.message, code=exc.code),
                samples_collected=self.samples_collected,
                verdict=self._budget_verdict(),
            )
        self.invalid_in_row = 0
        # The liveness tracker and embeddings take the frame as decoded (maybe at half size);
        # the client gets coordinates in the frame as it sent it.
        state = self.tracker.update(
            frame.image, frame.analysis, now, gray=frame.gray, continued=frame.continued
        )
        self.state = state
        self.frames_processed += 1
        accepted = self._collect(frame.image, frame.analysis, state, now)
        return FrameReport(
            self.frames_received,
            analysis=frame.frame_analysis,
            liveness=state,
            sample_accepted=accepted,
            samples_collected=self.samples_collected,
            verdict=self._verdict(state),
        )

    @property
    def liveness_mode(self) -> dict:
        """The mode and the number of challenges (0 in passive mode), for the client."""
        tracker = self.tracker
        count = len(tracker.challenges) if isinstance(tracker, fe.ChallengeTracker) else 0
        return {"mode": self.config.liveness_mode, "challenges": count}

    @property
    def samples_collected(self) -> int:
        return min(len(self.group), self.config.samples_needed)

    def _collect(
        self, image: np.ndarray, analysis: fe.FrameAnalysis, state: fe.LivenessState, now: float
    ) -> bool:
        if analysis.face is None or not analysis.quality.ok:
            return False
        if state.failure is not None or not state.same_person:
            return False
        if (
            self._last_candidate_at is not None
            and now - self._last_candidate_at < self.config.sample_interval
        ):
            return False
        # Samples reuse the liveness tracker's identity embeddings. An embedding of our own
        # (about three times a whole frame's other work) is made only while samples are
        # short: once liveness has passed, every sample interval (each one brings the end of
        # the session nearer); before, about once a second, as identity checks came while
        # the face was not followed.
        if state.embedding is None:
            if len(self.group) >= self.config.samples_needed:
                return False
            interval = self.config.sample_interval if state.live else self.config.early_sample_interval
            if self._last_candidate_at is not None and now - self._last_candidate_at < interval:
                return False
        embedding = state.embedding if state.embedding is not None else fe.embed(image, analysis.face)
        # Spaced like accepted ones even when refused below: another face must not get an
        # embedding on every frame.
        self._last_candidate_at = now
        if not self.tracker.is_same_person(embedding):
            # Another face than the identity checks have seen (a swap between two checks, or a
            # failed check's own embedding): never a sample.
            return False
        self.candidates.append(np.asarray(embedding, np.float32))
        self.group = agreeing_group(list(self.candidates), self.config.agreement_threshold)
        return len(self.candidates) - 1 in self.group

    def chosen_samples(self) -> list[np.ndarray]:
        """``samples_needed`` agreeing samples, spread over the session (more varied)."""
        group = self.group
        needed = self.config.samples_needed
        if len(group) > needed:
            picks = np.linspace(0, len(group) - 1, needed).round().astype(int)
            group = [group[i] for i in picks]
        return [self.candidates[i] for i in group]

    # --- verdicts ---
    def _ending(self, reason: str | None, detail: str | None, **extra: Any) -> Verdict:
        liveness = self.state.as_dict() if self.state is not None else {}
        if self.state is not None:
            # Why the evidence was (not) complete, as reason codes for the client's support.
            tracker, state = self.tracker, self.state
            if isinstance(tracker, fe.ChallengeTracker):
                tracker, state = tracker.passive, state.passive
            liveness["explanation"] = tracker.explanation.as_dict(state)
        return Verdict(
            reason=reason,
            detail=detail,
            liveness=liveness,
            frames_received=self.frames_received,
            frames_processed=self.frames_processed,
            **extra,
        )

    def _verdict(self, state: fe.LivenessState) -> Verdict | None:
        if state.failure == "presentation_attack":
            return self._ending("presentation_attack", _FAILURE_DETAIL[state.failure])
        if state.failure is not None:
            return self._ending("liveness_failed", _FAILURE_DETAIL.get(state.failure, state.failure))
        if (
            state.live
            and len(self.group) >= self.config.samples_needed
            and self.frames_processed >= self.config.limits.min_frames
        ):
            return self._ending(None, None, embeddings=self.chosen_samples())
        return self._budget_verdict()

    def _budget_verdict(self) -> Verdict | None:
        if self.frames_received < self.config.limits.max_frames:
            return None
        when = format_lazy(_("within {frames} frames"), frames=self.config.limits.max_frames)
        return self._ending(*self._shortfall(when))

    def expired_verdict(self) -> Verdict:
        """The session's time ran out before the evidence was complete."""
        _reason, detail = self._shortfall(_("before the session expired"))
        return self._ending("session_expired", detail)

    def _shortfall(self, when: Promise) -> tuple[str, Promise]:
        state = self.state
        if state is not None and not state.missing and state.failure is None and not state.live:
            # Blink and head movement were in, but the picture could not be checked for a screen or
            # a photo (too dark or blurred to judge, or too few frames).
            return "liveness_failed", format_lazy(
                _("the picture could not be checked for a screen or a photo {when} (light it better "
                  "and hold still)"), when=when,
            )
        if state is None or not state.live:
            # The missing evidence is named by its codes (blink, head_movement, challenges).
            missing = ", ".join(state.missing) if state is not None and state.missing else _("a face")
            return "liveness_failed", format_lazy(
                _("liveness was not confirmed {when} (missing: {missing})"), when=when, missing=missing
            )
        return "insufficient_samples", format_lazy(
            _("only {collected} of {needed} agreeing good-quality samples {when}"),
            collected=self.samples_collected, needed=self.config.samples_needed, when=when,
        )


_FAILURE_DETAIL = {
    "challenge_timeout": _("a liveness challenge was not performed within its time window"),
    "challenge_wrong_action": _("a different movement than the liveness challenge asked for was made"),
    "static_image": _("a still image was detected (the same picture sent repeatedly)"),
    "face_changed": _("the face changed during the session"),
    "presentation_attack": _("a photo or a screen was shown to the camera instead of a live face"),
}
