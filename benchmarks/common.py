"""Helpers shared by the benchmark scripts: model building, round-robin timing, ONNX export, ORT sessions, tables.

The generic helpers live in :mod:`ultra_ext.utils.benchmark` (``python -m ultra_ext.bench`` uses them too) and are
re-exported here under the same names. Importing this module puts the repository root first on ``sys.path`` (so the
scripts measure the working tree, not an older installed copy of ultra_ext) and sets Ultralytics' offline
defaults before it imports ultra_ext (and with it ultralytics): import it before ultralytics or ultra_ext.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if (REPO / "ultra_ext" / "__init__.py").exists():  # measure the working tree, not an older installed copy
    sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

from ultra_ext.utils.benchmark import (  # noqa: E402  (after the sys.path/offline preamble)
    build,
    export_onnx,
    format_profile,
    fused_eval,
    inference_head,
    interleaved_ms,
    model_outputs,
    onnx_checked_session,
    onnx_node_count,
    ort_profile,
    ort_session,
    portable_data,
    randomize,
    resolve_data,
    rss_step_peak,
    table,
)

DEFAULT_DATA = [
    REPO.parent / "shared" / "datasets" / "raccoon" / "data.yaml",
    REPO / "ultra_ext" / "data" / "raccoon-mini" / "data.yaml",
]  # first that exists: --data default
LATENCY_RATIOS = [  # key, header: the ratio columns every latency table prints
    ("params_fused", "fused params"),
    ("gflops_conv_fused", "GFLOPs conv"),
    ("gflops_attn_fused", "GFLOPs +attn"),
    ("pt_ms", "PT med"),
    ("pt_min_ms", "PT min"),
    ("ort_ms", "ORT med"),
    ("ort_min_ms", "ORT min"),
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
    "inference_head",
    "interleaved_ms",
    "model_outputs",
    "onnx_checked_session",
    "onnx_node_count",
    "ort_profile",
    "ort_session",
    "portable_data",
    "randomize",
    "resolve_data",
    "rss_step_peak",
    "table",
]


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
