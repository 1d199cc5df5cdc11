"""Passive liveness over a stream of frames: a natural blink, 3D head movement, and the same
person throughout. Each signal is a small class with its own measured thresholds; this module
is the passive policy that feeds them and combines their evidence.

- ``blink.BlinkSignal``: both eyes close and reopen within a blink's time while the head stays
  put, checked on the eyes' appearance in the face-aligned frame, not on landmark ratios alone.
- ``parallax.ParallaxSignal``: the face region's tracked points stop fitting a homography
  (a flat picture, however moved, always fits one).
- ``identity.IdentitySignal``: embeddings about once a second and on reappearance; a different
  person ends the session (``face_changed``).
- ``replay.StaticReplaySignal``: the very same picture sent again and again (``static_image``).
- ``presentation.PresentationAttackSignal``: an anti-spoofing network scores a few frames for
  the traces of a screen or paper (``presentation_attack``); a live verdict needs its "live".
Faces too small to resolve (eye distance under ``min_eye_distance``) give the hint "move
closer" and no evidence. A face cut by the frame gives blink evidence only while its eyes and
nose, with the eye model's margin, stay in the picture (a phone brought close cuts the forehead
and chin first), and no parallax or anti-spoofing score. Not covered: a 3D mask, a real-time
deepfake fed to a virtual camera, and the replays and prints the anti-spoofing network misses
(docs/liveness.md gives the rates)."""

from __future__ import annotations

import cv2
import numpy as np

from face_engine.eyes import eye_state
from face_engine.liveness.blink import NOTHING, BlinkSignal, eye_view
from face_engine.liveness.explanation import Explanation
from face_engine.liveness.face_frame import align_face, eye_distance
from face_engine.liveness.identity import IdentitySignal
from face_engine.liveness.parallax import ParallaxSignal, planar_residual
from face_engine.liveness.presentation import (
    ATTACK,
    DEFAULT_PRESENTATION,
    LIVE,
    UNJUDGEABLE,
    PresentationAttackSignal,
    PresentationConfig,
)
from face_engine.liveness.replay import StaticReplaySignal
from face_engine.types import DEFAULT_LIVENESS, FrameAnalysis, LivenessConfig, LivenessState

HINT_BLINK = "blink naturally"
HINT_MOVE = "turn your head slightly"
HINT_FACE = "keep your face in view"
HINT_CLOSER = "move closer"
HINT_SAME_PERSON = "the person changed: start again"
HINT_STATIC = "a still image was detected: use a live camera"
HINT_PRESENTATION = "a photo or a screen was detected: show your own face to the camera"
HINT_CHECKING = "hold still for a moment"

__all__ = ["LivenessConfig", "LivenessTracker", "eyes_in_view", "planar_residual"]

# iBUG points 27-47: the nose and both eyes, what the blink signal reads (eye model crops,
# eye patches, the rigid points). The eye model's crop reaches about 0.55 eye distances
# around each eye's centre (2.3 eye widths a side).
_EYES_AND_NOSE = slice(27, 48)
_EYE_VIEW_MARGIN = 0.55


def eyes_in_view(points: np.ndarray, shape: tuple[int, ...], distance: float) -> bool:
    """Whether the eyes and nose of ``points`` (68 landmarks), with the eye model's margin,
    lie inside an image of ``shape``."""
    region = points[_EYES_AND_NOSE]
    margin = _EYE_VIEW_MARGIN * distance
    low, high = region.min(axis=0) - margin, region.max(axis=0) + margin
    return bool(low[0] >= 0 and low[1] >= 0 and high[0] <= shape[1] and high[1] <= shape[0])


class LivenessTracker:
    """Feed it every analyzed frame of one session, in order; read the returned state.

    With ``stop_at_evidence`` a signal is no longer measured once it has given what the
    passive verdict needs (a blink; head movement on ``parallax_frames`` frames): counts only
    grow, so the verdict is the same on every frame, and a session waiting for a blink does
    not track points for parallax meanwhile. The service runs passive sessions this way;
    the active mode (``ChallengeTracker``) and tools that count every blink leave it off."""

    def __init__(
        self, config: LivenessConfig = DEFAULT_LIVENESS, *, stop_at_evidence: bool = False,
        presentation: PresentationConfig | None = DEFAULT_PRESENTATION, explain: bool = False,
    ) -> None:
        self.config = config
        self.stop_at_evidence = stop_at_evidence
        self._seek_blink = True
        self._frames = 0
        self._blinks = 0
        self._parallax_frames = 0
        self._blink = BlinkSignal(config)
        self._parallax = ParallaxSignal(config)
        self._identity = IdentitySignal(config)
        self._static = StaticReplaySignal(config)
        self._presentation = PresentationAttackSignal(presentation) if presentation is not None else None
        self.explanation = Explanation()
        self.trace: list[dict] | None = [] if explain else None
        self._last_centre: np.ndarray | None = None

    def update(
        self, image: np.ndarray, analysis: FrameAnalysis, timestamp: float | None = None, *,
        gray: np.ndarray | None = None, continued: bool = False,
    ) -> LivenessState:
        """Take one frame (the image and its ``analyze`` result) and return the new state.

        ``timestamp`` is in seconds; without it frames are taken to come at 10 per second.
        ``gray`` is the image in grey when the caller has it already; ``continued`` says the
        face is the previous frame's (``FaceTracker``'s ``TrackedFrame.continued``), which
        spaces identity checks out while it holds (``identity_followed_seconds``)."""
        self._frames += 1
        now = timestamp if timestamp is not None else self._frames / self.config.default_fps
        embedding, too_small = None, False
        face, marks = analysis.face, analysis.landmarks
        record: dict = {"frame": self._frames, "time": now, "face": face is not None}
        self._blink.last = NOTHING
        self._parallax.last_residual = None
        if face is None or marks is None:
            self._lose_face()
            self.explanation.count("no_face")
        elif self._failure is None:
            self._static.update(image, face.box)
            embedding = self._identity.update(image, face, now, continued)
            distance = eye_distance(marks.points)
            too_small = distance < self.config.min_eye_distance
            if self.trace is not None:
                self._trace_face(record, marks.points, distance, embedding is not None)
            cut = "partially_visible" in analysis.quality.codes
            if too_small or (cut and not eyes_in_view(marks.points, image.shape, distance)):
                # Landmarks of a face this small, or cut by the frame near the eyes, are
                # guesses: no evidence.
                self._blink.reset()
                self._parallax.reset()
                self.explanation.count("too_small" if too_small else "partially_visible")
            else:
                # A face cut at the forehead or chin (a phone brought close) keeps its eyes
                # and nose in the picture: blinks are measured there, not parallax, whose
                # region reaches the face's outline.
                wants_blink, wants_parallax = self.measuring_blink, self.measuring_parallax and not cut
                if cut:
                    self._parallax.reset()
                if (wants_blink or wants_parallax) and gray is None:
                    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                if wants_blink:
                    eyes = eye_state(image, marks.points)
                    self._blinks += self._blink.update(eye_view(align_face(gray, marks.points), eyes, now))
                    record["openings"] = eyes.opening
                    self.explanation.blink_event(self._blink.last.event)
                if wants_parallax:
                    self._parallax_frames += self._parallax.update(gray, marks.points, distance)
                if self._presentation is not None and not cut:
                    self._presentation.update(image, face, analysis.quality.metrics, now)
        state = self._state(analysis, embedding, too_small)
        if self.trace is not None:
            self.trace.append(self._traced(record, state))
        return state

    def is_same_person(self, embedding: np.ndarray) -> bool:
        """Whether ``embedding`` (of this session's face) is of the person its identity checks
        have seen: samples embedded between two checks are held to it."""
        return self._identity.matches(embedding)

    @property
    def seek_blink(self) -> bool:
        """Whether a blink is sought at all (default True). The active mode seeks one only
        while its blink challenge is next, so the eye model runs on those frames alone."""
        return self._seek_blink

    @seek_blink.setter
    def seek_blink(self, value: bool) -> None:
        if value and not self._seek_blink:
            self._blink.reset()  # the frames before were not watched: start from open eyes
        self._seek_blink = value

    @property
    def parallax_window_frames(self) -> int:
        """Frames a set of tracked points is followed (the config's by default). The active
        mode shortens it: a prompted turn is large and quick, and must register within the
        challenge's window."""
        return self._parallax.window_frames

    @parallax_window_frames.setter
    def parallax_window_frames(self, frames: int) -> None:
        if frames < 2:
            raise ValueError("a parallax window needs at least 2 frames")
        self._parallax.window_frames = frames
        self._parallax.reset()

    @property
    def measuring_blink(self) -> bool:
        """Whether the blink signal (and its eye model) still takes frames: while a blink is
        sought, and with ``stop_at_evidence`` only until the first one is in."""
        return self.seek_blink and not (self.stop_at_evidence and self._blinks > 0)

    @property
    def measuring_parallax(self) -> bool:
        """Whether the parallax signal still takes frames (always, unless ``stop_at_evidence``
        and head movement is in)."""
        return not (self.stop_at_evidence and self._parallax_frames >= self.config.parallax_frames)

    @property
    def needs_detection(self) -> bool:
        """Whether the next frame's landmarks should come from the detector rather than from
        a face followed between detections (``FaceTracker``):

        - while a blink is sought and parallax is measured, every frame (the eye model's crops
          placed by followed landmarks missed 9 more of the 408 blinks of bench/blink_bench.py's
          live variations);
        - while only parallax is measured, the frame that starts a window (its landmarks place
          the tracked region: on nearly frontal heads, liveportrait_d0 with exactly the 2
          frames needed, a region placed a pixel off the detector's flipped the verdict); the
          window's other frames give only their picture, so following them changes nothing;
        - while a blink is sought and the eyes are below their open level (a blink may be
          under way: a followed face gets the eye ratios a little off the detector's, and
          blinks near the thresholds were missed, liveportrait_d3 recompressed and _d19 at low
          resolution)."""
        return (self.measuring_parallax and (self._parallax.starting or self.measuring_blink)) or (
            self.measuring_blink and not self._blink.eyes_open
        )

    @property
    def _failure(self) -> str | None:
        if self._identity.changed:
            return "face_changed"
        if self._static.detected:
            return "static_image"
        if self._presentation is not None and self._presentation.verdict == ATTACK:
            return "presentation_attack"
        return None

    @property
    def last_blink_began(self) -> float | None:
        """When the closure of the last counted blink began (its first closed frame's time)."""
        return self._blink.last_blink_began

    @property
    def presentation_verdict(self) -> str:
        """The anti-spoofing signal's verdict (``live`` when the signal is off)."""
        return self._presentation.verdict if self._presentation is not None else LIVE

    def _lose_face(self) -> None:
        self._last_centre = None
        self._identity.face_lost()
        self._blink.reset()
        self._parallax.reset()

    def _state(self, analysis: FrameAnalysis, embedding: np.ndarray | None, too_small: bool) -> LivenessState:
        head_motion = self._parallax_frames >= self.config.parallax_frames
        missing = [
            name
            for name, seen in (("blink", self._blinks > 0), ("head_movement", head_motion))
            if not seen
        ]
        failure = self._failure
        if failure == "face_changed":
            hint = HINT_SAME_PERSON
        elif failure == "static_image":
            hint = HINT_STATIC
        elif failure == "presentation_attack":
            hint = HINT_PRESENTATION
        elif analysis.face is None:
            hint = HINT_FACE
        elif too_small:
            hint = HINT_CLOSER
        elif "blink" in missing:
            hint = HINT_BLINK
        elif missing:
            hint = HINT_MOVE
        elif self.presentation_verdict not in (LIVE, UNJUDGEABLE):
            # Waiting for the anti-spoofing verdict: why frames are skipped, if they are.
            hint = self._presentation.hint or HINT_CHECKING
        else:
            hint = None
        return LivenessState(
            frames=self._frames,
            blinks=self._blinks,
            head_motion=head_motion,
            same_person=failure != "face_changed",
            missing=missing,
            failure=failure,
            hint=hint,
            embedding=embedding,
            parallax_frames=self._parallax_frames,
            too_small=too_small,
            presentation=self.presentation_verdict,
        )

    def _trace_face(self, record: dict, points: np.ndarray, distance: float, checked: bool) -> None:
        """The trace's measures of a found face: its movement in the picture since the last
        frame (camera or head, against the aligned frame's head_shift: what a hand-held camera
        moves and what it does not), its size, and the identity check made on it, if any."""
        centre = points[36:48].mean(axis=0)
        if self._last_centre is not None:
            record["image_motion"] = float(np.linalg.norm(centre - self._last_centre)) / distance
        self._last_centre = centre
        record.update(eye_distance=distance, identity=self._identity.last_similarity if checked else None)

    def _traced(self, record: dict, state: LivenessState) -> dict:
        """One frame of the trace: what each signal measured and decided."""
        blink = self._blink.last
        record.update(
            blink_ratios=blink.ratios, eye_changes=blink.changes, head_shift=blink.head_shift,
            blink_event=blink.event, blink_rise=blink.rise, blink_needed=blink.needed,
            parallax_residual=self._parallax.last_residual,
            blinks=state.blinks,
            parallax_frames=state.parallax_frames, presentation=state.presentation,
            presentation_score=self._presentation.score if self._presentation is not None else None,
            failure=state.failure, too_small=state.too_small,
        )
        return record
