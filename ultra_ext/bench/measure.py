"""Measurements of ``ultra-ext bench`` (:mod:`ultra_ext.bench.runner`).

Model building with seeded random weights, round-robin CPU timing, ONNX export as Ultralytics does it, ONNX
Runtime sessions and the ORT-vs-PyTorch output difference, dataset copies for training runs, plain-text tables,
and the peak memory of one training step.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import statistics
import time
from pathlib import Path

import torch

__all__ = [
    "build",
    "export_onnx",
    "fused_eval",
    "inference_head",
    "interleaved_ms",
    "iter_tensors",
    "model_outputs",
    "onnx_checked_session",
    "ort_session",
    "output_rel_diff",
    "portable_data",
    "randomize",
    "rss_step_peak",
    "spread_scores",
    "synthetic_batch",
    "table",
    "train_step_peak",
]


def build(yaml: str, task: bool = False):
    """An Ultralytics ``DetectionModel`` from a model YAML name or path (ultra_ext activated).

    ``task=True``: the model class Ultralytics' task map picks for the YAML instead (``YOLO(yaml).model``:
    ``SegmentationModel``, ``SemanticSegmentationModel``, ``ClassificationModel``, ultra_ext's
    ``GeneralistModel``, ...).
    """
    from ultralytics.nn.tasks import DetectionModel

    from ..integration import activate

    activate()  # our YAMLs and modules

    if task:
        from ultralytics import YOLO

        return YOLO(yaml).model
    return DetectionModel(yaml, verbose=False)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Variance-preserving random weights and BN statistics (seeded), in place; returns ``model``.

    The default init (attention convs std 0.02, BN identity, zeroed prediction convs) leaves whole branches so
    small that fp32 outputs of different kernels or runtimes round to the same numbers; these weights make parity
    columns mean something. Latency does not depend on the values.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * m.weight[0].numel() ** -0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
    return model


def spread_scores(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Standardise every one-to-one class logit map over the image ``x`` (mean 0, std 1 per class), in place.

    For the ORT parity of NMS-free heads only (values do not change latency). With :func:`randomize` weights the
    class logits barely vary across the image, so the candidates' scores nearly tie at the top-k boundary and fp32
    noise decides which detections ORT and PyTorch keep (yolo26n at 64 px: 13 of 84 rows differed). Spread out,
    the scores rarely tie and the two top-k selections hold the same detections. No-op without a one-to-one head.
    """
    import torch.nn.functional as F

    convs = [seq[-1] for seq in getattr(model.model[-1], "one2one_cv3", None) or ()]
    inputs = {}
    hooks = [c.register_forward_hook(lambda m, a, _: inputs.__setitem__(m, a[0])) for c in convs]
    training = model.training
    with torch.no_grad():
        if convs:
            model.eval()(x)
        for c in convs:
            y = F.conv2d(inputs[c], c.weight)  # (1, nc, h, w) logits without the bias
            mean, std = y.mean((0, 2, 3)), y.std((0, 2, 3))
            c.weight /= std[:, None, None, None]
            c.bias.copy_(-mean / std)
    model.train(training)
    for h in hooks:
        h.remove()


def fused_eval(model: torch.nn.Module) -> torch.nn.Module:
    """A fused (Conv+BN folded, RepConv/RepVGG merged) fp32 eval copy; ``model`` is left untouched."""
    m = copy.deepcopy(model).float().eval()
    return m.fuse(verbose=False)


def inference_head(model: torch.nn.Module, one2many: bool = False) -> str:
    """Select the inference branch of an end-to-end head (call before fusing, which drops the other branch).

    Returns ``"one2one"`` (NMS-free top-k, the published setting of such heads), ``"one2many"`` (decoded boxes
    and scores that still need NMS: every head without a one-to-one branch, or ``one2many=True``) or ``"-"``
    (no detection head: classification, semantic segmentation).
    """
    head = model.model[-1]
    if getattr(head, "one2one_cv2", None) is None:
        return "one2many" if hasattr(head, "cv2") else "-"
    model.end2end = not one2many
    return "one2many" if one2many else "one2one"


def model_outputs(y) -> list[torch.Tensor]:
    """The tensors a fused eval model's PyTorch forward yields, in the order of its ONNX outputs.

    ``Detect``: ``(y, raw)`` → ``[y]``; ``Segment``: ``((y, proto), raw)`` → ``[y, proto]``; the generalist head:
    ``((det, proto, semantic), raw)`` → all three; ``Classify``: ``(probs, logits)`` → ``[probs]``; a semantic
    head: the logits tensor itself.
    """
    if isinstance(y, torch.Tensor):
        return [y]
    return list(y[0]) if isinstance(y[0], (tuple, list)) else [y[0]]


def interleaved_ms(fns: list, runs: int, warmup: int) -> list[tuple[float, float]]:
    """(median, min) milliseconds of each zero-argument callable, timed round-robin in rotating order.

    Rotation spreads load from other processes over all callables alike, instead of penalising whichever one
    happened to run during a busy stretch.
    """
    for f in fns:
        for _ in range(warmup):
            f()
    times = [[] for _ in fns]
    for r in range(runs):
        for j in range(len(fns)):
            i = (j + r) % len(fns)
            t = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - t)
    return [(statistics.median(t) * 1e3, min(t) * 1e3) for t in times]


def export_onnx(model: torch.nn.Module, imgsz: int, path: Path, output_names: tuple[str, ...] = ("output0",)) -> bool:
    """Fused fp32 export as Ultralytics does it (heads in export mode, opset 18); True if onnxslim ran.

    Output ``output0``: ``(1, 4 + nc, A)`` decoded boxes and scores, the tensor Ultralytics' ONNX export yields
    (``Classify``: ``(1, nc)`` probabilities). Models with more outputs (segmentation: ``+ proto``) need one name
    each in ``output_names`` (:func:`model_outputs` of the fused model's forward gives their number).
    """
    from ultralytics.nn.modules import Classify, Detect

    m = fused_eval(model)
    for mod in m.modules():
        if isinstance(mod, Detect):  # subclasses too (ultra_ext's EfficientDecoupledDetect)
            mod.export, mod.format = True, "onnx"
        elif isinstance(mod, Classify):  # probabilities only, not the (probs, logits) pair of eval mode
            mod.export = True
    x = torch.zeros(1, 3, imgsz, imgsz)
    with torch.no_grad():
        torch.onnx.export(
            m,
            (x,),
            str(path),
            opset_version=18,
            input_names=["images"],
            output_names=list(output_names),
            do_constant_folding=True,
            dynamo=False,
        )
    try:
        import onnx
        import onnxslim

        onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))
        return True
    except ImportError:
        return False


def onnx_checked_session(
    model: torch.nn.Module, x: torch.Tensor, path: Path, reference: list, threads: int, spin: bool = False, ftz=False
):
    """Export ``model`` with one ONNX output per PyTorch output (``output0``, ``output1``, ...), open an ORT session
    and run ``x``; return ``(session, outputs, onnxslim ran)``.

    ``reference``: the fused PyTorch model's own outputs on ``x`` (:func:`model_outputs`, as numpy). Raises
    ``ValueError`` when the ONNX output names or shapes differ from them.
    """
    names = tuple(f"output{i}" for i in range(len(reference)))
    slim = export_onnx(model, x.shape[-1], path, output_names=names)
    session = ort_session(path, threads, spin=spin, ftz=ftz)
    out = session.run(None, {"images": x.numpy()})
    got = [o.name for o in session.get_outputs()]
    if got != list(names) or any(o.shape != p.shape for o, p in zip(out, reference)):
        raise ValueError(f"outputs {got} {[o.shape for o in out]} != PyTorch {[p.shape for p in reference]}")
    return session, out, slim


def output_rel_diff(out, ref, top_k: bool = False, tie: float = 1e-6) -> float:
    """max |out − ref| over max |ref| of one output (numpy arrays of one shape).

    ``top_k``: ``(1, k, 6 + ...)`` NMS-free detections ``[box, score, class, ...]``, the k best candidates. Two
    runtimes may list equal scores in another order, and keep different candidates where several tie with the
    k-th score. So each row is compared with its nearest row of the other output, both ways, and rows whose score
    is within ``tie`` of their output's lowest selected score are left out. Any other mismatch counts.
    """
    import numpy as np

    scale = float(np.abs(ref).max()) or 1.0
    if not top_k:
        return float(np.abs(out - ref).max()) / scale
    d = np.abs(out[0][:, None, :] - ref[0][None, :, :]).max(-1) / scale  # (k, k): row-to-row differences
    err = 0.0
    for rows, nearest in ((out[0], d.min(1)), (ref[0], d.min(0))):
        inside = rows[:, 4] - rows[:, 4].min() > tie
        err = max(err, float(nearest[inside].max(initial=0.0)))
    return err


def ort_session(path: Path, threads: int, spin: bool = True, ftz: bool = False):
    """ONNX Runtime CPU session: ``threads`` intra-op threads, sequential, all graph optimisations.

    ``spin=False`` stops idle intra-op threads busy-waiting for the next op. ORT spins by default; on a shared
    machine, and when several sessions are timed round-robin, one session's spinning thread takes a core from
    whatever runs next, which can double the next model's median.
    ``ftz=True`` flushes denormal floats to zero (``session.set_denormal_as_zero``, and for the calling thread
    ``torch.set_flush_denormal``, which then applies to torch ops on that thread too): x86 arithmetic on denormals
    is many times slower, and random weights can push attention logits so far apart that a sizeable share of the
    softmax outputs are denormal (a value artefact, not a property of the architecture).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if ftz:
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    if ftz:
        # The option covers ORT's pool threads, but the calling thread runs a share of every op too, and its
        # flag did not survive later work in the same process (exports, other sessions): set it here, again.
        torch.set_flush_denormal(True)
    return session










def portable_data(data: Path, tmp: Path) -> Path:
    """A copy of the dataset in ``tmp`` plus a data YAML with an absolute ``path:``, valid from any cwd.

    The copy keeps Ultralytics' ``labels/*.cache`` files out of the (shared, possibly read-only) dataset folder.
    """
    import yaml

    cfg = yaml.safe_load(data.read_text())
    root = Path(cfg.get("path") or data.parent)
    root = root if root.is_absolute() else (data.parent / root).resolve()
    dst = tmp / "dataset"
    for split in ("train", "val", "test"):
        if cfg.get(split):
            for sub in {str(cfg[split]), str(cfg[split]).replace("images", "labels", 1)}:
                if (root / sub).exists():
                    shutil.copytree(root / sub, dst / sub, dirs_exist_ok=True)
    cfg["path"] = str(dst)
    out = tmp / "data.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def table(header: list[str], body: list[list[str]], left: int = 2) -> str:
    """Plain-text table: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header), "-" * (sum(widths) + 2 * len(widths) - 2), *map(fmt, body)])


# ---------------------------------------------------------------------------------------------- training step

# Three boxes per image, normalised (cx, cy, w, h): large, small and a wide bar, so the assigner has positives
# on every stride. Their classes cycle through the model's classes.
_BOXES = ((0.5, 0.5, 0.4, 0.4), (0.25, 0.3, 0.12, 0.12), (0.7, 0.75, 0.4, 0.15))


def synthetic_batch(model: torch.nn.Module, task: str, batch: int, imgsz: int) -> dict:
    """A training batch of random images with :data:`_BOXES` targets, in the layout Ultralytics' collate gives.

    ``img`` ``(B, 3, S, S)``; detection targets flat over the batch: ``batch_idx`` ``(N,)``, ``cls`` ``(N, 1)``,
    ``bboxes`` ``(N, 4)`` (``obb``: ``(N, 5)`` with an angle); ``segment``/``generalist``: overlapping instance
    masks ``masks`` ``(B, S/4, S/4)`` (pixel = instance number, 0 none) and ``sem_masks`` (class ids) at the
    default ``mask_ratio`` 4; ``pose``: ``keypoints`` ``(N, K, D)``; ``semantic``: ``semantic_mask`` ``(B, S, S)``
    class ids; ``classify``: ``cls`` ``(B,)``.
    """
    if task not in ("detect", "segment", "generalist", "semantic", "pose", "obb", "classify"):
        raise ValueError(f"no synthetic targets for task {task!r}")
    g = torch.Generator().manual_seed(0)
    nc = int(getattr(model.model[-1], "nc", None) or len(getattr(model, "names", {}) or {0: 0}))
    out = {"img": torch.rand(batch, 3, imgsz, imgsz, generator=g)}
    if task == "classify":
        out["cls"] = torch.arange(batch) % nc
        return out
    boxes = torch.tensor(_BOXES * batch)  # (N, 4)
    cls = (torch.arange(len(boxes)) % nc).float()
    out["batch_idx"] = torch.arange(batch).repeat_interleave(len(_BOXES)).float()
    out["cls"] = cls[:, None]
    out["bboxes"] = torch.cat([boxes, torch.full((len(boxes), 1), 0.3)], 1) if task == "obb" else boxes
    if task == "pose":
        k, d = model.model[-1].kpt_shape
        kpt = torch.rand(len(boxes), k, d, generator=g)
        kpt[..., :2] = boxes[:, None, :2] + (kpt[..., :2] - 0.5) * boxes[:, None, 2:]  # inside each box
        if d == 3:
            kpt[..., 2] = 1.0  # visible
        out["keypoints"] = kpt
    if task in ("segment", "generalist", "semantic"):
        r = 1 if task == "semantic" else 4  # instance masks come at mask_ratio 4, semantic masks at full size
        s = imgsz // r
        inst = torch.zeros(batch, s, s)
        sem = torch.zeros(batch, s, s)
        for j, (cx, cy, w, h) in enumerate(_BOXES):
            x0, x1, y0, y1 = (round(v * s) for v in (cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2))
            inst[:, y0:y1, x0:x1] = j + 1
            sem[:, y0:y1, x0:x1] = cls[j]
        if task == "semantic":
            out["semantic_mask"] = sem.long()
        else:
            out["masks"], out["sem_masks"] = inst, sem
    return out


def _status_kb(key: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``: resident now, ``VmHWM``: resident high-water mark)."""
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(key + ":")).split()[1])


def train_step_peak(model: torch.nn.Module, task: str, batch: int, imgsz: int, device: str = "cpu") -> dict:
    """Peak memory one training step adds: forward in train mode + the model's own loss + backward.

    Run it in a fresh process, once: the figure is the step's peak above what the process held just before it.

    * CPU (Linux): the kernel's resident-set high-water mark is reset (``echo 5 > /proc/self/clear_refs``) after
      the model, the :func:`synthetic_batch` and the loss are built and the C heap's free pages are handed back
      (``malloc_trim``); ``peak_mb = VmHWM - VmRSS before the step``: everything the step touches (activations
      saved for backward, the loss's assigner tensors, parameter gradients, allocator caching), undisturbed by
      import- or build-time peaks. Where the reset is refused,
      ``ru_maxrss`` after the step minus the RSS before it, and ``valid`` says whether the step exceeded the
      earlier high-water mark (otherwise the figure is a lower bound).
    * CUDA: ``torch.cuda.max_memory_allocated`` over the step minus the memory allocated before it (tensors
      only, not the caching allocator's reserve).

    ``loss``: ``"model"`` when the task's own criterion ran, ``"surrogate"`` (sum of squared outputs) for a task
    :func:`synthetic_batch` has no targets for.
    Returns ``{"peak_mb", "step_s", "valid", "loss", "device"}``.
    """
    from ultralytics.cfg import get_cfg

    dev = torch.device(device)
    model.args = get_cfg()  # loss gains (box/cls/dfl, overlap_mask) the criteria read
    model = model.to(dev).train()
    kind = "model"
    try:
        model.criterion = model.init_criterion()
        data = {k: v.to(dev) for k, v in synthetic_batch(model, task, batch, imgsz).items()}
    except Exception:  # noqa: BLE001  (unknown task layout: still measure forward + backward)
        kind, data = "surrogate", {"img": torch.rand(batch, 3, imgsz, imgsz, device=dev)}

    def step():
        if kind == "model":
            loss, _ = model.loss(data)
            loss.sum().backward()
            return
        y = model(data["img"])
        leaves = [y] if isinstance(y, torch.Tensor) else list(iter_tensors(y))
        sum((t.float() ** 2).mean() for t in leaves).backward()

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize(dev)
        step_s = time.perf_counter() - t0
        return {
            "peak_mb": (torch.cuda.max_memory_allocated(dev) - before) / 2**20,
            "step_s": step_s,
            "valid": True,
            "loss": kind,
            "device": str(dev),
        }
    _malloc_trim()
    peak_mb, step_s, valid = rss_step_peak(step)
    return {"peak_mb": peak_mb, "step_s": step_s, "valid": valid, "loss": kind, "device": "cpu"}


def rss_step_peak(step) -> tuple[float, float, bool]:
    """Run ``step()`` once; return ``(MiB the resident set peaked above its size just before, seconds, valid)``.

    Linux: the kernel's resident-set high-water mark is reset first (``echo 5 > /proc/self/clear_refs``), so the
    figure is ``VmHWM - VmRSS before``: everything the step touches, undisturbed by earlier peaks. Where the reset
    is refused, ``ru_maxrss`` after the step minus the RSS before it, and ``valid`` says whether the step exceeded
    the earlier high-water mark (otherwise the figure is a lower bound).
    """
    import resource

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    before_peak, before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _status_kb("VmRSS")
    t0 = time.perf_counter()
    step()
    step_s = time.perf_counter() - t0
    peak = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak - before) / 1024, step_s, reset or peak > before_peak


def _malloc_trim() -> None:
    """Hand the C heap's free pages back to the kernel (glibc only; elsewhere a no-op).

    Building the model runs a forward pass (Ultralytics' stride probe) whose freed buffers glibc may keep resident;
    a step that reuses them would not raise the RSS, and the measured peak would come out too low.
    """
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def iter_tensors(y):
    """Every tensor in a nested tuple/list/dict of model outputs, depth first in order (dicts by insertion order)."""
    if isinstance(y, torch.Tensor):
        yield y
    elif isinstance(y, dict):
        for v in y.values():
            yield from iter_tensors(v)
    elif isinstance(y, (tuple, list)):
        for v in y:
            yield from iter_tensors(v)
