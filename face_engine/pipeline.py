"""The per-frame tracking path: detect (or follow) the face, landmarks and quality in one call.

``analyze`` looks at one image on its own. ``FaceTracker`` follows one video stream and does
less work per frame: it runs the detector on the first frame, after a loss, whenever the
track is unsure (fast motion, changed appearance, closing eyes, a turning head) and every
``REDETECT_EVERY`` frames, and in between follows the face from the previous frame's
landmarks (a landmark fit costs about 40% of a detection). It decodes at half size when the
face is so large that nothing it measures changes."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from face_engine.decode import DEFAULT_FORMATS, DecodeLimits, decode
from face_engine.detect import TRACKING_MAX_SIDE, detect, landmarks
from face_engine.quality import DEFAULT_QUALITY, QualityConfig, quality
from face_engine.types import Box, Face, FrameAnalysis, Landmarks


def analyze(image: np.ndarray, *, config: QualityConfig = DEFAULT_QUALITY) -> FrameAnalysis:
    """Detect faces in a video frame, then landmarks and a quality verdict for the largest.

    Detection runs at tracking resolution (256 px a side), which suits webcam frames where
    the face is large; use ``detect`` for photos with small faces."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return _detected(image, gray, config)


def _detected(image: np.ndarray, gray: np.ndarray, config: QualityConfig) -> FrameAnalysis:
    faces = detect(image, max_side=TRACKING_MAX_SIDE)
    face = faces[0] if faces else None
    marks = landmarks(image, face, gray=gray) if face is not None else None
    return _analysis(image, gray, faces, marks, config)


def _analysis(
    image: np.ndarray, gray: np.ndarray, faces: list[Face], marks: Landmarks | None,
    config: QualityConfig,
) -> FrameAnalysis:
    return FrameAnalysis(
        image_size=(image.shape[1], image.shape[0]),
        faces=faces,
        face=faces[0] if faces else None,
        landmarks=marks,
        quality=quality(image, faces, marks, config=config, gray=gray),
    )


# A new face entering the picture is seen within this many frames (half a second at 10 fps).
REDETECT_EVERY = 5
# Following is trusted while, between two frames, the landmarks move less than this share of
# the face width, change scale by less than this, and the face's appearance stays this
# correlated (a face leaving the picture leaves landmarks fitted to background, which fails it).
MAX_TRACK_SHIFT = 0.2
MAX_TRACK_SCALE_CHANGE = 0.15
MIN_TRACK_CORRELATION = 0.8
# Liveness evidence comes from closing eyes and a turning head: a frame whose eye aspect
# ratio fell by this share, or whose yaw or pitch moved by these degrees (the liveness
# tracker's own minimum head turn), since the last detection is detected again, so the
# landmarks that count for blinks and 3D movement are fitted on the detector's box as when
# every frame is detected. Measured on the 11 single-person clips of ../shared/faces: the
# same live verdicts as detecting every frame, with the detector on 37% of the frames
# (tighter triggers detect more; looser ones, 0.25 and 8 degrees, changed blink counts).
MAX_TRACK_EAR_DROP = 0.2
MAX_TRACK_POSE_CHANGE = 6.0
# Faces with these issues are detected on every frame: not one clear, whole face to follow.
_UNTRACKABLE = frozenset({"no_face", "multiple_faces", "partially_visible", "too_small"})
# Half-size decoding starts when the face is at least this wide in the frame. At the usual
# 200-260 px of a 640x480 webcam frame it would change the measures (the sharpness of the
# face patch fell to 0.37-0.78x, eye aspect ratios moved by 0.013), so it is kept for faces
# that stay at 256 px or more at half size: twice the 128 px quality patch and SFace's 112.
REDUCED_DECODE_MIN_FACE = 512
_PATCH_SIZE = (24, 24)


@dataclass(frozen=True)
class TrackedFrame:
    """One frame of a stream. ``analysis`` is in the pixels of ``image`` (what liveness and
    embeddings take; ``gray`` is it in grey); ``scale`` is frame pixels per image pixel (2 when
    decoded at half size); ``frame_analysis`` is the same analysis in the pixels of the frame
    as sent. ``continued``: the face is the previous frame's, followed or detected where it
    was (landmarks moved and scaled within the following limits, appearance as correlated)."""

    image: np.ndarray
    gray: np.ndarray
    analysis: FrameAnalysis
    scale: int
    detected: bool
    continued: bool

    @property
    def frame_analysis(self) -> FrameAnalysis:
        return _rescaled(self.analysis, self.scale)


@dataclass
class _Track:
    """The followed face, in frame pixels, and its calibration from the last detection:
    box and key points relative to the landmarks' centroid, in units of their spread."""

    face: Face
    points: np.ndarray
    patch: np.ndarray
    box_offset: np.ndarray  # box centre - landmark centroid
    box_size: np.ndarray  # box width, height
    keypoint_offsets: np.ndarray  # YuNet key points - the same points from the landmarks
    detected_marks: Landmarks  # at the last detection
    frames_since_detection: int = 0


class FaceTracker:
    """Analyses the frames of one stream in order. Not thread-safe: one per session.

    ``watch_liveness`` re-detects a followed face whose eyes closed or head turned since the
    last detection (MAX_TRACK_EAR_DROP, MAX_TRACK_POSE_CHANGE), so that blinks and head
    movement are measured on the detector's landmarks. A caller that asks for detection
    itself whenever its liveness tracker needs it (``analyze(follow=False)`` while
    ``LivenessTracker.needs_detection``, as the service does) turns it off: the check fits
    the landmarks twice on every frame it rejects."""

    def __init__(
        self, *, config: QualityConfig = DEFAULT_QUALITY, redetect_every: int = REDETECT_EVERY,
        watch_liveness: bool = True,
    ) -> None:
        self.config = config
        self.redetect_every = redetect_every
        self.watch_liveness = watch_liveness
        self._track: _Track | None = None
        self.detections = 0
        self.frames = 0

    def decode(
        self, data: bytes | str, *, limits: DecodeLimits | None = None,
        formats: tuple[str, ...] = DEFAULT_FORMATS, follow: bool = True,
    ) -> TrackedFrame:
        """Decode one frame (ImageError as ``face_engine.decode``; ``formats`` as there) and
        analyse it (``follow`` as ``analyze``)."""
        track = self._track
        scale = 2 if track is not None and track.face.box.width >= REDUCED_DECODE_MIN_FACE else 1
        image = decode(data, limits=limits or DecodeLimits(), reduce=scale, formats=formats)
        return self.analyze(image, scale=scale, follow=follow)

    def analyze(self, image: np.ndarray, *, scale: int = 1, follow: bool = True) -> TrackedFrame:
        """Analyse the next frame, already decoded at 1/``scale`` of the frame's size. With
        ``follow`` False the frame is detected whatever the track's state (the caller needs
        the detector's landmarks on it)."""
        self.frames += 1
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        config = self.config
        if scale != 1:
            config = dataclasses.replace(config, min_face_px=math.ceil(config.min_face_px / scale))
        followed = self._followed(image, gray, scale, config) if follow else None
        detected = followed is None
        if followed is None:
            self.detections += 1
            analysis, patch = _detected(image, gray, config), None
        else:
            analysis, patch = followed
        previous = self._track
        self._remember(analysis, gray, scale, detected, patch)
        track = self._track
        continued = track is not None and previous is not None and (
            not detected or (
                not _moved_too_far(previous.points, track.points, previous.face.box.width)
                and _correlation(track.patch, previous.patch) >= MIN_TRACK_CORRELATION
            )
        )
        return TrackedFrame(image, gray, analysis, scale, detected, continued)

    def _followed(
        self, image: np.ndarray, gray: np.ndarray, scale: int, config: QualityConfig
    ) -> tuple[FrameAnalysis, np.ndarray] | None:
        """The frame analysed by following the track, with the face's appearance patch, or
        None when it must be detected."""
        track = self._track
        if track is None or track.frames_since_detection + 1 >= self.redetect_every:
            return None
        previous = _scaled_face(track.face, 1 / scale)
        marks = landmarks(image, previous, gray=gray)
        points = marks.points * scale
        if _moved_too_far(track.points, points, track.face.box.width):
            return None
        centroid, spread = _centroid_spread(points)
        detected = track.detected_marks
        if self.watch_liveness and (
            marks.ear < (1 - MAX_TRACK_EAR_DROP) * detected.ear
            or abs(marks.pose.yaw - detected.pose.yaw) > MAX_TRACK_POSE_CHANGE
            or abs(marks.pose.pitch - detected.pose.pitch) > MAX_TRACK_POSE_CHANGE
        ):
            return None
        centre = centroid + track.box_offset * spread
        width, height = track.box_size * spread
        box = Box(round(centre[0] - width / 2), round(centre[1] - height / 2), round(width), round(height))
        keypoints = (_five_points(points) + track.keypoint_offsets * spread).astype(np.float32)
        face = _scaled_face(Face(box, track.face.score, keypoints), 1 / scale)
        patch = _patch(gray, face.box)
        if _correlation(patch, track.patch) < MIN_TRACK_CORRELATION:
            return None
        analysis = _analysis(image, gray, [face], marks, config)
        # A face at the edge of the picture, too small or gone is the detector's call: a box
        # and key points carried over from the landmarks can put it a few pixels off, which
        # for "partially visible" dropped a blink in progress (camera shake, liveportrait_d3).
        if _UNTRACKABLE & set(analysis.quality.codes):
            return None
        return analysis, patch

    def _remember(
        self, analysis: FrameAnalysis, gray: np.ndarray, scale: int, detected: bool,
        patch: np.ndarray | None,
    ) -> None:
        """Keeps the frame's face as the track (``patch``: its appearance, when already taken)."""
        face, marks = analysis.face, analysis.landmarks
        if face is None or marks is None or _UNTRACKABLE & set(analysis.quality.codes):
            self._track = None
            return
        if patch is None:
            patch = _patch(gray, face.box)
        face = _scaled_face(face, scale)
        points = marks.points * scale
        if detected or self._track is None:
            centroid, spread = _centroid_spread(points)
            box = face.box
            self._track = _Track(
                face=face,
                points=points,
                patch=patch,
                box_offset=(np.array([box.x + box.width / 2, box.y + box.height / 2]) - centroid) / spread,
                box_size=np.array([box.width, box.height]) / spread,
                keypoint_offsets=(face.keypoints - _five_points(points)) / spread,
                detected_marks=marks,
            )
            return
        self._track.face, self._track.points, self._track.patch = face, points, patch
        self._track.frames_since_detection += 1


def _moved_too_far(old_points: np.ndarray, points: np.ndarray, face_width: float) -> bool:
    """Whether landmarks moved or scaled more between two frames than following allows."""
    old_centroid, old_spread = _centroid_spread(old_points)
    centroid, spread = _centroid_spread(points)
    shift = float(np.linalg.norm(centroid - old_centroid)) / face_width
    return shift > MAX_TRACK_SHIFT or abs(spread / old_spread - 1) > MAX_TRACK_SCALE_CHANGE


def _centroid_spread(points: np.ndarray) -> tuple[np.ndarray, float]:
    centroid = points.mean(axis=0)
    return centroid, float(np.sqrt(((points - centroid) ** 2).sum(axis=1).mean())) or 1.0


def _five_points(points: np.ndarray) -> np.ndarray:
    """YuNet's key points (right eye, left eye, nose tip, right and left mouth corner of the
    subject) as the 68 landmarks place them."""
    return np.array(
        [points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[30], points[48], points[54]]
    )


def _patch(gray: np.ndarray, box: Box) -> np.ndarray:
    """The face's appearance: its box in gray, small, zero mean and unit norm."""
    crop = gray[max(box.y, 0):max(box.y + box.height, 0), max(box.x, 0):max(box.x + box.width, 0)]
    if crop.size == 0:
        return np.zeros(_PATCH_SIZE[0] * _PATCH_SIZE[1], np.float32)
    patch = cv2.resize(crop, _PATCH_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    patch -= patch.mean()
    norm = float(np.linalg.norm(patch))
    return patch / norm if norm > 0 else patch


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def _scaled_face(face: Face, factor: float) -> Face:
    if factor == 1:
        return face
    box = face.box
    return Face(
        Box(round(box.x * factor), round(box.y * factor), max(1, round(box.width * factor)),
            max(1, round(box.height * factor))),
        face.score,
        (face.keypoints * factor).astype(np.float32),
    )


def _rescaled(analysis: FrameAnalysis, factor: int) -> FrameAnalysis:
    """``analysis`` in pixels ``factor`` times larger (pose, eye ratios and quality keep)."""
    if factor == 1:
        return analysis
    faces = [_scaled_face(face, factor) for face in analysis.faces]
    marks = analysis.landmarks
    if marks is not None:
        marks = dataclasses.replace(marks, points=marks.points * factor)
    width, height = analysis.image_size
    return dataclasses.replace(
        analysis, image_size=(width * factor, height * factor), faces=faces,
        face=faces[0] if faces else None, landmarks=marks,
    )
