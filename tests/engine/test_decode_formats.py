"""WebP, BMP and TIFF when a caller accepts them (the CLI does; the service by setting), with
the same checks before decoding as JPEG and PNG."""

from __future__ import annotations

import base64
import struct

import cv2
import numpy as np
import pytest

import face_engine as fe
from face_engine.decode import ALL_FORMATS, DEFAULT_FORMATS

ENCODINGS = {
    "webp": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
    "webp_lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
    "bmp": (".bmp", []),
    "tiff": (".tiff", []),
    "tiff_uncompressed": (".tiff", [cv2.IMWRITE_TIFF_COMPRESSION, 1]),
}


@pytest.fixture
def picture() -> np.ndarray:
    rng = np.random.default_rng(3)
    return cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (5, 5), 2)


def encode(image: np.ndarray, name: str) -> bytes:
    extension, params = ENCODINGS[name]
    ok, data = cv2.imencode(extension, image, params)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_accepted_formats_decode_to_bgr(picture, name):
    image = fe.decode(encode(picture, name), formats=ALL_FORMATS)
    assert image.shape == picture.shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - picture.astype(int)).mean() < 8


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_the_default_stays_jpeg_and_png(picture, name):
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(encode(picture, name))
    assert caught.value.code == "unsupported_format" and "send JPEG or PNG" in caught.value.message
    assert DEFAULT_FORMATS == ("jpeg", "png")


def test_rgba_webp_is_composited_and_data_urls_name_the_type(picture):
    rgba = np.dstack([picture, np.full(picture.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    data = encode(rgba, "webp_lossless")
    image = fe.decode(data, formats=("webp",))
    assert image.shape == picture.shape and (image[:10, :10] == 255).all()
    url = "data:image/webp;base64," + base64.b64encode(data).decode()
    assert fe.decode(url, formats=("jpeg", "webp")).shape == picture.shape
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(url)
    assert caught.value.code == "unsupported_format" and "image/jpeg or image/png" in caught.value.message


def test_a_format_can_be_left_out(picture):
    ok, png = cv2.imencode(".png", picture)
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(png.tobytes(), formats=("jpeg",))
    assert caught.value.code == "unsupported_format"
    with pytest.raises(ValueError, match="unknown image formats"):
        fe.decode(png.tobytes(), formats=("jpeg", "gif"))


@pytest.mark.parametrize("name", ["bmp", "tiff_uncompressed", "webp_lossless", "webp"])
def test_sizes_are_checked_from_the_header_before_decoding(picture, name):
    data = encode(picture, name)
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(data, formats=ALL_FORMATS, limits=fe.DecodeLimits(max_side=100))
    assert caught.value.code == "image_too_large" and "160x120" in caught.value.message


def test_a_bmp_claiming_a_huge_size_is_refused_without_allocating_it(picture):
    data = bytearray(encode(picture, "bmp"))
    data[18:26] = struct.pack("<ii", 60_000, -60_000)  # top-down, 3.6 gigapixels
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(bytes(data), formats=ALL_FORMATS)
    assert caught.value.code == "image_too_large"


@pytest.mark.parametrize("name", ["webp", "tiff", "bmp"])
def test_truncated_files_are_invalid(picture, name):
    data = encode(picture, name)
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(data[: len(data) // 3] if name != "webp" else data[:20], formats=ALL_FORMATS)
    assert caught.value.code == "invalid_image"
