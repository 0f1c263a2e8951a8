"""Helpers shared by the benchmark scripts: model building, round-robin timing, ONNX export, ORT sessions, tables.

Importing it puts the repository root first on ``sys.path`` (so the scripts measure the working tree, not an older
installed copy of ultra_ext) and sets Ultralytics' offline defaults: import it before ultralytics or ultra_ext.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if (REPO / "ultra_ext" / "__init__.py").exists():  # measure the working tree, not an older installed copy
    sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

DEFAULT_DATA = [REPO.parent / "shared" / "datasets" / "raccoon" / "data.yaml",
                REPO / "ultra_ext" / "data" / "raccoon-mini" / "data.yaml"]  # first that exists: --data default
LATENCY_RATIOS = [  # key, header: the ratio columns every latency table prints
    ("params_fused", "fused params"), ("gflops_conv_fused", "GFLOPs conv"), ("gflops_attn_fused", "GFLOPs +attn"),
    ("pt_ms", "PT med"), ("pt_min_ms", "PT min"), ("ort_ms", "ORT med"), ("ort_min_ms", "ORT min"),
]

__all__ = [
    "COST_LATENCY_COLUMNS",
    "DEFAULT_DATA",
    "LATENCY_RATIOS",
    "REPO",
    "build",
    "export_onnx",
    "format_profile",
    "fused_eval",
    "interleaved_ms",
    "onnx_node_count",
    "ort_profile",
    "ort_session",
    "portable_data",
    "randomize",
    "resolve_data",
    "table",
]


def build(yaml: str, task: bool = False):
    """An Ultralytics ``DetectionModel`` from a model YAML name or path (ultra_ext activated).

    ``task=True``: the model class Ultralytics' task map picks for the YAML instead (``YOLO(yaml).model``:
    ``SegmentationModel``, ``SemanticSegmentationModel``, ultra_ext's ``GeneralistModel``, ...).
    """
    import ultra_ext  # noqa: F401  (registers ultra_ext's YAMLs and modules)
    from ultralytics.nn.tasks import DetectionModel

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


def fused_eval(model: torch.nn.Module) -> torch.nn.Module:
    """A fused (Conv+BN folded, RepConv/RepVGG merged) fp32 eval copy; ``model`` is left untouched."""
    m = copy.deepcopy(model).float().eval()
    return m.fuse(verbose=False)


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
    """Fused fp32 export as Ultralytics does it (Detect heads in export mode, opset 18); True if onnxslim ran.

    Output ``output0``: ``(1, 4 + nc, A)`` decoded boxes and scores, the tensor Ultralytics' ONNX export yields.
    Models with more outputs (segmentation: ``+ proto``) need one name each in ``output_names``.
    """
    from ultralytics.nn.modules import Detect

    m = fused_eval(model)
    for mod in m.modules():
        if isinstance(mod, Detect):  # subclasses too (ultra_ext's EfficientDecoupledDetect)
            mod.export, mod.format = True, "onnx"
    x = torch.zeros(1, 3, imgsz, imgsz)
    with torch.no_grad():
        torch.onnx.export(m, (x,), str(path), opset_version=18, input_names=["images"], output_names=list(output_names),
                          do_constant_folding=True, dynamo=False)
    try:
        import onnx
        import onnxslim

        onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))
        return True
    except ImportError:
        return False


def ort_session(path: Path, threads: int, profile_prefix: str | None = None, spin: bool = True, ftz: bool = False):
    """ONNX Runtime CPU session: ``threads`` intra-op threads, sequential, all graph optimisations.

    ``spin=False`` stops idle intra-op threads busy-waiting for the next op. ORT spins by default; on a shared
    machine, and when several sessions are timed round-robin, one session's spinning thread takes a core from
    whatever runs next (measured on 2 busy cores: yolo11n 236 ms median spinning vs 106 ms not).
    ``profile_prefix``: write an ORT per-node JSON profile (``session.end_profiling()`` returns its file name).
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
    if profile_prefix:
        so.enable_profiling, so.profile_file_prefix = True, profile_prefix
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    if ftz:
        # The option covers ORT's pool threads, but the calling thread runs a share of every op too, and its
        # flag did not survive later work in the same process (exports, other sessions): set it here, again.
        torch.set_flush_denormal(True)
    return session


def onnx_node_count(path: Path) -> int:
    """Number of nodes in the ONNX graph at ``path``."""
    import onnx

    return len(onnx.load(str(path)).graph.node)


def ort_profile(path: Path, x, threads: int, runs: int, prefix: Path, spin: bool, ftz: bool = False) -> dict:
    """Per-node ORT profile over ``3 + runs`` runs of input ``x``: microseconds by operator type and by YAML layer.

    Layer: the ``model.<i>`` component of the node name (TorchScript export names nodes after module paths);
    ``other`` for nodes the exporter named otherwise (e.g. the fused post-processing of the Detect output).
    """
    s = ort_session(path, threads, profile_prefix=str(prefix), spin=spin, ftz=ftz)
    for _ in range(3 + runs):
        s.run(None, {"images": x})
    events = json.loads(Path(s.end_profiling()).read_text())
    by_op, by_layer = defaultdict(float), defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        by_op[e["args"].get("op_name", "?")] += e["dur"]
        parts = e["name"].split("/")
        layer = next((p.split(".")[1] for p in parts if p.startswith("model.") and p.split(".")[1].isdigit()), "other")
        by_layer[layer] += e["dur"]
    return {"by_op": dict(by_op), "by_layer": dict(by_layer), "runs": 3 + runs}


def format_profile(rows: list[dict], top: int = 8) -> str:
    """Summary lines of the ``ort_profile`` dicts stored under ``row["ort_profile"]`` (ms per inference)."""
    out = []
    for r in rows:
        p = r.get("ort_profile")
        if not p:
            continue
        total = sum(p["by_op"].values())
        n_runs = p["runs"]

        def ms(us: float, n_runs=n_runs) -> float:  # per inference
            return us / n_runs / 1e3

        ops = sorted(p["by_op"].items(), key=lambda kv: -kv[1])[:top]
        layers = sorted(p["by_layer"].items(), key=lambda kv: -kv[1])[:top]
        out.append(f"{r['name']}: ORT kernel time {ms(total):.1f} ms/inference (profiled, single-session)")
        out.append("  by op:    " + ", ".join(f"{k} {ms(v):.1f} ({v / total:.0%})" for k, v in ops))
        out.append("  by layer: " + ", ".join(f"{k} {ms(v):.1f} ({v / total:.0%})" for k, v in layers))
    return "\n".join(out)


def resolve_data(data: Path | None, candidates: list[Path]) -> Path:
    """``data`` if given, else the first existing path of ``candidates``."""
    if data is not None:
        return data.resolve()
    for d in candidates:
        if d.exists():
            return d
    raise FileNotFoundError(f"no dataset: pass --data (looked for {', '.join(map(str, candidates))})")


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
    fmt = lambda cells: "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([fmt(header), "-" * (sum(widths) + 2 * len(widths) - 2), *map(fmt, body)])


COST_LATENCY_COLUMNS = [  # key, header, format: the columns every benchmark table starts with
    ("params", "params", "{:,}"),
    ("params_fused", "fused params", "{:,}"),
    ("gflops_conv_fused", "GFLOPs conv", "{:.2f}"),
    ("gflops_attn_fused", "GFLOPs +attn", "{:.2f}"),
    ("pt_ms", "PT ms med", "{:.1f}"),
    ("pt_min_ms", "PT ms min", "{:.1f}"),
    ("ort_ms", "ORT ms med", "{:.1f}"),
    ("ort_min_ms", "ORT ms min", "{:.1f}"),
]
