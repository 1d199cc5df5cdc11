"""FaceAuth's face engine: a small, Django-free API over numpy images.

    import face_engine as fe
    image = fe.decode(jpeg_bytes)                 # BGR uint8 (H, W, 3)
    faces = fe.detect(image)                      # largest first
    marks = fe.landmarks(image, faces[0])         # 68 points, eye openness, head pose
    verdict = fe.quality(image, faces, marks)     # ok + issues with hints
    vector = fe.embed(image, faces[0])            # (128,) unit vector
    fe.match(vector, gallery)                     # best row, similarity, is_match

For video, ``fe.analyze`` runs the per-frame path and ``fe.LivenessTracker`` follows a
session frame by frame (``fe.ChallengeTracker`` adds the active mode's challenges).
Models load on first use (``fe.load_models()`` to warm up)."""

from face_engine.challenge import ActiveLivenessState, ChallengeConfig, ChallengeTracker, draw_challenges
from face_engine.decode import DecodeLimits, decode
from face_engine.detect import detect, head_pose, landmarks
from face_engine.embed import DEFAULT_THRESHOLD, EMBEDDING_SIZE, embed, match, similarity
from face_engine.errors import FaceEngineError, ImageError, ModelError, NoFaceError
from face_engine.liveness import LivenessTracker
from face_engine.models import load_models
from face_engine.pipeline import REDETECT_EVERY, FaceTracker, TrackedFrame, analyze
from face_engine.quality import HINTS, QualityConfig, quality
from face_engine.types import (
    Box,
    Face,
    FrameAnalysis,
    Landmarks,
    LivenessConfig,
    LivenessState,
    Match,
    Pose,
    Quality,
    QualityIssue,
)

__all__ = [
    "ActiveLivenessState",
    "ChallengeConfig",
    "ChallengeTracker",
    "DEFAULT_THRESHOLD",
    "EMBEDDING_SIZE",
    "HINTS",
    "Box",
    "DecodeLimits",
    "Face",
    "FaceEngineError",
    "FaceTracker",
    "FrameAnalysis",
    "ImageError",
    "Landmarks",
    "LivenessConfig",
    "LivenessState",
    "LivenessTracker",
    "Match",
    "ModelError",
    "NoFaceError",
    "Pose",
    "Quality",
    "QualityConfig",
    "QualityIssue",
    "REDETECT_EVERY",
    "TrackedFrame",
    "analyze",
    "decode",
    "detect",
    "draw_challenges",
    "embed",
    "head_pose",
    "landmarks",
    "load_models",
    "match",
    "quality",
    "similarity",
]
