"""Honest cost reports: parameters and GFLOPs in both conventions, fused and unfused.

* **conv-only** — thop with functional counting off: convolutions and linear layers only. Published YOLOv12,
  PST and Gold-YOLO figures use this convention on the **fused** model (Conv+BN folded, RepVGG merged).
* **with attention** — thop's functional counting on: adds the attention matmuls (``q kᵀ`` and ``· v``,
  ``4·N²·C/area`` FLOPs per area-attention layer, softmax not counted). This is what the model really costs;
  Ultralytics' ``model.info()`` reports this figure (unfused).
"""

from __future__ import annotations

import contextlib
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

__all__ = ["Cost", "format_costs", "model_cost"]


@dataclass
class Cost:
    """Cost of one model at one input size (GFLOPs = 2 × GMACs, batch 1)."""

    name: str
    imgsz: int
    params: int  # training-time (unfused) parameters
    params_fused: int  # deployed parameters after model.fuse()
    gflops_conv: float  # unfused, conv-only
    gflops_conv_fused: float  # fused, conv-only: the papers' convention
    gflops_attn: float  # unfused, including attention matmuls
    gflops_attn_fused: float  # fused, including attention matmuls: the honest deployed figure

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _function_counting(enabled: bool):
    """Switch thop's counting of functional products (matmul, SDPA) on or off for the duration."""
    import importlib

    tp = importlib.import_module("thop.profile")  # the module: `thop.profile` the attribute is the function
    previous = tp._COUNTS_FUNCTIONS
    tp._COUNTS_FUNCTIONS = enabled and previous  # never claim counting a torch that cannot do it
    try:
        yield
    finally:
        tp._COUNTS_FUNCTIONS = previous


def _gflops(model: torch.nn.Module, imgsz: int, with_attention: bool) -> float:
    """thop GFLOPs (2 × MACs) of one full-size forward pass.

    Not Ultralytics' ``get_flops``: to save time it profiles thin proxy images and extrapolates linearly in the
    number of stride-32 cells, which is exact only when every layer's cost is proportional to that count. Gold-YOLO's
    stride-64 grid (``ceil(H/64)`` cells) breaks this: a 32-px proxy overstates that grid's cost 2×, so the full-size
    input is profiled instead.
    """
    import thop

    first = next(model.parameters())
    image = torch.zeros(1, first.shape[1], imgsz, imgsz, device=first.device, dtype=first.dtype)
    with _function_counting(with_attention):
        macs = thop.profile(model, inputs=[image], verbose=False)[0]
    if not macs:
        raise RuntimeError(f"thop could not profile {type(model).__name__} at imgsz={imgsz}")
    return macs / 1e9 * 2


def model_cost(model: torch.nn.Module, imgsz: int = 640, name: str = "") -> Cost:
    """Measure ``model`` (an Ultralytics ``DetectionModel`` or any model with ``fuse()``) at ``imgsz``.

    The model is not modified: fusion runs on a copy.
    """
    model = model.float().cpu()
    fused = deepcopy(model)
    if hasattr(fused, "fuse"):
        fused = fused.fuse(verbose=False) if "verbose" in fused.fuse.__code__.co_varnames else fused.fuse()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return Cost(
        name=name or getattr(model, "yaml", {}).get("yaml_file", type(model).__name__),
        imgsz=imgsz,
        params=count(model),
        params_fused=count(fused),
        gflops_conv=_gflops(model, imgsz, False),
        gflops_conv_fused=_gflops(fused, imgsz, False),
        gflops_attn=_gflops(model, imgsz, True),
        gflops_attn_fused=_gflops(fused, imgsz, True),
    )


def format_costs(costs: list[Cost]) -> str:
    """A plain-text table of :class:`Cost` rows."""
    head = (
        f"{'model':<24}{'imgsz':>6}{'params':>13}{'fused params':>14}"
        f"{'GFLOPs conv':>13}{'fused conv':>12}{'GFLOPs +attn':>14}{'fused +attn':>13}"
    )
    lines = [head, "-" * len(head)]
    for c in costs:
        lines.append(
            f"{c.name:<24}{c.imgsz:>6}{c.params:>13,}{c.params_fused:>14,}"
            f"{c.gflops_conv:>13.2f}{c.gflops_conv_fused:>12.2f}{c.gflops_attn:>14.2f}{c.gflops_attn_fused:>13.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``ultra-ext cost MODEL... [--imgsz N]``: parameters and GFLOPs of model YAMLs or checkpoints."""
    import argparse

    parser = argparse.ArgumentParser(prog="ultra-ext cost", description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="model YAML names or paths, or .pt checkpoints")
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args(argv)
    from ultralytics import YOLO

    from ..integration import activate

    activate()
    rows = [model_cost(YOLO(m).model, args.imgsz, name=Path(m).name) for m in args.models]
    print(format_costs(rows))
    print("conv: convolutions only (the papers' convention); +attn: including attention matmuls; fused: Conv+BN folded")
    return 0
