"""The networks run on OpenVINO (face_engine/models.py) and must compute what OpenCV's DNN
module computes on the same verified model files: the calibrated match thresholds and the
liveness figures were measured through OpenCV. In float32 they agree to the rounding; SFace
in bfloat16 (on CPUs with bfloat16 units) gives the same embeddings to within a cosine of
0.999 (0.99928 at the least on 190 faces of ../shared/faces)."""

import importlib

import cv2
import numpy as np
import pytest

import face_engine as fe
from face_engine import models
from face_engine.cli import load_image
from face_engine.errors import ModelError
from face_engine.video import video_frames

detect_module = importlib.import_module("face_engine.detect")
embed_module = importlib.import_module("face_engine.embed")


def _opencv_detector() -> cv2.FaceDetectorYN:
    buffer = np.frombuffer(models.model_bytes(models.YUNET), np.uint8)
    return cv2.FaceDetectorYN.create(
        "onnx", buffer, np.empty(0, np.uint8), (320, 320),
        detect_module.DETECTOR_SCORE_THRESHOLD, detect_module.DETECTOR_NMS_THRESHOLD, 5000,
    )


def _opencv_recognizer() -> cv2.FaceRecognizerSF:
    buffer = np.frombuffer(models.model_bytes(models.SFACE), np.uint8)
    return cv2.FaceRecognizerSF.create("onnx", buffer, np.empty(0, np.uint8))


def _downscaled(image: np.ndarray, side: int) -> np.ndarray:
    scale = min(1.0, side / max(image.shape[:2]))
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


@pytest.fixture(scope="module")
def photos(faces_dir) -> list[np.ndarray]:
    """Every photo of the shared faces: single faces, groups, a landscape."""
    paths = sorted(p for p in faces_dir.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return [load_image(path) for path in paths]


@pytest.fixture(scope="module")
def detector_inputs(faces_dir, photos) -> list[np.ndarray]:
    """Every photo at the photo and tracking search sizes, and webcam-like frames of two clips
    at the tracking size."""
    images = []
    for image in photos:
        images += [_downscaled(image, detect_module.PHOTO_MAX_SIDE), _downscaled(image, 256)]
    for clip in ("liveportrait_d3.mp4", "sadtalker_katiehill.mp4"):
        for count, (_, frame) in enumerate(video_frames(faces_dir / "video" / clip, fps=5.0)):
            if count >= 12:
                break
            images.append(_downscaled(frame, 256))
    return images


def test_detection_matches_opencv_face_for_face(detector_inputs):
    reference = _opencv_detector()
    faces_seen = 0
    for image in detector_inputs:
        reference.setInputSize((image.shape[1], image.shape[0]))
        expected = reference.detect(image)[1]
        expected = np.empty((0, 15), np.float32) if expected is None else expected
        found = detect_module._yunet(image)
        assert found.shape == expected.shape, image.shape
        # Same order (NMS keeps the highest score first), boxes and points to 1e-3 px.
        assert np.abs(found - expected).max(initial=0.0) < 1e-3
        faces_seen += len(found)
    assert faces_seen > 100


def test_alignment_and_embedding_match_opencv(photos):
    recognizer = _opencv_recognizer()
    in_float32 = models.Network(models.SFACE)
    assert in_float32.precision == "f32"
    compared = 0
    for index, image in enumerate(photos):
        for face in fe.detect(image):
            box = [face.box.x, face.box.y, face.box.width, face.box.height]
            row = np.concatenate([box, face.keypoints.reshape(-1), [face.score]]).astype(np.float32)[None]
            expected_crop = recognizer.alignCrop(image, row)
            crop = embed_module.align_crop(image, face)
            assert np.array_equal(crop, expected_crop), index
            expected = recognizer.feature(expected_crop).reshape(-1)
            expected /= np.linalg.norm(expected)
            blob = cv2.dnn.blobFromImage(crop, swapRB=True)
            found = in_float32.run(blob)[embed_module.SFACE_OUTPUT].reshape(-1)
            assert np.abs(found / np.linalg.norm(found) - expected).max() < 1e-5, index
            # As the engine runs it (bfloat16 where the CPU has it).
            assert float(fe.embed(image, face) @ expected) >= 0.999, index
            compared += 1
    assert compared >= 60


def test_dequantize_follows_the_onnx_operator():
    quantized = np.array([[0, 2, 4, 6], [8, 10, 12, 14]], np.int8)
    # Per tensor, per output row (axis 0), and per block of two along axis 1.
    assert np.array_equal(
        models._dequantize(quantized, np.float32(0.5), np.int8(2), axis=1, block_size=0),
        (quantized - 2) * 0.5,
    )
    per_row = models._dequantize(quantized, np.array([1.0, 0.25], np.float32), None, axis=0, block_size=0)
    assert np.array_equal(per_row, [[0, 2, 4, 6], [2, 2.5, 3, 3.5]])
    blocks = models._dequantize(
        quantized, np.array([[1.0, 2.0], [0.5, 0.1]], np.float32), np.array([[0, 1], [8, 0]], np.int8),
        axis=1, block_size=2,
    )
    assert np.allclose(blocks, [[0, 2, 6, 10], [0, 1, 1.2, 1.4]])


def test_only_networks_measured_in_bfloat16_run_in_it_and_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.delenv("FACEAUTH_INFERENCE_PRECISION", raising=False)
    native = "bf16" if models.cpu_has_bf16() else "f32"
    assert models.recognizer().precision == native and models.iris_landmarker().precision == native
    assert models.detector().precision == "f32"
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: True)
    assert models.inference_precision(tolerates_bf16=True) == "bf16"
    assert models.inference_precision(tolerates_bf16=False) == "f32"
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: False)
    assert models.inference_precision(tolerates_bf16=True) == "f32"
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: True)
    monkeypatch.setenv("FACEAUTH_INFERENCE_PRECISION", "F32")
    assert models.inference_precision(tolerates_bf16=True) == "f32"
    monkeypatch.setenv("FACEAUTH_INFERENCE_PRECISION", "fp16")
    with pytest.raises(ModelError, match="bf16 or f32"):
        models.inference_precision(tolerates_bf16=True)


def test_a_recurring_input_size_gets_its_own_network_with_the_same_results():
    network = models.Network(models.YUNET, any_input_size=True)
    rng = np.random.default_rng(0)
    blob = rng.uniform(0, 255, (1, 3, 96, 128)).astype(np.float32)
    results = [network.run(blob) for _ in range(models._FIXED_AFTER + 1)]
    assert (1, 3, 96, 128) in network._fixed  # compiled for the size once it came back
    for name, value in results[0].items():
        assert np.allclose(results[-1][name], value, atol=1e-4), name
    # A size met once stays on the general network.
    network.run(rng.uniform(0, 255, (1, 3, 64, 64)).astype(np.float32))
    assert (1, 3, 64, 64) not in network._fixed
