"""Decoding untrusted image input: JPEG or PNG as bytes, a data URL or bare base64 (WebP,
BMP and TIFF too when the caller lists them in ``formats``: the CLI does for operators' files;
the service accepts what FACEAUTH_ACCEPTED_IMAGE_FORMATS says, JPEG and PNG by default).

Sizes are checked before any pixel is decoded: the encoded length first, then the
dimensions read from the file header, so a small file that claims a huge image (a
decompression bomb) is refused without allocating it."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from face_engine.errors import ImageError

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URL = re.compile(r"^data:(?P<mime>[\w/+.-]*)(?:;[\w=.-]+)*?;base64,", re.IGNORECASE)
# Format name -> the data URL types that announce it ("" is a data URL without a type).
FORMAT_MIME = {
    "jpeg": {"image/jpeg", "image/jpg"},
    "png": {"image/png"},
    "webp": {"image/webp"},
    "bmp": {"image/bmp", "image/x-ms-bmp"},
    "tiff": {"image/tiff"},
}
ALL_FORMATS = tuple(FORMAT_MIME)
DEFAULT_FORMATS = ("jpeg", "png")


@dataclass(frozen=True)
class DecodeLimits:
    """Hard limits on untrusted input: encoded bytes, longest side and pixel count."""

    max_bytes: int = 1_048_576
    max_side: int = 4096
    max_pixels: int = 16_777_216


# Files an operator gives the CLI or the calibration tool are their own: allow large photos.
FILE_LIMITS = DecodeLimits(max_bytes=64 * 1024 * 1024, max_side=12_000, max_pixels=100_000_000)


# Decoding at 1/n of the size: libjpeg scales while it decodes (cheaper than a full decode).
_REDUCED_JPEG = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}


def decode(
    data: bytes | str, *, limits: DecodeLimits = DecodeLimits(), reduce: int = 1,
    formats: tuple[str, ...] | frozenset[str] = DEFAULT_FORMATS,
) -> np.ndarray:
    """Decode an image to a BGR uint8 array of shape (H, W, 3).

    ``data`` is raw JPEG/PNG bytes, a data URL (``data:image/jpeg;base64,...``) or a bare
    base64 string. EXIF orientation is applied; RGBA is composited on white; grayscale and
    16-bit PNGs are converted. ``reduce`` (1, 2 or 4) returns the image at 1/reduce of its
    size in each dimension, rounded up (JPEG scales while decoding, PNG is resized after);
    limits apply to the full size. Raises ImageError with code ``invalid_image`` (not an
    image, corrupt or truncated), ``unsupported_format`` (an image, but not JPEG or PNG) or
    ``image_too_large`` (over ``limits``). ``formats`` names the accepted formats (of
    ALL_FORMATS); an image of another format is ``unsupported_format``."""
    if reduce not in _REDUCED_JPEG:
        raise ValueError(f"reduce must be 1, 2 or 4, not {reduce!r}")
    unknown = set(formats) - set(ALL_FORMATS)
    if unknown:
        raise ValueError(f"unknown image formats {sorted(unknown)}; known: {', '.join(ALL_FORMATS)}")
    raw = _to_bytes(data, limits, formats) if isinstance(data, str) else bytes(data)
    if len(raw) > limits.max_bytes:
        raise ImageError(
            f"image is {len(raw)} bytes; the limit is {limits.max_bytes}", code="image_too_large"
        )
    kind = _format_of(raw)
    if kind is not None and kind not in formats:
        raise ImageError(
            f"{kind.upper()} images are not accepted; send {' or '.join(f.upper() for f in formats)}",
            code="unsupported_format",
        )
    if raw.startswith(JPEG_MAGIC):
        width, height, scan_start = _jpeg_header(raw)
        _check_dimensions(width, height, limits)
        # Byte stuffing keeps FF D9 out of scan data, so an end marker after the main image's
        # scan start means the data is complete (trailers after it are harmless).
        if raw.rfind(b"\xff\xd9") < scan_start:
            raise ImageError("JPEG data is truncated (no end-of-image marker)")
        image = cv2.imdecode(np.frombuffer(raw, np.uint8), _REDUCED_JPEG[reduce])
    elif raw.startswith(PNG_MAGIC):
        width, height = _png_size(raw)
        _check_dimensions(width, height, limits)
        if b"IEND" not in raw[-16:]:
            raise ImageError("PNG data is truncated (no IEND chunk)")
        image = _png_to_bgr(cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED))
        if image is not None and reduce > 1:
            size = (-(-image.shape[1] // reduce), -(-image.shape[0] // reduce))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    elif kind in _HEADER_SIZES:
        width, height = _HEADER_SIZES[kind](raw)
        _check_dimensions(width, height, limits)
        image = _png_to_bgr(cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED))
        if image is not None and reduce > 1:
            size = (-(-image.shape[1] // reduce), -(-image.shape[0] // reduce))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    elif _looks_like_other_image(raw):
        raise ImageError("only JPEG and PNG images are accepted", code="unsupported_format")
    else:
        raise ImageError("data is not a JPEG or PNG image")
    if image is None or image.size == 0:
        raise ImageError("image data is corrupt and cannot be decoded")
    return image


def _to_bytes(text: str, limits: DecodeLimits, formats) -> bytes:
    text = text.strip()
    match = DATA_URL.match(text)
    if match:
        accepted = {""}.union(*(FORMAT_MIME[name] for name in formats))
        if match.group("mime").lower() not in accepted:
            raise ImageError(
                f"data URL type {match.group('mime')!r} is not accepted; send "
                + " or ".join(f"image/{name}" for name in formats),
                code="unsupported_format",
            )
        text = text[match.end():]
    elif text.startswith("data:"):
        raise ImageError("data URL must be base64-encoded (data:image/jpeg;base64,...)")
    # Base64 grows data by 4/3: refuse oversized input before decoding it.
    if len(text) > limits.max_bytes * 4 // 3 + 8:
        raise ImageError(
            f"image is larger than the limit of {limits.max_bytes} bytes", code="image_too_large"
        )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError("image is not valid base64") from exc


def _check_dimensions(width: int, height: int, limits: DecodeLimits) -> None:
    if width <= 0 or height <= 0:
        raise ImageError("image header has no valid dimensions")
    if max(width, height) > limits.max_side or width * height > limits.max_pixels:
        raise ImageError(
            f"image is {width}x{height}; the limit is {limits.max_side} px a side and "
            f"{limits.max_pixels} pixels",
            code="image_too_large",
        )


def _png_size(raw: bytes) -> tuple[int, int]:
    if len(raw) < 24 or raw[12:16] != b"IHDR":
        raise ImageError("PNG header is missing or corrupt")
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


# Start-of-frame markers carry the dimensions; C4, C8 and CC are not frames.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(raw: bytes) -> tuple[int, int, int]:
    """Width, height and the offset of the first scan of the main image."""
    size: tuple[int, int] | None = None
    position = 2
    while position + 4 <= len(raw):
        if raw[position] != 0xFF:
            raise ImageError("JPEG data is corrupt (bad marker)")
        marker = raw[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", raw[position + 2:position + 4])
        if marker in _SOF_MARKERS and size is None:
            if position + 9 > len(raw):
                break
            height, width = struct.unpack(">HH", raw[position + 5:position + 9])
            size = (width, height)
        elif marker == 0xDA:  # start of scan
            if size is None:
                break
            return size[0], size[1], position
        elif marker == 0xD9:
            break
        position += 2 + length
    raise ImageError("JPEG data is truncated or corrupt (no frame header or scan)")


def _png_to_bgr(image: np.ndarray | None) -> np.ndarray | None:
    if image is None:
        return None
    if image.dtype != np.uint8:  # 16-bit PNG
        image = (image // 257).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        # Composite on white: transparent pixels carry arbitrary colour values.
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        blended = image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return blended.astype(np.uint8)
    return image


def _looks_like_other_image(raw: bytes) -> bool:
    return raw.startswith((b"GIF8", b"BM", b"II*\x00", b"MM\x00*")) or (
        raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"
    )


def _format_of(raw: bytes) -> str | None:
    """The format named by the file's magic bytes (None: not one of ALL_FORMATS)."""
    if raw.startswith(JPEG_MAGIC):
        return "jpeg"
    if raw.startswith(PNG_MAGIC):
        return "png"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "webp"
    if raw.startswith(b"BM"):
        return "bmp"
    if raw.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    return None


def _webp_size(raw: bytes) -> tuple[int, int]:
    chunk = raw[12:16]
    if chunk == b"VP8 " and len(raw) >= 30 and raw[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", raw[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(raw) >= 25 and raw[20] == 0x2F:
        (bits,) = struct.unpack("<I", raw[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(raw) >= 30:
        return int.from_bytes(raw[24:27], "little") + 1, int.from_bytes(raw[27:30], "little") + 1
    raise ImageError("WebP header is missing or corrupt")


def _bmp_size(raw: bytes) -> tuple[int, int]:
    if len(raw) < 26:
        raise ImageError("BMP header is missing or corrupt")
    (header_size,) = struct.unpack("<I", raw[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", raw[18:22])
        return width, height
    width, height = struct.unpack("<ii", raw[18:26])
    return width, abs(height)  # a negative height means rows run top-down


def _tiff_size(raw: bytes) -> tuple[int, int]:
    """ImageWidth (256) and ImageLength (257) of the first image file directory."""
    order = "<" if raw[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack(order + "I", raw[4:8])
        (count,) = struct.unpack(order + "H", raw[offset:offset + 2])
        sizes = {}
        for entry in range(count):
            start = offset + 2 + 12 * entry
            tag, kind = struct.unpack(order + "HH", raw[start:start + 4])
            if tag in (256, 257):
                # SHORT (3) values sit left-justified in the 4-byte field; LONG (4) fill it.
                value = raw[start + 8:start + 10] if kind == 3 else raw[start + 8:start + 12]
                (sizes[tag],) = struct.unpack(order + ("H" if kind == 3 else "I"), value)
    except struct.error:
        raise ImageError("TIFF header is truncated or corrupt") from None
    if 256 not in sizes or 257 not in sizes:
        raise ImageError("TIFF header has no image size")
    return sizes[256], sizes[257]


_HEADER_SIZES = {"webp": _webp_size, "bmp": _bmp_size, "tiff": _tiff_size}
