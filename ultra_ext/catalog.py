"""The catalog of model YAMLs ultra_ext ships: family, task, scales, parameters per scale and the paper.

Parameters are counted on PyTorch's ``meta`` device (layers are built without memory or a forward pass), so the
whole catalog takes seconds; they are the training graph's counts at nc 80, what ``ultra-ext cost`` reports as
``params``. ``ultra-ext models`` prints it.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FAMILIES", "CatalogEntry", "catalog", "format_catalog", "main"]

# family key = the YAML's folder under cfg/models → display name, paper; `ultra-ext models` lists in this order
FAMILIES = {
    "yolov12": (
        "YOLOv12",
        "Tian, Ye, Doermann: YOLOv12: Attention-Centric Real-Time Object Detectors (arXiv 2502.12524)",
    ),
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
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    from .integration import activate
    from .integration.yaml_lookup import YAML_DIRS, find_model_yaml, model_yaml_names, scale_name, yaml_scales

    activate()  # our modules and YAML folder
    entries = []
    for file in model_yaml_names():
        path, _ = find_model_yaml(file)
        folder = next((path.parent.relative_to(d) for d in YAML_DIRS if path.is_relative_to(d)), Path())
        key = folder.parts[0] if folder.parts else ""
        family, paper = FAMILIES.get(key, (str(folder), "–"))
        d = yaml_model_load(path)
        scales = list(yaml_scales(path))
        entry = CatalogEntry(file, family, guess_model_task(d), paper, scales, [scale_name(file, s) for s in scales])
        if not scales:
            entry.names = [file]
        if count_params:
            entry.params = [_params(d, s) for s in scales] or [_params(d, "")]
        order = list(FAMILIES).index(key) if key in FAMILIES else len(FAMILIES)  # a plugin's YAMLs come last
        entries.append((order, entry))
    return [entry for _, entry in sorted(entries, key=lambda pair: (pair[0], pair[1].file))]


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


def main(argv: list[str] | None = None) -> int:
    """``ultra-ext models``: the model YAMLs ultra_ext ships: family, task, names and params per scale, paper."""
    import argparse

    parser = argparse.ArgumentParser(prog="ultra-ext models", description=main.__doc__.split(": ", 1)[1])
    parser.add_argument("--no-params", action="store_true", help="skip counting parameters (faster)")
    args = parser.parse_args(argv)
    print(format_catalog(catalog(count_params=not args.no_params)))
    return 0
