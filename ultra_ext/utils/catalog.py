"""The catalog of model YAMLs ultra_ext ships: family, task, scales, parameters per scale and the paper.

Parameters are counted on PyTorch's ``meta`` device (layers are built without memory or a forward pass), so the
whole catalog takes seconds; they are the training graph's counts at nc 80, what ``ultra-ext cost`` reports as
``params``. ``ultra-ext models`` prints it.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FAMILIES", "CatalogEntry", "catalog", "format_catalog", "scale_name"]

# family key = the YAML's folder under cfg/models (top-level YAMLs: YOLOv12) → display name, paper
FAMILIES = {
    "": ("YOLOv12", "Tian, Ye, Doermann: YOLOv12: Attention-Centric Real-Time Object Detectors (arXiv 2502.12524)"),
    "goldyolo": (
        "Gold-YOLO",
        "Wang et al.: Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism (NeurIPS 2023)",
    ),
    "pst": ("PST", "Pyramid Sparse Transformer (arXiv 2505.12772)"),
    "gyolo": ("Generalist YOLO", "Generalist YOLO (WACV 2025, pp. 6217-6227)"),
}


@dataclass
class CatalogEntry:
    """One shipped YAML file. ``names[i]`` is what a user writes for ``scales[i]`` (a one-scale file: its name)."""

    file: str
    family: str
    task: str
    paper: str
    scales: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    params: list[int] = field(default_factory=list)


def scale_name(file: str, scale: str) -> str:
    """The name that builds ``file`` at ``scale``: the letter after the version digits (``yolov12-turbo.yaml`` →
    ``yolov12n-turbo.yaml``, ``yolo11-pst.yaml`` → ``yolo11n-pst.yaml``), else appended (``gyolo-seg-n.yaml``)."""
    stem, suffix = file.rsplit(".", 1)
    if stem.endswith(f"-{scale}"):  # one file per scale (goldyolo-n.yaml)
        return file
    if re.match(r"^yolo(v)?\d+", stem):
        return re.sub(r"^(yolo(v)?\d+)", rf"\g<1>{scale}", stem) + "." + suffix
    return f"{stem}-{scale}.{suffix}"


def _params(d: dict, scale: str) -> int:
    import torch
    from ultralytics.nn.tasks import parse_model

    d = deepcopy(d)
    if scale:
        d["scale"] = scale
    with torch.device("meta"):
        model, _ = parse_model(d, ch=3, verbose=False)
    return sum(p.numel() for p in model.parameters())


def catalog(count_params: bool = True) -> list[CatalogEntry]:
    """Every shipped YAML with its family, task, scales, user-facing names and (optionally) parameters."""
    import ultra_ext  # noqa: F401  (registers our modules and YAML folder)
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    from ..integration.resolve import YAML_DIRS, find_model_yaml, model_yaml_names, yaml_scales

    entries = []
    for file in model_yaml_names():
        path, _ = find_model_yaml(file)
        folder = next((path.parent.relative_to(d) for d in YAML_DIRS if path.is_relative_to(d)), Path())
        family, paper = FAMILIES.get(folder.parts[0] if folder.parts else "", (str(folder), "–"))
        d = yaml_model_load(path)
        scales = list(yaml_scales(path))
        entry = CatalogEntry(file, family, guess_model_task(d), paper, scales, [scale_name(file, s) for s in scales])
        if not scales:
            entry.names = [file]
        if count_params:
            entry.params = [_params(d, s) for s in scales] or [_params(d, "")]
        entries.append(entry)
    return entries


def format_catalog(entries: list[CatalogEntry]) -> str:
    """A text table: one row per YAML (params in millions per scale), then the papers."""
    header = f"{'family':<16} {'task':<10} {'build as':<34} {'params (M) per scale':<36}"
    lines = [header, "-" * len(header)]
    for e in entries:
        names = f"{e.names[0]} … {e.names[-1]}" if len(e.names) > 1 else e.names[0]
        params = " / ".join(f"{s}={p / 1e6:.2f}" if s else f"{p / 1e6:.2f}" for s, p in zip(e.scales or [""], e.params))
        lines.append(f"{e.family:<16} {e.task:<10} {names:<34} {params}")
    lines.append("")
    lines += [f"{name}: {paper}" for name, paper in FAMILIES.values()]
    return "\n".join(lines)
