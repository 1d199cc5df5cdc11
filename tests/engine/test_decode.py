import base64
import struct
import zlib

import cv2
import numpy as np
import pytest

import face_engine as fe
from face_engine.decode import DecodeLimits


def encode(image: np.ndarray, extension: str = ".jpg") -> bytes:
    ok, data = cv2.imencode(extension, image)
    assert ok
    return data.tobytes()


@pytest.fixture
def picture() -> np.ndarray:
    rng = np.random.default_rng(1)
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32] = (0, 0, 255)  # left half red in BGR
    image[:, 32:] = rng.integers(0, 255, (48, 32, 3), dtype=np.uint8)
    return image


def test_jpeg_bytes_data_url_and_bare_base64_decode_alike(picture):
    data = encode(picture)
    from_bytes = fe.decode(data)
    text = base64.b64encode(data).decode()
    assert from_bytes.shape == (48, 64, 3) and from_bytes.dtype == np.uint8
    assert np.array_equal(fe.decode("data:image/jpeg;base64," + text), from_bytes)
    assert np.array_equal(fe.decode(text), from_bytes)
    assert np.array_equal(fe.decode(bytearray(data)), from_bytes)


def test_png_is_lossless(picture):
    assert np.array_equal(fe.decode(encode(picture, ".png")), picture)
    url = "data:image/png;base64," + base64.b64encode(encode(picture, ".png")).decode()
    assert np.array_equal(fe.decode(url), picture)


def test_rgba_png_is_composited_on_white():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:, :5] = (255, 0, 0, 255)  # opaque blue
    rgba[:, 5:] = (0, 0, 0, 0)  # transparent black
    image = fe.decode(encode(rgba, ".png"))
    assert image.shape == (10, 10, 3)
    assert tuple(image[0, 0]) == (255, 0, 0)
    assert tuple(image[0, 9]) == (255, 255, 255)


def test_grayscale_and_16_bit_png_become_bgr():
    gray = np.full((8, 8), 100, np.uint8)
    assert fe.decode(encode(gray, ".png")).shape == (8, 8, 3)
    deep = np.full((8, 8, 3), 65535, np.uint16)
    image = fe.decode(encode(deep, ".png"))
    assert image.dtype == np.uint8 and int(image.max()) == 255


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 EXIF segment holding only the Orientation tag after SOI."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def test_exif_orientation_is_applied(picture):
    rotated = fe.decode(with_exif_orientation(encode(picture), 6))  # 6: rotate 90 clockwise
    assert rotated.shape == (64, 48, 3)
    # The red left half of the stored image ends up on top after a clockwise turn.
    assert rotated[:20, :, 2].mean() > 200 and rotated[:20, :, :2].mean() < 60


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world", b"\x00" * 100, "not base64 at all!", "data:image/jpeg;base64,@@@@",
     "data:image/jpeg,rawtext"],
)
def test_non_images_are_refused_as_invalid(data):
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(data)
    assert caught.value.code == "invalid_image"
    assert caught.value.message


def test_other_image_formats_are_unsupported(picture):
    ok, bmp = cv2.imencode(".bmp", picture)
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(bmp.tobytes())
    assert caught.value.code == "unsupported_format"
    with pytest.raises(fe.ImageError) as caught:
        fe.decode("data:image/gif;base64,R0lGODlhAQABAAAAACw=")
    assert caught.value.code == "unsupported_format"


def test_truncated_files_are_refused(picture):
    jpeg = encode(picture)
    for cut in (len(jpeg) // 2, len(jpeg) - 2, 20):
        with pytest.raises(fe.ImageError) as caught:
            fe.decode(jpeg[:cut])
        assert caught.value.code == "invalid_image"
    png = encode(picture, ".png")
    with pytest.raises(fe.ImageError):
        fe.decode(png[: len(png) // 2])


def test_trailing_bytes_after_a_complete_jpeg_are_accepted(picture):
    assert fe.decode(encode(picture) + b"\x00trailer").shape == (48, 64, 3)


def test_oversized_input_is_refused_before_decoding(picture):
    limits = DecodeLimits(max_bytes=1000)
    big = encode(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(big, limits=limits)
    assert caught.value.code == "image_too_large"
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(base64.b64encode(big).decode(), limits=limits)
    assert caught.value.code == "image_too_large"


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_from_the_header():
    bomb = png_claiming(50_000, 50_000)
    assert len(bomb) < 200
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(bomb)
    assert caught.value.code == "image_too_large"
    assert "50000x50000" in caught.value.message


def test_too_many_pixels_in_a_jpeg_is_refused():
    image = np.zeros((100, 300, 3), np.uint8)
    with pytest.raises(fe.ImageError) as caught:
        fe.decode(encode(image), limits=DecodeLimits(max_side=200))
    assert caught.value.code == "image_too_large"
    with pytest.raises(fe.ImageError):
        fe.decode(encode(image), limits=DecodeLimits(max_pixels=20_000))


def test_real_photos_decode(faces_dir):
    rgba = (faces_dir / "edge" / "32bit.png").read_bytes()
    assert fe.decode(rgba, limits=DecodeLimits(max_bytes=2_000_000)).shape[2] == 3
    jpeg = (faces_dir / "obama" / "obama-480p.jpg").read_bytes()
    assert fe.decode(jpeg).shape == (480, 853, 3)
