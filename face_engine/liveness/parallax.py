"""Head movement as parallax: after the best plane-to-plane mapping (homography) of the face
region between two views, a 3D head leaves residual motion and a flat picture does not.

Any view of a flat object (a photo held, shaken, tilted or seen at low resolution) is related
to any other by a homography, so tracked points on it fit one to within tracking noise. On a
head that turns, the nose moves against the cheeks and the face outline: no homography fits.
The points are many (corners found in the face, tracked by pyramidal Lucas-Kanade optical
flow with a forward-backward check), not the 68 landmarks, whose noise on small or resampled
faces looks like 3D movement. Eyes and mouth are left out: they move on their own."""

from __future__ import annotations

import cv2
import numpy as np

from face_engine.types import LivenessConfig

_WORK_EYE_DISTANCE = 40.0  # the face crop is scaled so its eye distance is at most this
_REGION_GROWTH = 1.6  # the tracked region: the landmarks' extent grown by this, so points stay inside
_NEIGHBOURS = 6  # residuals are averaged over each point's nearest neighbours (see planar_residual)
_LK = {"winSize": (15, 15), "maxLevel": 2,
       "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
_OUTLINE = list(range(0, 17)) + list(range(26, 16, -1))  # jaw, then the brows back
# RANSAC's iterations at most (OpenCV's default is 2000). A flat picture's points fit one
# homography, so RANSAC stops after a few dozen; only a turning head's, with many points off
# any plane, ran to the limit, at up to 1 ms a frame. Measured on 33,000 frames of live
# variations and attacks generated from ../shared/faces: not one frame's residual crossed
# min_parallax either way at 400 (at 200, 17 live and 4 attack frames did).
_RANSAC_ITERATIONS = 400


class ParallaxSignal:
    """Tracks points of the face over a short window (``window_frames``, by default the
    config's ``parallax_window_frames``) and measures how far the last view is from a
    homography of the first."""

    def __init__(self, config: LivenessConfig) -> None:
        self.config = config
        self._key_points: np.ndarray | None = None
        self._points: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._region: tuple[int, int, int, int, float] | None = None  # x, y, w, h, scale
        self._key_eye_distance = 1.0  # the window's first frame's, which scales its residuals
        self.window_frames = config.parallax_window_frames
        self._steps = 0
        self.last_residual: float | None = None  # the last frame's residual, None when not measured

    def reset(self) -> None:
        self._key_points = None

    @property
    def starting(self) -> bool:
        """Whether the next frame starts a window (its landmarks place the tracked region). A
        window also restarts early when too few tracked points survive, which cannot be told
        before the frame is tracked: that restart takes the frame's landmarks as they come."""
        return self._key_points is None or self._steps + 1 >= self.window_frames

    def update(self, gray: np.ndarray, points: np.ndarray, eye_distance: float) -> bool:
        """Take a frame (grey image, its 68 landmarks, eye distance in pixels); True when the
        face region has moved in 3D since the window's first frame."""
        self.last_residual = None
        if self._key_points is None or self._region is None or self._previous is None:
            self._start(gray, points, eye_distance)
            return False
        current = self._crop(gray, self._region)
        tracked, ok = _track(self._previous, current, self._points)
        self._key_points, self._points = self._key_points[ok], tracked[ok]
        self._previous = current
        self._steps += 1
        config = self.config
        moved = False
        if len(self._points) >= config.parallax_min_points:
            # Scaled by the first frame's eye distance (the points are in its crop): the frames
            # inside a window may be followed, and their landmarks then play no part.
            self.last_residual = planar_residual(self._key_points, self._points) / (
                self._key_eye_distance * self._region[4]
            )
            moved = self.last_residual >= config.min_parallax
        if self._steps >= self.window_frames or len(self._points) < config.parallax_min_points:
            self._start(gray, points, eye_distance)
        return moved

    def _start(self, gray: np.ndarray, points: np.ndarray, eye_distance: float) -> None:
        centre = points.mean(axis=0)
        grown = centre + (points - centre) * _REGION_GROWTH
        x0, y0 = np.floor(grown.min(axis=0)).astype(int)
        x1, y1 = np.ceil(grown.max(axis=0)).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, gray.shape[1]), min(y1, gray.shape[0])
        self._key_points = None
        if x1 - x0 < 8 or y1 - y0 < 8:
            return
        scale = min(1.0, _WORK_EYE_DISTANCE / max(eye_distance, 1.0))
        self._region = (int(x0), int(y0), int(x1 - x0), int(y1 - y0), scale)
        crop = self._crop(gray, self._region)
        local = (points - (x0, y0)) * scale
        mask = np.zeros(crop.shape, np.uint8)
        cv2.fillPoly(mask, [np.round(local[_OUTLINE]).astype(np.int32)], 255)
        for part in (slice(36, 42), slice(42, 48), slice(48, 68)):
            cv2.fillPoly(mask, [cv2.convexHull(np.round(local[part]).astype(np.int32))], 0)
        # Keep clear of the outline and the eyes/mouth: points on an edge slide along it.
        mask = cv2.erode(mask, np.ones((5, 5), np.uint8))
        # Many weak corners rather than a few strong ones: skin has little texture, and the
        # residual statistic needs enough points to average tracking noise away.
        found = cv2.goodFeaturesToTrack(crop, maxCorners=150, qualityLevel=0.005, minDistance=2, mask=mask)
        if found is None or len(found) < self.config.parallax_min_points:
            return
        self._key_points = found.reshape(-1, 2)
        self._key_eye_distance = eye_distance
        self._points = self._key_points.copy()
        self._previous = crop
        self._steps = 0

    @staticmethod
    def _crop(gray: np.ndarray, region: tuple[int, int, int, int, float]) -> np.ndarray:
        x, y, width, height, scale = region
        crop = gray[y:y + height, x:x + width]
        if scale < 1.0:
            crop = cv2.resize(crop, (max(1, round(width * scale)), max(1, round(height * scale))),
                              interpolation=cv2.INTER_AREA)
        # Divided by its local mean: a brightness flicker or exposure change scales both, so
        # the tracked pattern stays the same (a global normalisation would change as the face
        # moves within the region and look like motion; measured on the flicker and jitter attacks).
        # A light blur after that: a hand-held picture's focus and motion blur change from
        # frame to frame, which biases the tracking of fine texture (jitter attacks).
        crop = crop.astype(np.float32) + 8.0
        normalised = cv2.convertScaleAbs(crop / cv2.GaussianBlur(crop, (0, 0), 6.0), alpha=128.0)
        return cv2.GaussianBlur(normalised, (0, 0), 1.0)


def _track(previous: np.ndarray, current: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points tracked from ``previous`` to ``current`` and which of them are trustworthy
    (found both ways, coming back to within 0.5 px)."""
    if current.shape != previous.shape:
        return points, np.zeros(len(points), bool)
    start = points.reshape(-1, 1, 2).astype(np.float32)
    forward, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, start, None, **_LK)
    back, status_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, forward, None, **_LK)
    error = np.linalg.norm((back - start).reshape(-1, 2), axis=1)
    ok = (status.ravel() == 1) & (status_back.ravel() == 1) & (error < 0.5)
    return forward.reshape(-1, 2), ok


def planar_residual(reference: np.ndarray, points: np.ndarray) -> float:
    """How far ``points`` are from the best homography image of ``reference`` (RANSAC fit),
    in the points' pixels: the 80th percentile of the residual vectors, each averaged with
    its nearest neighbours'. Parallax is spatially coherent (the whole nose moves against
    the cheeks) and survives the averaging; tracking noise is not and shrinks."""
    homography, _ = cv2.findHomography(reference, points, cv2.RANSAC, 1.0, maxIters=_RANSAC_ITERATIONS)
    if homography is None:
        return 0.0
    mapped = cv2.perspectiveTransform(reference.reshape(-1, 1, 2).astype(np.float64), homography)
    residual = points - mapped.reshape(-1, 2)
    # Squared distances, axis by axis: the same order as np.linalg.norm over a (n, n, 2)
    # array at a tenth of its cost (0.03 against 0.4 ms for 130 points). The nearest are
    # partitioned off, not sorted: their mean does not depend on their order.
    dx = reference[:, 0, None] - reference[None, :, 0]
    dy = reference[:, 1, None] - reference[None, :, 1]
    nearest = min(_NEIGHBOURS, len(reference)) - 1
    neighbours = np.argpartition(dx * dx + dy * dy, nearest, axis=1)[:, :nearest + 1]
    coherent = residual[neighbours].mean(axis=1)
    return float(np.percentile(np.linalg.norm(coherent, axis=1), 80))
