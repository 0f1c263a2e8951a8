"""ultra_ext layers: one file per model family, shared attention pieces and the backend config.

Class import paths here are a public, stable API: Ultralytics checkpoints pickle modules by import path.
"""

from .attention import AreaSplitError, attend, backend_report
from .config import ATTN_BACKENDS, attn_backend, get_attn_backend, set_attn_backend
from .yolov12 import A2C2f, A2C2fTurbo, AreaAttention, AreaAttentionBlock, AreaAttentionBlockTurbo, AreaAttentionTurbo

__all__ = [
    "ATTN_BACKENDS",
    "A2C2f",
    "A2C2fTurbo",
    "AreaAttention",
    "AreaAttentionBlock",
    "AreaAttentionBlockTurbo",
    "AreaAttentionTurbo",
    "AreaSplitError",
    "attend",
    "attn_backend",
    "backend_report",
    "get_attn_backend",
    "set_attn_backend",
]
