"""dlib's 68-point shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014),
read from dlib's own model file and run by code compiled with numba.

Why not dlib's Python binding: it holds the GIL for the whole fit (1.2-2.8 ms here), so two
engine threads of one worker fitting landmarks ran one after the other, and the event loop
waited behind them. This runs the same model with the GIL released. It computes what dlib
computes, step by step in the same arithmetic (float32 shapes and features, float64 for the
similarity and image transforms, coordinates rounded as dlib rounds them), so the points are
dlib's: tests/engine/test_runtime.py compares both on every face of the shared photos and
clip frames, at boxes moved around the engine's, and on random pictures and boxes.

The file is dlib's serialisation: integers in a variable-length form (a control byte whose
low nibble is the byte count and whose high bit is the sign, then the bytes little-endian),
floats as such an integer mantissa and exponent, vectors as their length then the items,
matrices as minus their row and column counts then the items."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

_FILE_VERSION = 1


def _jit(*, nogil: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """numba's compilation, cached on disk where numba finds a writable place (the package's
    __pycache__, the user's cache directory, or NUMBA_CACHE_DIR); where it finds none, numba
    refuses to cache, and the functions are compiled again at each start (a few seconds)."""

    def compiled(function: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, nogil=nogil)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(nogil=nogil)(function)

    return compiled


@_jit()
def _integer(data: np.ndarray, position: int) -> tuple[int, int]:
    if position >= data.shape[0]:
        raise ValueError("corrupt shape predictor file: truncated")
    control = data[position]
    size = control & 0x0F
    if size > 8 or position + 1 + size > data.shape[0]:
        raise ValueError("corrupt shape predictor file: bad integer")
    value = 0
    for index in range(size):
        value |= np.int64(data[position + 1 + index]) << (8 * index)
    if control & 0x80:
        value = -value
    return value, position + 1 + size


@_jit()
def _float(data: np.ndarray, position: int) -> tuple[np.float32, int]:
    mantissa, position = _integer(data, position)
    exponent, position = _integer(data, position)
    if exponent < -1100 or exponent > 1100:  # dlib's codes for infinities and NaN
        raise ValueError("corrupt shape predictor file: non-finite value")
    return np.float32(mantissa * 2.0 ** exponent), position


@_jit()
def _column(data: np.ndarray, position: int, length: int, into: np.ndarray) -> int:
    """Reads a matrix<float,0,1> of ``length`` rows into ``into``."""
    rows, position = _integer(data, position)
    columns, position = _integer(data, position)
    if rows != -length or columns != -1:
        raise ValueError("corrupt shape predictor file: unexpected matrix size")
    for index in range(length):
        into[index], position = _float(data, position)
    return position


@_jit()
def _expect(data: np.ndarray, position: int, value: int) -> int:
    found, position = _integer(data, position)
    if found != value:
        raise ValueError("corrupt shape predictor file: sizes differ between its parts")
    return position


@_jit()
def _parse(data: np.ndarray):  # noqa: ANN202 - numba returns a tuple of arrays
    """The model's arrays: initial shape, split indices and thresholds, leaf values per
    cascade and tree, and each cascade's feature pixels (anchor landmark and offset)."""
    position = 0
    version, position = _integer(data, position)
    if version != _FILE_VERSION:
        raise ValueError("not a dlib shape predictor file (unknown version)")
    length, position = _integer(data, position)
    length = -length
    position = _expect(data, position, -1)
    if length <= 0 or length % 2:
        raise ValueError("corrupt shape predictor file: bad initial shape")
    initial = np.empty(length, np.float32)
    for index in range(length):
        initial[index], position = _float(data, position)
    if (initial[0::2] == initial[0]).all() and (initial[1::2] == initial[1]).all():
        raise ValueError("corrupt shape predictor file: the initial shape is a single point")
    cascades, position = _integer(data, position)
    # The first tree's sizes fix the arrays; every other tree must match them.
    trees, after = _integer(data, position)
    splits, _ = _integer(data, after)
    leaves = splits + 1
    if cascades <= 0 or trees <= 0 or splits <= 0:
        raise ValueError("corrupt shape predictor file: empty forest")
    first = np.empty((cascades, trees, splits), np.int32)
    second = np.empty((cascades, trees, splits), np.int32)
    thresholds = np.empty((cascades, trees, splits), np.float32)
    values = np.empty((cascades, trees, leaves, length), np.float32)
    for cascade in range(cascades):
        position = _expect(data, position, trees)
        for tree in range(trees):
            position = _expect(data, position, splits)
            for split in range(splits):
                first[cascade, tree, split], position = _integer(data, position)
                second[cascade, tree, split], position = _integer(data, position)
                thresholds[cascade, tree, split], position = _float(data, position)
            position = _expect(data, position, leaves)
            for leaf in range(leaves):
                position = _column(data, position, length, values[cascade, tree, leaf])
    position = _expect(data, position, cascades)
    features, _ = _integer(data, position)
    anchors = np.empty((cascades, features), np.int32)
    for cascade in range(cascades):
        position = _expect(data, position, features)
        for feature in range(features):
            anchors[cascade, feature], position = _integer(data, position)
    position = _expect(data, position, cascades)
    deltas = np.empty((cascades, features, 2), np.float32)
    for cascade in range(cascades):
        position = _expect(data, position, features)
        for feature in range(features):
            deltas[cascade, feature, 0], position = _float(data, position)
            deltas[cascade, feature, 1], position = _float(data, position)
    if position != data.shape[0]:
        raise ValueError("corrupt shape predictor file: trailing bytes")
    if first.min() < 0 or second.min() < 0 or max(first.max(), second.max()) >= features:
        raise ValueError("corrupt shape predictor file: split on a missing feature")
    if anchors.min() < 0 or anchors.max() >= length // 2:
        raise ValueError("corrupt shape predictor file: anchor on a missing landmark")
    return initial, first, second, thresholds, values, anchors, deltas


@_jit()
def _image_pixel(value: float, scale: float, offset: float) -> int:
    """A coordinate of the unit square in the image, rounded to a whole pixel as dlib rounds
    (half up)."""
    return int(np.floor(scale * value + offset + 0.5))


@_jit()
def _mean_point(points: np.ndarray, parts: int) -> tuple[float, float]:
    """The mean of ``parts`` interleaved (x, y) float32 points, summed in float64 in order as
    dlib sums them."""
    mean_x = mean_y = 0.0
    for part in range(parts):
        mean_x += np.float64(points[2 * part])
        mean_y += np.float64(points[2 * part + 1])
    return mean_x / parts, mean_y / parts


@_jit(nogil=True)
def _fit(
    gray: np.ndarray, left: float, top: float, right: float, bottom: float,
    initial: np.ndarray, first: np.ndarray, second: np.ndarray, thresholds: np.ndarray,
    values: np.ndarray, anchors: np.ndarray, deltas: np.ndarray,
) -> np.ndarray:
    height, width = gray.shape
    parts = initial.shape[0] // 2
    cascades, trees, splits = first.shape
    features = anchors.shape[1]
    shape = initial.copy()
    pixels = np.empty(features, np.float32)
    leaves = np.empty(trees, np.int64)
    # The box maps the unit square to the image: (0, 0) to its top left corner and (1, 1)
    # to its bottom right one (dlib's corners are inclusive).
    scale_x, scale_y = right - left, bottom - top
    # Every cascade needs the similarity transform from the initial shape to the current one
    # (Umeyama's least squares, as dlib computes it), of which the features use the linear
    # part. For 2x2 its rotation times its scale is [[a + d, b - c], [c - b, a + d]] over the
    # initial shape's variance, with [[a, b], [c, d]] the two shapes' covariance. The initial
    # shape's side (its points about their mean, its variance) is the same every time.
    mean_fx, mean_fy = _mean_point(initial, parts)
    from_x = np.empty(parts, np.float64)
    from_y = np.empty(parts, np.float64)
    sigma = 0.0
    for part in range(parts):
        from_x[part] = np.float64(initial[2 * part]) - mean_fx
        from_y[part] = np.float64(initial[2 * part + 1]) - mean_fy
        sigma += from_x[part] * from_x[part] + from_y[part] * from_y[part]
    sigma /= parts
    for cascade in range(cascades):
        mean_tx, mean_ty = _mean_point(shape, parts)
        a = b = c = d = 0.0
        for part in range(parts):
            tx = np.float64(shape[2 * part]) - mean_tx
            ty = np.float64(shape[2 * part + 1]) - mean_ty
            a += tx * from_x[part]
            b += tx * from_y[part]
            c += ty * from_x[part]
            d += ty * from_y[part]
        a /= parts
        b /= parts
        c /= parts
        d /= parts
        m00 = np.float32((a + d) / sigma)  # sigma > 0: _parse refuses a shape of one point
        m01 = np.float32((b - c) / sigma)
        m10 = np.float32((c - b) / sigma)
        for feature in range(features):
            anchor = anchors[cascade, feature]
            dx = deltas[cascade, feature, 0]
            dy = deltas[cascade, feature, 1]
            x = (m00 * dx + m01 * dy) + shape[2 * anchor]
            y = (m10 * dx + m00 * dy) + shape[2 * anchor + 1]
            column = _image_pixel(np.float64(x), scale_x, left)
            row = _image_pixel(np.float64(y), scale_y, top)
            if 0 <= column < width and 0 <= row < height:
                pixels[feature] = np.float32(gray[row, column])
            else:
                pixels[feature] = np.float32(0.0)
        # Each tree's leaf first, then the leaves added in tree order (the order dlib adds
        # them in, so the sums are its own to the bit). Walking every tree before adding
        # lets the loads of the leaves (65 MB of them: mostly cache misses) overlap, and the
        # walk has no branch to mispredict.
        for tree in range(trees):
            node = 0
            while node < splits:
                difference = pixels[first[cascade, tree, node]] - pixels[second[cascade, tree, node]]
                # The left child when the difference exceeds the split's threshold.
                node = 2 * node + 2 - np.int64(difference > thresholds[cascade, tree, node])
            leaves[tree] = node - splits
        for tree in range(trees):
            leaf = values[cascade, tree, leaves[tree]]
            for index in range(2 * parts):
                shape[index] += leaf[index]
    points = np.empty((parts, 2), np.float32)
    for part in range(parts):
        points[part, 0] = _image_pixel(np.float64(shape[2 * part]), scale_x, left)
        points[part, 1] = _image_pixel(np.float64(shape[2 * part + 1]), scale_y, top)
    return points


class ShapeModel:
    """A 68-point (or other) shape predictor from dlib's model file bytes. Stateless after
    loading: one instance serves every thread."""

    def __init__(self, data: bytes) -> None:
        (self._initial, self._first, self._second, self._thresholds, self._values,
         self._anchors, self._deltas) = _parse(np.frombuffer(data, np.uint8))

    def fit(self, gray: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
        """The landmarks (parts x 2, float32 whole pixels) of the face in the box from
        (``left``, ``top``) to (``right``, ``bottom``), both corners inclusive, in a uint8
        grey image."""
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ValueError("the shape model takes a 2-D uint8 grey image")
        return _fit(
            np.ascontiguousarray(gray), float(left), float(top), float(right), float(bottom),
            self._initial, self._first, self._second, self._thresholds, self._values,
            self._anchors, self._deltas,
        )
