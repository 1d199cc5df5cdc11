"""The parallax residual on synthetic points: a flat picture's points fit a homography whatever
the view, a 3D head's do not, and the residual measures how far they are from one."""

import cv2
import numpy as np

from face_engine.liveness import planar_residual


def _face_points(count: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points over a face-sized region (work scale: about 40 px between the eyes) and the
    height of each over the plane of the cheeks: a bump where the nose is."""
    rng = np.random.default_rng(seed)
    points = rng.uniform((20, 20), (140, 160), size=(count, 2)).astype(np.float32)
    nose = np.array([80.0, 95.0])
    height = 30.0 * np.exp(-np.sum((points - nose) ** 2, axis=1) / (2 * 25.0**2))
    return points, height


def test_a_flat_picture_fits_a_homography_whatever_the_view() -> None:
    points, _ = _face_points()
    # A tilt, a turn, a shift and a zoom: one homography.
    homography = np.array([[1.05, 0.08, 4.0], [-0.06, 0.97, -3.0], [0.0004, -0.0003, 1.0]])
    moved = cv2.perspectiveTransform(points.reshape(-1, 1, 2), homography).reshape(-1, 2)
    noise = np.random.default_rng(1).normal(0, 0.15, moved.shape).astype(np.float32)
    assert planar_residual(points, moved + noise) < 0.3


def test_a_turning_head_leaves_a_residual_that_grows_with_the_turn() -> None:
    points, height = _face_points()
    residuals = []
    for turn in (0.1, 0.2, 0.4):
        # A head turning about its vertical axis: points move sideways by their height over
        # the cheeks' plane (the nose against the cheeks), which no homography undoes.
        moved = points.copy()
        moved[:, 0] += turn * height
        residuals.append(planar_residual(points, moved))
    # Far above the flat picture's 0.3, and about in proportion to the turn.
    assert residuals[0] > 0.5 and residuals[0] < residuals[1] < residuals[2]
    assert residuals[2] > 3 * residuals[0]


def test_few_points_are_averaged_over_as_many_neighbours_as_there_are() -> None:
    points, height = _face_points(count=5)
    moved = points.copy()
    moved[:, 0] += 0.2 * height
    assert np.isfinite(planar_residual(points, moved))
