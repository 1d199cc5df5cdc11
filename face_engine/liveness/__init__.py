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
Faces too small to resolve (eye distance under ``min_eye_distance``) give the hint "move
closer" and no evidence. Not covered: a live person replayed on a good screen, a 3D mask, a
real-time deepfake fed to a virtual camera: each has real blinks and real 3D movement."""

from __future__ import annotations

import cv2
import numpy as np

from face_engine.liveness.blink import BlinkSignal, eye_view
from face_engine.liveness.face_frame import align_face, eye_distance
from face_engine.liveness.identity import IdentitySignal
from face_engine.liveness.parallax import ParallaxSignal, planar_residual
from face_engine.liveness.replay import StaticReplaySignal
from face_engine.types import DEFAULT_LIVENESS, FrameAnalysis, LivenessConfig, LivenessState

HINT_BLINK = "blink naturally"
HINT_MOVE = "turn your head slightly"
HINT_FACE = "keep your face in view"
HINT_CLOSER = "move closer"
HINT_SAME_PERSON = "the person changed: start again"
HINT_STATIC = "a still image was detected: use a live camera"

__all__ = ["LivenessConfig", "LivenessTracker", "planar_residual"]


class LivenessTracker:
    """Feed it every analyzed frame of one session, in order; read the returned state.

    With ``stop_at_evidence`` a signal is no longer measured once it has given what the
    passive verdict needs (a blink; head movement on ``parallax_frames`` frames): counts only
    grow, so the verdict is the same on every frame, and a session waiting for a blink does
    not track points for parallax meanwhile. The service runs passive sessions this way;
    the active mode (``ChallengeTracker``) and tools that count every blink leave it off."""

    def __init__(self, config: LivenessConfig = DEFAULT_LIVENESS, *, stop_at_evidence: bool = False) -> None:
        self.config = config
        self.stop_at_evidence = stop_at_evidence
        self._frames = 0
        self._blinks = 0
        self._parallax_frames = 0
        self._blink = BlinkSignal(config)
        self._parallax = ParallaxSignal(config)
        self._identity = IdentitySignal(config)
        self._static = StaticReplaySignal(config)

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
        if face is None or marks is None:
            self._lose_face()
        elif self._failure is None:
            self._static.update(image, face.box)
            embedding = self._identity.update(image, face, now, continued)
            distance = eye_distance(marks.points)
            too_small = distance < self.config.min_eye_distance
            if too_small or "partially_visible" in analysis.quality.codes:
                # Landmarks of a face this small, or cut by the frame, are guesses: no evidence.
                self._blink.reset()
                self._parallax.reset()
            else:
                wants_blink, wants_parallax = self.measuring_blink, self.measuring_parallax
                if (wants_blink or wants_parallax) and gray is None:
                    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                if wants_blink:
                    self._blinks += self._blink.update(eye_view(align_face(gray, marks.points), marks, now))
                if wants_parallax:
                    self._parallax_frames += self._parallax.update(gray, marks.points, distance)
        return self._state(analysis, embedding, too_small)

    def is_same_person(self, embedding: np.ndarray) -> bool:
        """Whether ``embedding`` (of this session's face) is of the person its identity checks
        have seen: samples embedded between two checks are held to it."""
        return self._identity.matches(embedding)

    @property
    def measuring_blink(self) -> bool:
        """Whether the blink signal still takes frames (always, unless ``stop_at_evidence``
        and a blink is in)."""
        return not (self.stop_at_evidence and self._blinks > 0)

    @property
    def measuring_parallax(self) -> bool:
        """Whether the parallax signal still takes frames (always, unless ``stop_at_evidence``
        and head movement is in)."""
        return not (self.stop_at_evidence and self._parallax_frames >= self.config.parallax_frames)

    @property
    def needs_detection(self) -> bool:
        """Whether the next frame's landmarks should come from the detector rather than from
        a face followed between detections (``FaceTracker``): while parallax is measured (its
        region and eye distance come from the landmarks, and on nearly frontal heads,
        liveportrait_d0 with exactly the 2 frames needed, a followed face a pixel off the
        detector's flipped the verdict), and while the eyes are below their open level (a
        blink may be starting or under way: a followed face gets the eye ratios a little
        off the detector's, and blinks near the thresholds were missed, liveportrait_d3
        recompressed and _d19 at low resolution)."""
        return self.measuring_parallax or (self.measuring_blink and not self._blink.eyes_open)

    @property
    def _failure(self) -> str | None:
        if self._identity.changed:
            return "face_changed"
        if self._static.detected:
            return "static_image"
        return None

    def _lose_face(self) -> None:
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
        elif analysis.face is None:
            hint = HINT_FACE
        elif too_small:
            hint = HINT_CLOSER
        elif "blink" in missing:
            hint = HINT_BLINK
        elif missing:
            hint = HINT_MOVE
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
        )
