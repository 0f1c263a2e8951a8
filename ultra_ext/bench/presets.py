"""The comparisons this repository publishes, as named model sets of ``ultra-ext bench --preset NAME``.

A preset is a list of model YAMLs plus defaults for the command's options. Options given on the command line win
over the preset's; YAMLs given on the command line are measured after the preset's. ``benchmarks/run_all.sh`` runs
every preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PRESETS", "Preset", "describe"]


@dataclass(frozen=True)
class Preset:
    """A named benchmark: what it compares, its models, and option defaults (argparse destinations → values).

    Example:
        >>> PRESETS["pst"].options["pst_topk"]
        [0, 8]
    """

    about: str
    models: tuple[str, ...]
    options: dict = field(default_factory=dict)


PRESETS = {
    "yolov12": Preset(
        "ultra_ext YOLOv12-N and YOLOv12-N-turbo against stock YOLO12n, YOLO11n and YOLO26n; training-step memory "
        "at 1280 px batch 1, where stock attention's N×N score tensors dominate",
        ("yolov12n.yaml", "yolov12n-turbo.yaml", "yolo12n.yaml", "yolo11n.yaml", "yolo26n.yaml"),
        {"runs": 30, "mem_imgsz": 1280, "mem_batch": 1},
    ),
    "goldyolo": Preset(
        "Gold-YOLO-N against stock YOLOv6-N (its EfficientRep base), YOLO11n and YOLO26n",
        ("goldyolo-n.yaml", "yolov6n.yaml", "yolo11n.yaml", "yolo26n.yaml"),
        {"runs": 30},
    ),
    "pst": Preset(
        "PST in YOLO11n and YOLOv12n, each with the fine stage off and on (topk 0 and 8: two rows, one set of "
        "weights), against stock YOLO11n, YOLO12n and YOLO26n",
        ("yolo11n-pst.yaml", "yolov12n-pst.yaml", "yolo11n.yaml", "yolo12n.yaml", "yolo26n.yaml"),
        {"runs": 30, "pst_topk": [0, 8]},
    ),
    "generalist": Preset(
        "Generalist YOLO-N: the detection, instance- and semantic-segmentation models and the joint model (all "
        "three outputs in one pass), against stock YOLO11n, YOLO11n-seg and YOLO26n",
        (
            "gyolo-n.yaml",
            "gyolo-seg-n.yaml",
            "gyolo-sem-n.yaml",
            "gyolo-generalist-n.yaml",
            "yolo11n.yaml",
            "yolo11n-seg.yaml",
            "yolo26n.yaml",
        ),
    ),
}


def describe(width: int = 116) -> str:
    """The presets for ``--help``: one paragraph each, name, what it compares, its models and option defaults."""
    import textwrap

    out = ["presets:"]
    for name, p in PRESETS.items():
        values = {k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in p.options.items()}
        opts = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in values.items())
        text = f"{name}: {p.about}. Models: {' '.join(p.models)}" + (f"; defaults: {opts}" if opts else "")
        out.append(textwrap.fill(text, width, subsequent_indent="  "))
    return "\n".join(out)
