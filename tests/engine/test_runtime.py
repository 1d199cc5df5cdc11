"""The networks run on OpenVINO (face_engine/models.py) and must compute what OpenCV's DNN
module computes on the same verified model files: the calibrated match thresholds and the
liveness figures were measured through OpenCV. In float32 they agree to the rounding; SFace
in bfloat16 (on CPUs with bfloat16 units) gives the same embeddings to within a cosine of
0.999 (0.99928 at the least on 190 faces of ../shared/faces). dlib's 68-point model runs on
face_engine/shape_model.py's compiled code and must give dlib's own points, exactly."""

import importlib
import threading

import cv2
import dlib
import numba
import numpy as np
import pytest

import face_engine as fe
from face_engine import models
from face_engine.cli import load_image
from face_engine.errors import ModelError
from face_engine.shape_model import ShapeModel, _jit
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


@pytest.fixture(scope="module")
def dlib_predictor() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(models.SHAPE_68.path))


def _dlib_points(
    predictor: dlib.shape_predictor, gray: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    shape = predictor(gray, dlib.rectangle(*box))
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def test_landmarks_are_dlibs_on_the_shared_faces(detector_inputs, dlib_predictor):
    """On every face of the photos and clip frames, at the engine's box and boxes shifted and
    scaled around it (as the tracker's followed boxes are), the same 68 points as dlib."""
    model = models.shape_predictor()
    fits = 0
    for image in detector_inputs:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        for face in fe.detect(image):
            left, top, right, bottom = detect_module.landmark_box(face)
            for dx, dy, grow in ((0, 0, 0), (5, -3, 0), (-9, 4, 6), (2, 7, -8)):
                corners = (left + dx - grow, top + dy - grow, right + dx + grow, bottom + dy + grow)
                assert np.array_equal(model.fit(gray, *corners), _dlib_points(dlib_predictor, gray, corners))
                fits += 1
    assert fits > 400


def test_landmarks_are_dlibs_on_any_picture_and_box(dlib_predictor):
    """Noise, gradients and boxes partly or wholly outside the picture (the features read 0
    there), large and tiny: dlib's points every time."""
    model = models.shape_predictor()
    rng = np.random.default_rng(11)
    for trial in range(400):
        height, width = rng.integers(16, 400, size=2)
        if trial % 2:
            gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
        else:
            ys, xs = np.mgrid[0:height, 0:width]
            gray = ((xs * rng.uniform(0, 3) + ys * rng.uniform(0, 3)) % 256).astype(np.uint8)
        side = int(rng.integers(2, 2 * max(height, width)))
        left, top = int(rng.integers(-side, width)), int(rng.integers(-side, height))
        corners = (left, top, left + side, top + side)
        assert np.array_equal(model.fit(gray, *corners), _dlib_points(dlib_predictor, gray, corners)), trial


def test_landmarks_fit_in_parallel_threads_with_the_same_points():
    """The fit runs without the GIL; threads sharing the model get what one thread gets."""
    model = models.shape_predictor()
    rng = np.random.default_rng(3)
    grays = [rng.integers(0, 256, (120, 160), dtype=np.uint8) for _ in range(8)]
    alone = [model.fit(gray, 20, 10, 120, 110) for gray in grays]
    results: dict[int, list[np.ndarray]] = {}

    def fit_all(index: int) -> None:
        results[index] = [model.fit(gray, 20, 10, 120, 110) for gray in grays * 10]

    threads = [threading.Thread(target=fit_all, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for fitted in results.values():
        assert all(np.array_equal(a, b) for a, b in zip(fitted, alone * 10, strict=True))


def test_a_damaged_landmark_model_file_is_refused():
    data = models.SHAPE_68.path.read_bytes()
    for end in (len(data) // 2, len(data) - 1, 1, 0):  # truncated, at or inside an integer
        with pytest.raises(ValueError, match="corrupt|not a dlib"):
            ShapeModel(data[:end])
    with pytest.raises(ValueError, match="not a dlib"):
        ShapeModel(b"\x01\x02" + data[2:])  # another version
    with pytest.raises(ValueError, match="trailing"):
        ShapeModel(data + b"\x00")
    # Two points, both at 0 (mantissa 0, exponent 0): no similarity transform can be fitted.
    with pytest.raises(ValueError, match="single point"):
        ShapeModel(b"\x01\x01\x81\x04\x81\x01" + b"\x00\x00" * 4)
    with pytest.raises(ValueError, match="uint8 grey"):
        models.shape_predictor().fit(np.zeros((4, 4, 3), np.uint8), 0, 0, 3, 3)


def test_the_engine_reports_a_damaged_landmark_model_as_a_model_error(monkeypatch):
    monkeypatch.setattr(models, "_predictor", None)
    monkeypatch.setattr(models, "model_bytes", lambda model: b"\x01\x01\x81")  # cut inside the shape
    with pytest.raises(ModelError, match="shape_predictor_68_face_landmarks.dat cannot be read: corrupt"):
        models.shape_predictor()


def test_the_fit_compiles_where_numba_has_nowhere_to_cache_it():
    """A function numba cannot cache (here: no source file, as code in a read-only place with
    no writable cache directory) is compiled all the same."""
    namespace: dict = {}
    exec("def add_one(x):\n    return x + 1\n", namespace)  # noqa: S102 - a function with no file
    with pytest.raises(RuntimeError, match="cannot cache"):
        numba.njit(cache=True)(namespace["add_one"])
    assert _jit(nogil=True)(namespace["add_one"])(41) == 42
