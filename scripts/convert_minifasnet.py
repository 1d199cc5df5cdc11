"""Convert Minivision's MiniFASNet anti-spoofing weights (legacy PyTorch pickles) to ONNX.

    .venv/bin/python scripts/convert_minifasnet.py [--source DIR]
    /tmp/torchvenv/bin/python scripts/convert_minifasnet.py --reference [--source DIR]

The first form needs only numpy and onnx: the ``.pth`` files are read by the small parser
below (no torch), every BatchNorm is folded into the convolution or linear layer before it,
and the network is written node by node. It writes ``face_engine/data/anti_spoofing/``:
``minifasnet_v2.onnx``, ``minifasnet_v1se.onnx``, ``LICENSE`` and ``NOTICE``.

The second form (a separate venv with ``torch==2.13.0`` and numpy) is the check: it loads the
same files with ``torch.load``, runs them through a plain ``torch.nn.functional`` forward pass
written here independently of the ONNX graph (BatchNorm not folded, dropout skipped), on a few
deterministic inputs, and writes the inputs and logits to ``reference_outputs.npz``;
tests/engine/test_antispoof.py runs the ONNX files in OpenVINO against it."""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import shutil
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "models" / "silent_face_anti_spoofing"
OUT = REPO / "face_engine" / "data" / "anti_spoofing"
UPSTREAM = "minivision-ai/Silent-Face-Anti-Spoofing"
UPSTREAM_COMMIT = "b6d5f04ad78778917853b25c778acef6d5626d15"

# name -> (source file, its SHA-256 as published in ../shared, crop scale, network)
MODELS = {
    "v2": ("2.7_80x80_MiniFASNetV2.pth",
           "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0", 2.7, "MiniFASNetV2"),
    "v1se": ("4_0_0_80x80_MiniFASNetV1SE.pth",
             "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990", 4.0, "MiniFASNetV1SE"),
}
BN_EPS = 1e-5  # PyTorch's BatchNorm default; the files carry no eps
INPUT_SIZE = 80
# Residual stages in order: (downsampling block, stage of residual blocks)
STAGES = (("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5"))

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


# --- the legacy PyTorch format, read with numpy -------------------------------------------

class _TensorRef:
    """A tensor in the pickled state dict: a view of a storage not yet read."""

    def __init__(self, storage: tuple, offset: int, size: tuple, stride: tuple, *_: object) -> None:
        self.key, self.dtype = storage
        self.offset, self.size, self.stride = offset, tuple(size), tuple(stride)


class _StateDictUnpickler(pickle.Unpickler):
    """Allows only what a state dict holds: an OrderedDict of tensors over typed storages.
    Any other global is refused (a pickle can otherwise run arbitrary code)."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _TensorRef
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a state dict")

    def persistent_load(self, pid: tuple) -> tuple:
        # ('storage', storage type, key, location, element count[, view metadata])
        if not (isinstance(pid, tuple) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return pid[2], np.dtype(_STORAGE_DTYPES[pid[1]])


def read_legacy_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """The tensors of a legacy (pre-zip) ``torch.save`` file as numpy arrays, ``module.``
    prefixes removed. Layout: pickles of the magic number, the protocol version, system info,
    the state dict (tensors refer to storages by persistent id) and the list of storage keys;
    then each storage in that order as a little-endian int64 element count and its raw data."""
    stream = io.BytesIO(data)
    if pickle.load(stream) != _LEGACY_MAGIC:
        raise ValueError("not a legacy PyTorch file (magic number)")
    if pickle.load(stream) != 1001:
        raise ValueError("unknown legacy protocol version")
    info = pickle.load(stream)
    if not info.get("little_endian", True):
        raise ValueError("big-endian file")
    state = _StateDictUnpickler(stream).load()
    keys = pickle.load(stream)
    dtypes = {ref.key: ref.dtype for ref in state.values()}
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        (count,) = struct.unpack("<q", stream.read(8))
        dtype = dtypes[key]
        raw = stream.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise ValueError(f"storage {key} is truncated")
        storages[key] = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    tensors = {}
    for name, ref in state.items():
        flat = storages[ref.key]
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[ref.offset:], shape=ref.size, strides=[s * itemsize for s in ref.stride]
        )
        tensors[name.removeprefix("module.")] = np.array(view, dtype=flat.dtype.newbyteorder("="))
    return tensors


def read_weights(path: Path, sha256: str) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{path}: SHA-256 {digest}, expected {sha256}")
    return read_legacy_state_dict(data)


# --- the network as ONNX --------------------------------------------------------------------

def _fold_bn(weight: np.ndarray, w: dict[str, np.ndarray], bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Weight and bias of a bias-free conv/linear layer followed by the BatchNorm ``bn``."""
    scale = w[f"{bn}.weight"] / np.sqrt(w[f"{bn}.running_var"] + BN_EPS)
    shape = (-1,) + (1,) * (weight.ndim - 1)
    folded = (weight.astype(np.float64) * scale.reshape(shape)).astype(np.float32)
    bias = (w[f"{bn}.bias"] - w[f"{bn}.running_mean"] * scale).astype(np.float32)
    return folded, bias


class _Graph:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.w = weights
        self.nodes: list = []
        self.initializers: list = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attributes: object) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def conv_bn(self, x: str, prefix: str, *, stride: int = 1, pad: int | None = None,
                prelu: bool = True, bn: str | None = None) -> str:
        """``prefix``.weight (no bias) + BatchNorm folded in, then a per-channel PReLU."""
        kernel = self.w[f"{prefix}.weight"]
        out_channels, in_per_group, kh, kw = kernel.shape
        groups = 1 if in_per_group != 1 or out_channels == 1 else out_channels
        weight, bias = _fold_bn(kernel, self.w, bn or prefix.rsplit(".", 1)[0] + ".bn")
        padding = (kh // 2) if pad is None else pad
        y = self.node("Conv", [x, self.const(f"{prefix}.w", weight), self.const(f"{prefix}.b", bias)],
                      f"{prefix}.out", kernel_shape=[kh, kw], strides=[stride, stride],
                      pads=[padding] * 4, group=groups)
        if prelu:
            base = prefix.rsplit(".", 1)[0]
            slope = self.w[f"{base}.prelu.weight"].reshape(-1, 1, 1)
            y = self.node("PRelu", [y, self.const(f"{base}.prelu.slope", slope)], f"{base}.prelu.out")
        return y

    def depth_wise(self, x: str, prefix: str, *, stride: int, residual: bool) -> str:
        """1x1 expansion, 3x3 depthwise, 1x1 projection (no activation); an SE unit if the
        weights have one; the input added back when ``residual``."""
        y = self.conv_bn(x, f"{prefix}.conv.conv")
        y = self.conv_bn(y, f"{prefix}.conv_dw.conv", stride=stride)
        y = self.conv_bn(y, f"{prefix}.project.conv", prelu=False)
        if f"{prefix}.se_module.fc1.weight" in self.w:
            se = f"{prefix}.se_module"
            s = self.node("GlobalAveragePool", [y], f"{se}.pool")
            s = self.conv_bn(s, f"{se}.fc1", prelu=False, bn=f"{se}.bn1", pad=0)
            s = self.node("Relu", [s], f"{se}.relu")
            s = self.conv_bn(s, f"{se}.fc2", prelu=False, bn=f"{se}.bn2", pad=0)
            s = self.node("Sigmoid", [s], f"{se}.sigmoid")
            y = self.node("Mul", [y, s], f"{se}.out")
        if residual:
            y = self.node("Add", [x, y], f"{prefix}.sum")
        return y


def build_onnx(weights: dict[str, np.ndarray], name: str) -> bytes:
    """MiniFASNet (V2 or V1SE: the weights say which blocks have an SE unit and how wide each
    expansion is) as an ONNX model: input ``input`` (N, 3, 80, 80) BGR 0-255, output
    ``logits`` (N, 3), softmax index 1 = real."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph(weights)
    x = g.conv_bn("input", "conv1.conv", stride=2)
    x = g.conv_bn(x, "conv2_dw.conv")
    for down, stage in STAGES:
        x = g.depth_wise(x, down, stride=2, residual=False)
        blocks = sorted({int(key.split(".")[2]) for key in weights if key.startswith(f"{stage}.model.")})
        for index in blocks:
            x = g.depth_wise(x, f"{stage}.model.{index}", stride=1, residual=True)
    x = g.conv_bn(x, "conv_6_sep.conv")
    x = g.conv_bn(x, "conv_6_dw.conv", prelu=False, pad=0)  # 5x5 depthwise: 5x5 -> 1x1
    x = g.node("Flatten", [x], "flatten", axis=1)
    linear, bias = _fold_bn(weights["linear.weight"], weights, "bn")  # Linear then BatchNorm1d
    x = g.node("Gemm", [x, g.const("linear.w", linear), g.const("linear.b", bias)], "embedding", transB=1)
    # dropout: identity at inference
    g.node("Gemm", [x, g.const("prob.w", weights["prob.weight"])], "logits", transB=1)
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        g.initializers,
    )
    model = helper.make_model(graph, producer_name="faceauth scripts/convert_minifasnet.py",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


NOTICE = """MiniFASNet anti-spoofing models (derived files)

minifasnet_v2.onnx and minifasnet_v1se.onnx are derived from the files
resources/anti_spoof_models/2.7_80x80_MiniFASNetV2.pth and
resources/anti_spoof_models/4_0_0_80x80_MiniFASNetV1SE.pth of the repository
{upstream} (commit {commit}), Copyright Minivision, released under the
Apache License 2.0 (LICENSE in this folder, copied from that repository).

Changes: the PyTorch weights were read from the legacy pickle format by
scripts/convert_minifasnet.py (numpy only) and written as ONNX graphs (opset 13) of the
same networks at inference: every BatchNorm folded into the convolution or linear layer
before it (eps 1e-5), dropout removed, the training-only Fourier branch absent as in the
source files. The numbers computed are otherwise those of the original weights;
reference_outputs.npz holds logits of the original weights computed with PyTorch on fixed
inputs, which the ONNX files reproduce (tests/engine/test_antispoof.py).

Source SHA-256:
{hashes}
"""


def convert(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    hashes = []
    for key, (filename, sha256, _, network) in MODELS.items():
        weights = read_weights(source / filename, sha256)
        data = build_onnx(weights, network)
        target = out / f"minifasnet_{key}.onnx"
        target.write_bytes(data)
        hashes.append(f"  {filename}  {sha256}")
        print(f"{target.relative_to(REPO)}  {len(data)} bytes  sha256 {hashlib.sha256(data).hexdigest()}")
    shutil.copyfile(source / "LICENSE", out / "LICENSE")
    (out / "NOTICE").write_text(NOTICE.format(upstream=UPSTREAM, commit=UPSTREAM_COMMIT,
                                              hashes="\n".join(hashes)))


# --- the reference: the original weights in torch ------------------------------------------

def reference_inputs() -> np.ndarray:
    """Fixed (N, 3, 80, 80) uint8 BGR inputs: a face-like drawing (skin-toned ellipse, dark
    eyes and mouth) on three backgrounds with a lighting gradient, and a seeded random image."""
    size = INPUT_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = []
    for index, (background, skin, light) in enumerate([
        ((40, 60, 90), (120, 150, 200), 0.6), ((200, 200, 190), (90, 110, 160), 0.9),
        ((20, 20, 20), (150, 170, 220), 0.3),
    ]):
        inside = ((xx - 40) / 22) ** 2 + ((yy - 42) / 28) ** 2 <= 1
        eyes = ((((xx - 31) / 5) ** 2 + ((yy - 35) / 3) ** 2 <= 1)
                | (((xx - 49) / 5) ** 2 + ((yy - 35) / 3) ** 2 <= 1))
        mouth = (((xx - 40) / 9) ** 2 + ((yy - 56) / 2.5) ** 2 <= 1)
        image = np.empty((size, size, 3), np.float32)
        for channel in range(3):
            plane = np.where(inside, skin[channel], background[channel]).astype(np.float32)
            plane[eyes | mouth] = 30
            gradient = 1 - light * (xx + index * yy) / (2 * size)
            image[..., channel] = plane * gradient + 8 * np.sin(xx / (3 + index)) * np.cos(yy / 4)
        images.append(np.clip(np.rint(image), 0, 255).astype(np.uint8))
    images.append(np.random.default_rng(2026).integers(0, 256, (size, size, 3), dtype=np.uint8))
    return np.stack(images).transpose(0, 3, 1, 2).copy()


def torch_logits(weights: dict, images: np.ndarray) -> np.ndarray:
    """MiniFASNet forward pass in torch.nn.functional from the state dict itself."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    w = weights

    def bn(x: torch.Tensor, prefix: str) -> torch.Tensor:
        return F.batch_norm(x, w[f"{prefix}.running_mean"], w[f"{prefix}.running_var"],
                            w[f"{prefix}.weight"], w[f"{prefix}.bias"], training=False, eps=BN_EPS)

    def block(x: torch.Tensor, prefix: str, stride: int = 1, padding: int = 1, act: bool = True,
              depthwise: bool = False) -> torch.Tensor:
        kernel = w[f"{prefix}.conv.weight"]
        x = F.conv2d(x, kernel, stride=stride, padding=padding, groups=kernel.shape[0] if depthwise else 1)
        x = bn(x, f"{prefix}.bn")
        return F.prelu(x, w[f"{prefix}.prelu.weight"]) if act else x

    def depth_wise(x: torch.Tensor, prefix: str, stride: int, residual: bool) -> torch.Tensor:
        y = block(x, f"{prefix}.conv", padding=0)
        y = block(y, f"{prefix}.conv_dw", stride=stride, depthwise=True)
        y = block(y, f"{prefix}.project", padding=0, act=False)
        se = f"{prefix}.se_module"
        if f"{se}.fc1.weight" in w:
            s = y.mean(dim=(2, 3), keepdim=True)
            s = F.relu(bn(F.conv2d(s, w[f"{se}.fc1.weight"]), f"{se}.bn1"))
            s = torch.sigmoid(bn(F.conv2d(s, w[f"{se}.fc2.weight"]), f"{se}.bn2"))
            y = y * s
        return x + y if residual else y

    with torch.no_grad():
        x = torch.from_numpy(images.astype(np.float32))
        x = block(x, "conv1", stride=2)
        x = block(x, "conv2_dw", depthwise=True)
        for down, stage in STAGES:
            x = depth_wise(x, down, 2, False)
            count = len({key.split(".")[2] for key in w if key.startswith(f"{stage}.model.")})
            for index in range(count):
                x = depth_wise(x, f"{stage}.model.{index}", 1, True)
        x = block(x, "conv_6_sep", padding=0)
        x = block(x, "conv_6_dw", padding=0, act=False, depthwise=True)
        x = torch.flatten(x, 1)
        x = F.linear(x, w["linear.weight"])
        x = bn(x, "bn")
        x = F.linear(x, w["prob.weight"])
    return x.numpy()


def reference(source: Path, out: Path) -> None:
    import torch

    images = reference_inputs()
    results: dict[str, np.ndarray] = {"inputs": images}
    for key, (filename, sha256, _, _) in MODELS.items():
        path = source / filename
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            raise SystemExit(f"{path}: SHA-256 mismatch")
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = {name.removeprefix("module."): tensor.float() for name, tensor in state.items()}
        results[f"logits_{key}"] = torch_logits(weights, images)
        print(key, np.round(results[f"logits_{key}"], 4).tolist())
    out.mkdir(parents=True, exist_ok=True)
    target = out / "reference_outputs.npz"
    np.savez_compressed(target, **results)
    print(f"{target}  {target.stat().st_size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SOURCE, help="folder of the .pth files and LICENSE")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--reference", action="store_true",
                        help="(needs torch) write reference_outputs.npz instead of converting")
    args = parser.parse_args()
    if args.reference:
        reference(args.source, args.out)
    else:
        convert(args.source, args.out)


if __name__ == "__main__":
    main()
