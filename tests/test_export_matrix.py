"""Export matrix: the n scale of every shipped model family and task × ONNX (static and dynamic shapes),
TorchScript and OpenVINO (pose, OBB and the ResNet PST variants: ONNX only), each run in its runtime and compared
with the PyTorch model; and the early export check (:mod:`ultra_ext.integration.export_check`) that names the layer
blocking a format.

Everything goes through the stock exporter (``YOLO(yaml).export(format=..., imgsz=..., dynamic=...)``) from a
temporary cwd. Inputs are 64 px (128 for the PST models: their top-k 8 needs a 4×4 P5 map); dynamic ONNX is checked
at batch 2 and at a second size too. Default exports use the one-to-many head (no top-k); one NMS-free
(``nms=False``) case is here, ``tests/models/test_generalist_task.py`` covers the joint model's. Models get random
weights and BN statistics fitted to their test images (:class:`Case`); parity is judged against the float64
PyTorch model (``RATIO``, ``FLOOR``).

Measured on ultralytics 8.4.190, onnxruntime 1.31.1, openvino 2026.4.1 (2 CPU cores, one thread): every model
passes every format, runtime error at most 3.2× PyTorch fp32's (``pytest -s`` prints the matrix). Runtime: about
3.3 minutes, nearly all of it the 51 exports (onnxslim, the OpenVINO converter), so every model runs every format.

ncnn (pnnx and ncnn are not dependencies) was measured by hand: YOLOv12-turbo/-seg (turbo attention with area > 1)
and the PST models (top-k) export but do not load; the check refuses them up front (tested here without ncnn).

OpenVINO's converter reports usage to Intel unless opted out; ``CI=true`` opts out (``openvino_telemetry`` skips
its consent check in CI, which the converter requests), set for the OpenVINO tests and asserted.
"""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ultralytics import YOLO

from ultra_ext.integration import export_check
from ultra_ext.integration.yaml_lookup import model_yaml_names
from ultra_ext.nn.pst import set_pst_options

# n-scale YAML: (family YAML as listed by model_yaml_names, export size)
MODELS = {
    "yolov12n.yaml": ("yolov12.yaml", 64),
    "yolov12n-turbo.yaml": ("yolov12-turbo.yaml", 64),
    "yolov12n-seg.yaml": ("yolov12-seg.yaml", 64),
    "yolov12n-cls.yaml": ("yolov12-cls.yaml", 64),
    "goldyolo-n.yaml": ("goldyolo-n.yaml", 64),
    "yolo11n-pst.yaml": ("yolo11-pst.yaml", 128),
    "yolov12n-pst.yaml": ("yolov12-pst.yaml", 128),
    "yolo11n-cls-pst.yaml": ("yolo11-cls-pst.yaml", 128),
    "gyolo-n.yaml": ("gyolo.yaml", 64),
    "gyolo-seg-n.yaml": ("gyolo-seg.yaml", 64),
    "gyolo-sem-n.yaml": ("gyolo-sem.yaml", 64),
    "gyolo-generalist-n.yaml": ("gyolo-generalist.yaml", 64),
    "yolov12n-pose.yaml": ("yolov12-pose.yaml", 64),
    "yolov12n-obb.yaml": ("yolov12-obb.yaml", 64),
    "yolov12n-pst-pose.yaml": ("yolov12-pst-pose.yaml", 128),
    "yolov12n-pst-obb.yaml": ("yolov12-pst-obb.yaml", 128),
    "r18-pst-n.yaml": ("r18-pst.yaml", 128),
    "r18-cls-pst-n.yaml": ("r18-cls-pst.yaml", 128),
}
# pose and OBB reuse the detection models' layers with stock heads, the ResNet PST variants stock ResNetLayer and
# our PST: ONNX (static and dynamic) is enough to show they export; TorchScript and OpenVINO run the other rows only
# (each export costs seconds on 2 cores)
ONNX_ONLY = {"yolov12n-pose.yaml", "yolov12n-obb.yaml", "yolov12n-pst-pose.yaml", "yolov12n-pst-obb.yaml",
             "r18-pst-n.yaml", "r18-cls-pst-n.yaml"}  # fmt: skip
# ResNet depths differ only in blocks per stage: r18 stands in for r50 and r101
STANDS_IN = {"r50-pst.yaml": "r18-pst.yaml", "r101-pst.yaml": "r18-pst.yaml", "r50-cls-pst.yaml": "r18-cls-pst.yaml",
             "r101-cls-pst.yaml": "r18-cls-pst.yaml"}  # fmt: skip
ALL_FORMATS = [name for name in MODELS if name not in ONNX_ONLY]
SECOND_SIZE = {64: 96, 128: 192}  # dynamic-shape parity at a second input size
# Parity criterion: a runtime's error against the float64 PyTorch model is at most RATIO × the float32 PyTorch
# model's own error against it, plus FLOOR. Random deep networks amplify float32 rounding layer by layer (PyTorch
# fp32 vs fp64 measured from ~1e-6 on YOLOv12 to 0.15 in Generalist YOLO's class scores on one of its 4 images), so
# one fixed tolerance is too loose for some models or fails on rounding for others. Measured ratios: at most 3.2;
# a 0.1% change of one conv's weights fails it (tested below); a wrong op or top-k selection gives O(1) errors.
RATIO, FLOOR = 10.0, 1e-5


def _images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, size, size) in [0, 1]: smooth random fields plus pixel noise, so deep features differ per image."""
    low = torch.rand(n, 3, 4, 4, generator=generator)
    smooth = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return 0.7 * smooth + 0.3 * torch.rand(n, 3, size, size, generator=generator)


class Case:
    """A model built once per module, with random weights and BN statistics fitted to its own test images.

    The stock init is useless for parity: BN is the identity, so activations fade layer by layer and the outputs
    are nearly constant (Gold-YOLO's prediction convs are zero: exactly constant), which any runtime matches.
    Here every trainable conv/linear weight is N(0, 1/fan_in) and its bias 0 (class scores spread around 0.5,
    where they are most sensitive), and one eval pass over the test images sets every BN's statistics to those of
    its input, so activations stay O(1) for exactly the inputs compared. DFL's fixed projection is kept.
    """

    def __init__(self, name: str):
        self.name, self.size = name, MODELS[name][1]
        torch.manual_seed(0)
        self.yolo = YOLO(name)
        net = self.yolo.model
        generator = torch.Generator().manual_seed(0)
        self.images = _images(4, self.size, generator)  # [:1] static tests, [:2] dynamic
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)) and m.weight.requires_grad:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * m.weight[0].numel() ** -0.5)
                    if m.bias is not None:
                        m.bias.zero_()
            hooks = [m.register_forward_pre_hook(_fit_statistics) for m in norms]
            net.eval()(self.images)
            for hook in hooks:
                hook.remove()
        self.net64 = copy.deepcopy(net).double()

    def export(self, **kwargs) -> str:
        return self.yolo.export(imgsz=self.size, **kwargs)

    def references(self, x: torch.Tensor, end2end: bool = False) -> tuple[list, list]:
        """``(float64, float32)`` PyTorch outputs for ``x`` in the exported graph's layout and order."""
        exact = _reference(self.net64, x.double(), end2end)
        return exact, _reference(self.yolo.model, x, end2end)

    def check(self, x: torch.Tensor, got: list[np.ndarray]) -> tuple[float, float, float]:
        """Assert the parity criterion for the runtime's outputs ``got`` (each image and output part on its own);
        return the largest runtime error, PyTorch fp32 error and ratio of the two."""
        exact, torch32 = self.references(x)
        if got and got[-1].dtype == np.uint8:  # semantic class map (argmax baked into ONNX/OpenVINO exports)
            return _check_class_map(exact, torch32, got)
        assert len(got) == len(exact), (len(got), len(exact))
        nc = getattr(self.yolo.model.model[-1], "nc", 0)
        runtime = np.concatenate([_errors(e, g, nc) for e, g in zip(exact, got)], 1)  # (B, parts)
        reference = np.concatenate([_errors(e, t, nc) for e, t in zip(exact, torch32)], 1)
        assert (runtime <= RATIO * reference + FLOOR).all(), (runtime, reference)
        return float(runtime.max()), float(reference.max()), float((runtime / (reference + FLOOR / RATIO)).max())


def _fit_statistics(bn: torch.nn.BatchNorm2d, args: tuple) -> None:
    """Forward pre-hook: set ``bn``'s running statistics to those of its eval-mode input (biased variance).

    Not a train-mode pass: that normalises with the batch statistics, and eval mode then differs by the unbiased
    variance (n / (n - 1), large on a 2×2 P5 map), which random deep networks amplify (GYOLO: 90% off at P5)."""
    x = args[0]
    bn.running_mean.copy_(x.mean((0, 2, 3)))
    bn.running_var.copy_(x.var((0, 2, 3), unbiased=False))


def _numpy(out) -> list[np.ndarray]:
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in _numpy(item)]
    return [out.detach().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)]


def _reference(net: torch.nn.Module, x: torch.Tensor, end2end: bool) -> list[np.ndarray]:
    """Eval heads return ``(export outputs, raw predictions)``; the semantic heads return stride-4 logits, which
    exports upsample to the input size (ONNX and OpenVINO then reduce them to a class map)."""
    net.end2end = end2end  # the exporter picks the one-to-many head unless nms=False
    with torch.no_grad():
        out = net(x)
    if isinstance(out, (tuple, list)):
        return _numpy(out[0])
    stride = net.model[-1].feature_stride
    return [F.interpolate(out, scale_factor=stride, mode="bilinear", align_corners=False).numpy()]


def _errors(expected: np.ndarray, got: np.ndarray, nc: int) -> np.ndarray:
    """``(B, parts)``: the largest error of each image's output parts, in units of that part's scale.

    Detection tensors ``(B, 4 + nc + extra, anchors)``: boxes relative to the image's largest coordinate, class
    scores absolute (probabilities), mask coefficients relative to the largest; other tensors: one part, relative.
    Per image because float32 conditioning is per input (measured: one Generalist YOLO image ~500× worse)."""
    assert got.shape == expected.shape, (got.shape, expected.shape)
    b = expected.shape[0]
    e = expected.astype(np.float64).reshape(b, expected.shape[1] if expected.ndim == 3 else 1, -1)
    diff = np.abs(e - got.astype(np.float64).reshape(e.shape))

    def relative(rows: slice) -> np.ndarray:
        return diff[:, rows].max((1, 2)) / np.abs(e[:, rows]).max((1, 2))

    if expected.ndim != 3 or not nc:
        return relative(slice(None))[:, None]
    parts = [relative(slice(0, 4)), diff[:, 4 : 4 + nc].max((1, 2))]
    if e.shape[1] > 4 + nc:
        parts.append(relative(slice(4 + nc, None)))
    return np.stack(parts, 1)


def _check_class_map(exact: list, torch32: list, got: list) -> tuple[float, float, float]:
    """The uint8 class map may differ from the float64 argmax only at near-ties: where the two best logits are
    closer than RATIO × PyTorch fp32's own logit error. Returns (fraction of differing pixels, fp32 error, nan)."""
    (logits,), (logits32,), (classes,) = exact, torch32, got
    assert classes.shape == (logits.shape[0], *logits.shape[2:]), classes.shape
    scale = np.abs(logits).max()
    noise = np.abs(logits - logits32).max()
    top2 = np.sort(logits, axis=1)[:, -2:]  # (B, 2, H, W)
    differ = classes != logits.argmax(1)
    gap = (top2[:, 1] - top2[:, 0])[differ]
    assert (gap <= RATIO * noise + FLOOR * scale).all() and differ.mean() < 0.01, (differ.mean(), gap.max())
    return float(differ.mean()), float(noise / scale), float("nan")


def _ort(path: str, x: torch.Tensor) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})


def _report(name: str, fmt: str, runtime: float, reference: float, ratio: float) -> None:
    """One matrix row on stdout (``pytest -s``); a class map's ``runtime`` is its fraction of differing pixels."""
    result = f"pixels differing {runtime:.1e}" if np.isnan(ratio) else f"runtime {runtime:.1e}  ratio {ratio:.1f}"
    print(f"\nEXPORT-MATRIX {name:<24} {fmt:<26} PyTorch fp32 {reference:.1e}  {result}")


@pytest.fixture(scope="module")
def zoo():
    """``zoo(name)`` → that model's :class:`Case`, built once per module."""
    cache = {}

    def get(name: str) -> Case:
        if name not in cache:
            cache[name] = Case(name)
        return cache[name]

    return get


@pytest.fixture
def no_telemetry(monkeypatch):
    """OpenVINO's converter asks ``openvino_telemetry`` with ``disable_in_ci=True``: ``CI=true`` declines."""
    monkeypatch.setenv("CI", "true")
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # the converter then uses its own no-op stub
        return
    assert OptInChecker().check(enable_opt_in_dialog=False, disable_in_ci=True) is ConsentCheckResult.DECLINED


# --- the matrix ----------------------------------------------------------------------------------------------


def test_matrix_covers_every_shipped_family():
    """A new model YAML without a row here fails (Gold-YOLO ships one file per scale: goldyolo-n stands in)."""
    covered = {family for family, _ in MODELS.values()}
    missing = [
        n for n in model_yaml_names() if n not in covered and not n.startswith("goldyolo-") and n not in STANDS_IN
    ]
    assert set(STANDS_IN.values()) <= covered
    assert not missing


@pytest.mark.parametrize("name", MODELS)
def test_onnx_static(zoo, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case = zoo(name)
    f = case.export(format="onnx", dynamic=False)
    x = case.images[:1]
    _report(name, "onnx", *case.check(x, _ort(f, x)))


@pytest.mark.parametrize("name", MODELS)
def test_onnx_dynamic_two_sizes(zoo, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case = zoo(name)
    f = case.export(format="onnx", dynamic=True)
    second = SECOND_SIZE[case.size]
    for x in (case.images[:2], F.interpolate(case.images[:2], size=(second, second), mode="bilinear")):
        _report(name, f"onnx dynamic b2 {x.shape[-1]}px", *case.check(x, _ort(f, x)))


@pytest.mark.parametrize("name", ALL_FORMATS)
def test_torchscript(zoo, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case = zoo(name)
    f = case.export(format="torchscript")
    x = case.images[:1]
    with torch.no_grad():
        got = _numpy(torch.jit.load(f)(x))
    _report(name, "torchscript", *case.check(x, got))


@pytest.mark.parametrize("name", ALL_FORMATS)
def test_openvino(zoo, name, tmp_path, monkeypatch, no_telemetry):
    ov = pytest.importorskip("openvino")
    monkeypatch.chdir(tmp_path)
    case = zoo(name)
    f = case.export(format="openvino")
    xml = next(Path(f).glob("*.xml"))
    # f32 explicitly: on CPUs with bf16/AMX OpenVINO's default inference precision is bf16
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    compiled = ov.Core().compile_model(str(xml), "CPU", config)
    x = case.images[:1]
    result = compiled(x.numpy())
    _report(name, "openvino", *case.check(x, [result[o] for o in compiled.outputs]))


def test_onnx_end2end_rows_match(zoo, tmp_path, monkeypatch):
    """``nms=False``: the one-to-one head's top-k rows ``x1 y1 x2 y2 score class`` match as a set.

    At 64 px k = 84 (the anchor count) of the 84 × 80 (anchor, class) pairs; near-ties at that cut may order
    differently, so each of the best two thirds of the float64 rows is matched to the nearest row of its class."""
    monkeypatch.chdir(tmp_path)
    case = zoo("gyolo-n.yaml")
    f = case.export(format="onnx", nms=False)
    x = case.images[:1]
    (exact,), (torch32,) = case.references(x, end2end=True)
    case.yolo.model.end2end = False
    (got,) = _ort(f, x)
    assert got.shape == exact.shape == (1, 84, 6)
    best = exact[0][np.argsort(-exact[0][:, 4])[:56]]  # (56, 6)

    def row_errors(rows: np.ndarray) -> np.ndarray:
        """(box, score) error of the nearest row of the same class for each of ``best``."""
        same_class = rows[None, :, 5] == best[:, None, 5]  # (56, 84)
        assert same_class.any(1).all()
        distance = np.where(same_class, np.abs(best[:, None, :5] - rows[None, :, :5]).max(-1), np.inf)
        diff = np.abs(rows[distance.argmin(1)] - best)  # (56, 6)
        return np.array([diff[:, :4].max() / np.abs(best[:, :4]).max(), diff[:, 4].max()])

    runtime, reference = row_errors(got[0]), row_errors(torch32[0])
    ratio = (runtime / (reference + FLOOR / RATIO)).max()
    _report("gyolo-n.yaml", "onnx end2end (nms=False)", runtime.max(), reference.max(), ratio)
    assert (runtime <= RATIO * reference + FLOOR).all(), (runtime, reference)


def _first_conv(module: torch.nn.Module) -> torch.nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))


def test_parity_criterion_catches_a_0_1_percent_weight_change(zoo, tmp_path, monkeypatch):
    """The criterion is not vacuous: one conv's weights ×1.001 in the PyTorch model fail it (YOLOv12, GYOLO)."""
    monkeypatch.chdir(tmp_path)
    for name, layer in (("yolov12n.yaml", 8), ("gyolo-n.yaml", 13)):
        case = zoo(name)
        f = case.export(format="onnx")
        x = case.images[:1]
        got = _ort(f, x)
        case.check(x, got)
        convs = [_first_conv(net.model[layer]) for net in (case.yolo.model, case.net64)]
        saved = [conv.weight.clone() for conv in convs]
        with torch.no_grad():
            for conv in convs:
                conv.weight.mul_(1.001)
            try:
                with pytest.raises(AssertionError):
                    case.check(x, got)
            finally:
                for conv, weight in zip(convs, saved):
                    conv.weight.copy_(weight)


# --- the early export check -------------------------------------------------------------------------------------


def _block(modules: list[torch.nn.Module], formats: set[str]) -> type:
    """Give ``modules`` (one class) a synthetic subclass of their class that declares ``formats`` unsupported."""
    (cls,) = {type(m) for m in modules}
    blocked = type(f"No{cls.__name__}", (cls,), {"unsupported_export_formats": frozenset(formats)})
    for m in modules:
        m.__class__ = blocked
    return blocked


# Measured with pnnx 20260526 / ncnn 1.0.20261020 (not installed here): these exports "succeed", then ncnn cannot
# load the model (turbo attention with area > 1, layer 6: a Reshape without target shape; PST with top-k: no TopK
# layer). The other models (yolov12n-cls: turbo attention with area 1) convert and match.
NCNN_REFUSED = {
    "yolov12n-turbo.yaml": "AreaAttentionTurbo in layer 6 (A2C2fTurbo) does not support",
    "yolov12n-seg.yaml": "AreaAttentionTurbo in layer 6 (A2C2fTurbo) does not support",
    "yolo11n-pst.yaml": "PyramidSparseAttention in layer 13 (PST), layer 16 (PST) does not support",
    "yolov12n-pst.yaml": "PyramidSparseAttention in layer 11 (PST), layer 14 (PST) does not support",
    "yolo11n-cls-pst.yaml": "PyramidSparseAttention in layer 8 (PST) does not support",
    "yolov12n-pose.yaml": "AreaAttentionTurbo in layer 6 (A2C2fTurbo) does not support",
    "yolov12n-obb.yaml": "AreaAttentionTurbo in layer 6 (A2C2fTurbo) does not support",
    "yolov12n-pst-pose.yaml": "PyramidSparseAttention in layer 11 (PST), layer 14 (PST) does not support",
    "yolov12n-pst-obb.yaml": "PyramidSparseAttention in layer 11 (PST), layer 14 (PST) does not support",
    "r18-pst-n.yaml": "PyramidSparseAttention in layer 9 (PST), layer 12 (PST) does not support",
    "r18-cls-pst-n.yaml": "PyramidSparseAttention in layer 5 (PST) does not support",
}


def test_every_declared_format_is_a_stock_format():
    """``unsupported_export_formats`` on our classes (a frozenset, or a property of the settings) names formats
    the exporter knows."""
    from ultralytics.engine.exporter import export_formats

    from ultra_ext.integration.registry import model_classes

    known = set(export_formats()["Argument"])
    declared = {}
    for cls in model_classes():
        value = inspect.getattr_static(cls, "unsupported_export_formats", None)
        if value is not None:
            declared[cls.__name__] = value
            assert isinstance(value, (frozenset, property)), cls.__name__
            assert not isinstance(value, frozenset) or value <= known, (cls.__name__, value)
    assert sorted(declared) == ["AreaAttentionTurbo", "PyramidSparseAttention"]  # properties of area / top-k
    for name in NCNN_REFUSED:
        for module in YOLO(name).model.modules():
            assert getattr(module, "unsupported_export_formats", frozenset()) <= known


@pytest.mark.parametrize("name", NCNN_REFUSED)
def test_ncnn_is_refused_before_the_exporter_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = YOLO(name)
    with pytest.raises(ValueError, match=re.escape(NCNN_REFUSED[name] + " 'ncnn' export")):
        model.export(format="ncnn", imgsz=MODELS[name][1])
    assert list(tmp_path.iterdir()) == []  # nothing exported, nothing converted
    export_check.check_export(model.model, "onnx")  # the other formats pass


def test_ncnn_check_passes_the_other_families_and_coarse_only_pst():
    for name in sorted(MODELS.keys() - NCNN_REFUSED.keys()):
        export_check.check_export(YOLO(name).model, "ncnn")
    model = YOLO("yolo11n-pst.yaml")
    assert set_pst_options(model, topk=0) == 2  # coarse-only PST has no top-k: ncnn converts it (measured)
    export_check.check_export(model.model, "ncnn")


def test_check_names_the_blocking_module_its_layer_and_the_format():
    model = YOLO("yolov12n.yaml").model
    layer = model.model[6]  # A2C2f: two groups of two AreaAttentionBlocks; block one attention in each group
    name = _block([layer.m[0][0].attn, layer.m[1][0].attn], {"engine", "ncnn"}).__name__
    assert name == "NoAreaAttention"
    export_check.check_export(model, "onnx")  # other formats pass
    for fmt in ("engine", "TensorRT", "trt"):  # the exporter's aliases resolve as it resolves them
        with pytest.raises(ValueError) as info:
            export_check.check_export(model, fmt)
        message = str(info.value)
        assert "NoAreaAttention in layer 6 (A2C2f) does not" in message and "format='engine'" in message, message
    assert export_check.blocking_layers(model, "ncnn") == [(6, "A2C2f", "NoAreaAttention")] * 2  # named once


def test_stock_exporter_fails_early_with_the_check(tmp_path, monkeypatch):
    """``YOLO.export`` raises our error before the exporter runs (no file, no device selection, no converter)."""
    from ultralytics.engine.exporter import Exporter

    assert hasattr(Exporter.__call__, "ultra_ext_stock")  # installed when the YOLO class loaded
    monkeypatch.chdir(tmp_path)
    model = YOLO("goldyolo-n.yaml")
    blocked = model.model.model[-1]  # the head: a top-level layer
    _block([blocked], {"ncnn", "engine"})
    for fmt in ("ncnn", "engine"):
        with pytest.raises(ValueError, match=rf"NoEfficientDecoupledDetect in layer {blocked.i} does not .*'{fmt}'"):
            model.export(format=fmt, imgsz=64)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_engine_without_gpu_fails_at_device_selection(tmp_path, monkeypatch):
    """``format=engine`` on a CPU-only machine: Ultralytics' own error (device 0), before any of our modules run."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="CUDA 'device=0'"):
        YOLO("yolov12n.yaml").export(format="engine", imgsz=64)


def test_deactivate_restores_the_stock_exporter():
    from ultralytics.engine.exporter import Exporter

    import ultra_ext

    wrapped = Exporter.__call__
    ultra_ext.deactivate()
    try:
        assert Exporter.__call__ is wrapped.ultra_ext_stock
    finally:
        ultra_ext.activate()
    assert hasattr(Exporter.__call__, "ultra_ext_stock")
