from pathlib import Path

import cv2
import numpy as np
import pytest

from face_engine.cli import load_image

# Photos of one identity per folder; edge/ holds Obama too. group/ is left out (several people).
from face_engine.evaluation.calibration import PHOTO_FOLDERS as IDENTITY_FOLDERS


def single_face_photos(faces_dir: Path) -> list[Path]:
    return sorted(
        path
        for folder in IDENTITY_FOLDERS
        for path in (faces_dir / folder).iterdir()
        if path.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )


@pytest.fixture(scope="session")
def photos(faces_dir: Path) -> dict[Path, str]:
    """Every single-identity photo with its identity."""
    return {path: IDENTITY_FOLDERS[path.parent.name] for path in single_face_photos(faces_dir)}


def as_jpeg_frame(image: np.ndarray, quality: int = 80) -> np.ndarray:
    """What a browser would send and the server decode: a 640x480 JPEG of ``image``."""
    from face_engine.video import fit_frame

    ok, data = cv2.imencode(".jpg", fit_frame(image), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


@pytest.fixture
def obama(faces_dir: Path) -> np.ndarray:
    return load_image(faces_dir / "obama" / "obama.jpg")
