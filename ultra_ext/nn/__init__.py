"""ultra_ext layers: one file per model family, shared attention pieces and the backend config.

Class import paths here are a public, stable API: Ultralytics checkpoints pickle modules by import path.
"""

from .attention import AreaSplitError, attend, backend_report
from .config import ATTN_BACKENDS, attn_backend, get_attn_backend, set_attn_backend
from .efficientrep import BepC3, BiasConv, BottleRep, RepVGGBlock, SimConv, SimCSPSPPF, SimSPPF
from .generalist import (
    GeneralistDetect,
    GeneralistHead,
    GeneralistSegment,
    GeneralistSemanticSegment,
    RepNCSPELAN4B,
    ScaledRepNCSPELAN4,
    ScaledSPPELAN,
)
from .goldyolo import (
    EfficientDecoupledDetect,
    HighStageAlign,
    HighStageFusion,
    Injection,
    LocalFusion3,
    LowStageAlign,
    LowStageFusion,
    PoolConcat,
)
from .pst import PST, PyramidSparseAttention, PyramidSparseBlock, set_pst_options
from .shapes import MapSizeError
from .yolov12 import A2C2f, A2C2fTurbo, AreaAttention, AreaAttentionBlock, AreaAttentionBlockTurbo, AreaAttentionTurbo

__all__ = [
    "ATTN_BACKENDS",
    "PST",
    "A2C2f",
    "A2C2fTurbo",
    "AreaAttention",
    "AreaAttentionBlock",
    "AreaAttentionBlockTurbo",
    "AreaAttentionTurbo",
    "AreaSplitError",
    "BepC3",
    "BiasConv",
    "BottleRep",
    "EfficientDecoupledDetect",
    "GeneralistDetect",
    "GeneralistHead",
    "GeneralistSegment",
    "GeneralistSemanticSegment",
    "HighStageAlign",
    "HighStageFusion",
    "Injection",
    "LocalFusion3",
    "LowStageAlign",
    "LowStageFusion",
    "MapSizeError",
    "PoolConcat",
    "PyramidSparseAttention",
    "PyramidSparseBlock",
    "RepNCSPELAN4B",
    "RepVGGBlock",
    "ScaledRepNCSPELAN4",
    "ScaledSPPELAN",
    "SimCSPSPPF",
    "SimConv",
    "SimSPPF",
    "attend",
    "attn_backend",
    "backend_report",
    "get_attn_backend",
    "set_attn_backend",
    "set_pst_options",
]
