"""Presentation attack signal: the MiniFASNet anti-spoofing score (face_engine/antispoof.py)
on a few usable frames of a session, averaged.

A face shown on a phone or tablet screen or on paper keeps the texture, moire, reflections
and screen edges of its medium, which the network was trained to see; a blink or a head turn
played back in a video does not remove them. One frame is a noisy judge (live faces in dim
light score low now and then), so the signal scores a handful of frames spread over the
session and decides on their mean real-probability. Frames too dark or too blurred to judge
are skipped and turn into a lighting or "hold still" hint, never into an attack verdict.

Measurements: ``python -m face_engine pad-eval`` on the Replay-Attack frames of
``../shared/replay_attack`` (labels_train.csv to choose, labels_devel.csv to report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from face_engine import antispoof
from face_engine.quality import HINTS, quality
from face_engine.types import Face

UNDECIDED = "undecided"
LIVE = "live"
ATTACK = "attack"
UNJUDGEABLE = "unjudgeable"


@dataclass(frozen=True)
class PresentationConfig:
    """Thresholds of the presentation attack signal, each with the measurement it rests on."""

    models: tuple[str, ...] = antispoof.DEFAULT_MODELS  # V1SE and V2 fused: see antispoof's docstring
    # Mean real-probability (fused) at or above which the session's face is live. pad-eval
    # --judgeable --calibrate-bpcer 0.03 on labels_train.csv (judged frames) gives 0.4897.
    # Per judged frame on labels_devel.csv: 1.4% of office-light and 7.5% of dim live frames
    # refused, no phone frame, 7.5% of tablet and 20% of print frames accepted (V2 alone at
    # its 0.74 before: 0% / 6.5%, phone 1.8%, tablet 20.8%, print 32.5%). Per clip (mean of
    # its judged frames) on devel: 0 of 28 office-light and 1 of 22 dim live clips refused, 0
    # of 118 phone and 8 of 117 tablet clips accepted. On the product's frames
    # (bench/pad_sessions.py): 10 of 11 shared live clips pass (liveportrait_d19 is refused,
    # 0.40: V2 doubts that close-up face; filmed smaller, as phone_portrait, it scores 0.995),
    # none of 12 live variations is refused (10 live, 1 too dark to judge, 1 undecided); no
    # screen replay is accepted (9 of 11 refused, 2 undecided: a 3 s clip, and a face too
    # small to be scored).
    threshold: float = 0.49
    # Face brightness (mean gray level of the box, as quality.py measures it) below which a
    # frame is not judged: 11 of the 15 lowest-scoring live train frames (V2) are at 54-59 (dim
    # window light), while 99% of attack frames are above 61 (screens light the face).
    min_brightness: float = 60.0
    # Laplacian variance (quality.py's sharpness) below which a frame is not judged: the
    # quality check's own "blurry" limit; users of these weights report blur scored as fake.
    min_sharpness: float = 40.0
    # One frame scored in this many usable frames: at 10 frames/s, 5 scored frames span 1.5 s
    # of head and light changes rather than five near-copies of one moment.
    every_frames: int = 3
    # Frames scored before the verdict: 5 x about 2.6 ms (both models) per session
    # (bench/pad_bench.py). Live clips average out single low frames (per judged devel frame
    # 7.5% refused in dim light, per clip 1 of 22); more frames would delay the verdict past
    # the blink and head movement.
    scored_frames: int = 5
    # Consecutive usable frames skipped as too dark or blurred before the signal reports
    # "unjudgeable" (2 s at 10 frames/s): the session should ask for better light.
    unjudgeable_frames: int = 20
    # Keep the crop out of black bars along the frame's edges (a clip letterboxed into 640x480
    # by the page): the networks read padding as an attack. liveportrait_s18 (16:9, 60 px bars
    # above and below) has V1SE's crop reach into them: its frames score 0.90 fused with the
    # bars trimmed, 0.001 without (bench/pad_sessions.py --keep-padding).
    trim_padding: bool = True


DEFAULT_PRESENTATION = PresentationConfig()


class PresentationAttackSignal:
    """Feed it the usable faces of a session; ``verdict`` is "undecided" until
    ``scored_frames`` frames have been scored, then "live" or "attack" for good; it is
    "unjudgeable" while too many frames in a row are too dark or blurred to score."""

    def __init__(self, config: PresentationConfig = DEFAULT_PRESENTATION) -> None:
        self.config = config
        self.probabilities: list[float] = []
        self._since_scored = 0
        self._skipped_in_row = 0
        self._decided = False
        self.verdict = UNDECIDED
        self.decided_at: float | None = None
        self.hint: str | None = None  # why the last candidate frame was not judged

    @property
    def frames_scored(self) -> int:
        return len(self.probabilities)

    @property
    def score(self) -> float | None:
        """Mean real-probability of the frames scored so far (None before the first)."""
        return float(np.mean(self.probabilities)) if self.probabilities else None

    def update(
        self, image: np.ndarray, face: Face, metrics_or_gray: Mapping[str, float] | np.ndarray | None,
        now: float,
    ) -> str:
        """Consider one usable face of the session (BGR ``image``); ``metrics_or_gray`` is the
        frame's ``Quality.metrics`` (brightness, sharpness) or its grayscale image. Returns
        the verdict."""
        if self._decided:
            return self.verdict
        self._since_scored += 1
        if self.probabilities and self._since_scored < self.config.every_frames:
            return self.verdict
        metrics = self._metrics(image, face, metrics_or_gray)
        issue = self._issue(metrics)
        if issue is not None:
            self.hint = HINTS[issue]
            self._skipped_in_row += 1
            if self._skipped_in_row >= self.config.unjudgeable_frames:
                self.verdict = UNJUDGEABLE
            return self.verdict
        self.hint = None
        self._skipped_in_row = 0
        self._since_scored = 0
        config = self.config
        self.probabilities.append(
            antispoof.real_probability(image, face, config.models, trim_padding=config.trim_padding))
        if self.frames_scored >= self.config.scored_frames:
            self._decided = True
            self.decided_at = now
            self.verdict = LIVE if self.score >= self.config.threshold else ATTACK
        elif self.verdict == UNJUDGEABLE:
            self.verdict = UNDECIDED
        return self.verdict

    def _issue(self, metrics: Mapping[str, float]) -> str | None:
        if metrics.get("brightness", 255.0) < self.config.min_brightness:
            return "too_dark"
        if metrics.get("sharpness", float("inf")) < self.config.min_sharpness:
            return "blurry"
        return None

    @staticmethod
    def _metrics(
        image: np.ndarray, face: Face, metrics_or_gray: Mapping[str, float] | np.ndarray | None,
    ) -> Mapping[str, float]:
        if isinstance(metrics_or_gray, Mapping) and "brightness" in metrics_or_gray:
            return metrics_or_gray
        gray = metrics_or_gray if isinstance(metrics_or_gray, np.ndarray) else None
        return quality(image, [face], gray=gray).metrics  # the same measure as the quality check


def judgeable(metrics: Mapping[str, float], config: PresentationConfig = DEFAULT_PRESENTATION) -> bool:
    """Whether a frame with these quality metrics is bright and sharp enough to be scored."""
    return PresentationAttackSignal(config)._issue(metrics) is None
