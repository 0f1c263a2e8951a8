"""``ultra-ext convert SRC -o DST``: find out what a checkpoint is (:mod:`.identify`), say so, convert it.

Each convertible source has one reader here that returns an Ultralytics checkpoint dict (:class:`Converted`), used
by the command (which writes it) and by loading (:mod:`.on_load`, which converts in memory when a user passes an
official file to ``YOLO()`` or ``yolo val/predict``). The per-family commands (``upgrade``, ``convert-goldyolo``,
``convert-pst``) stay as aliases with their own options.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .identify import Identification, describe_unknown, identify

__all__ = ["Converted", "NotConvertible", "convert_checkpoint", "main"]


class NotConvertible(ValueError):
    """A file that is no source we convert (or already loads as it is); the message says what it is."""


@dataclass
class Converted:
    """A converted checkpoint.

    Attributes:
        ckpt: an Ultralytics checkpoint dict (``model`` an ultra_ext model; what ``YOLO(path)`` loads).
        source: the key of :data:`~.identify.SOURCES` it came from.
        summary: one line saying what it became (model, classes, settings).
        dropped: source tensors with no counterpart in our model (named by prefix and count), if any.
    """

    ckpt: dict
    source: str
    summary: str
    dropped: list[str] = field(default_factory=list)


def _yolov12(path: Path, options: dict) -> Converted:
    from .yolov12 import load_upgraded

    ckpt, count, layout = load_upgraded(path)
    model = ckpt.get("ema") or ckpt["model"]
    cfg = model.yaml
    name = Path(cfg.get("yaml_file") or "yolo12").stem
    return Converted(ckpt, "yolov12", f"{name} ({layout} attention, {count} modules upgraded, nc={cfg['nc']})")


def _goldyolo(path: Path, options: dict) -> Converted:
    from .checkpoint import ultralytics_checkpoint
    from .goldyolo import load_official_checkpoint, official_to_ultra_ext

    sd = load_official_checkpoint(path)
    model = official_to_ultra_ext(sd, options.get("scale"), prefer_dfl=options.get("dfl", False), verbose=False)
    cfg = model.yaml
    summary = f"goldyolo-{cfg['scale']} (nc={cfg['nc']}, reg_max={cfg['reg_max']})"
    return Converted(ultralytics_checkpoint(model, source=path.name, half=False), "goldyolo", summary)


def _pst(path: Path, options: dict) -> Converted:
    from .checkpoint import ultralytics_checkpoint
    from .pst import load_pst_checkpoint, pst_to_ultra_ext

    sd, info = load_pst_checkpoint(path)
    gate = options.get("gate") or "auto"
    model = pst_to_ultra_ext(sd, options.get("scale"), names=info.get("names"), gate=gate, verbose=False)
    cfg = model.yaml
    summary = f"yolov12{cfg['scale']}-pst (nc={cfg['nc']}, gate={gate})"
    return Converted(ultralytics_checkpoint(model, info.get("names"), path.name, half=False), "pst", summary)


def _generalist(path: Path, options: dict) -> Converted:
    from .checkpoint import ultralytics_checkpoint
    from .generalist import generalist_to_ultra_ext, load_generalist_checkpoint

    sd, info = load_generalist_checkpoint(path)
    model, dropped = generalist_to_ultra_ext(sd, options.get("scale"), names=info.get("names"), verbose=False)
    cfg = model.yaml
    head = cfg["head"][-1][3]
    summary = f"gyolo-generalist-{cfg['scale']} (nc={cfg['nc']}, sem_nc={head[2]})"
    ckpt = ultralytics_checkpoint(model, info.get("names"), path.name, half=False)
    return Converted(ckpt, "generalist", summary, dropped)


READERS = {"yolov12": _yolov12, "goldyolo": _goldyolo, "pst": _pst, "generalist": _generalist}


def _top_level_keys(path: Path) -> list[str] | None:
    """The top-level keys of a checkpoint, read with every class stubbed (nothing of the file runs); ``None`` when
    that fails."""
    from .unpickle import StubPickle, restricted_load

    try:
        obj = restricted_load(path, StubPickle(always=("ultralytics", "ultra_ext")))
    except Exception:  # a damaged file: describe_unknown says what the archive itself shows
        return None
    return sorted(map(str, obj)) if isinstance(obj, dict) else [f"(a {type(obj).__name__}, not a dict)"]


def _bare_state_dict_source(path: Path) -> str:
    """The source of a ``torch.save``-d bare state dict (which pickles no classes), else ``"unknown"``."""
    from .identify import source_of_state_dict

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return "unknown"
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return source_of_state_dict(obj)
    return "unknown"


def identify_for_conversion(path: str | Path) -> Identification:
    """:func:`~.identify.identify`, with bare state dicts recognised by their keys.

    Raises:
        FileNotFoundError: no such file.
        NotConvertible: a file we do not convert, with what it is (framework, top-level keys, class paths) and the
            sources we accept.
    """
    found = identify(path)
    if found.source == "unknown" and not found.classes:  # tensors only (or not a zip archive): a bare state dict?
        found.source = _bare_state_dict_source(found.path)
    if found.source in ("ultra_ext", "ultralytics"):
        raise NotConvertible(f"{found.path}: {found.what}; there is nothing to convert")
    if not found.convertible:
        raise NotConvertible(describe_unknown(found, _top_level_keys(found.path)))
    return found


def convert_checkpoint(path: str | Path, **options) -> Converted:
    """Identify ``path`` and convert it to an Ultralytics checkpoint dict of our model.

    Args:
        path: the checkpoint file.
        **options: ``scale`` (a check: the scale is read from the weights), ``dfl`` (Gold-YOLO distilled N/S: the
            auxiliary DFL box branch), ``gate`` (PST gate policy).

    Raises:
        FileNotFoundError: no such file.
        NotConvertible: see :func:`identify_for_conversion`.
        ValueError: the source's converter found problems (one message listing all of them).
    """
    found = identify_for_conversion(path)
    return READERS[found.source](found.path, options)


def _half_if_lossless(ckpt: dict) -> dict:
    """The checkpoint with its model in fp16 (as Ultralytics ships weights) where that loses nothing, i.e. the
    source was fp16 (released weights are); a float32 source stays float32."""
    model = ckpt.get("model")
    if not isinstance(model, torch.nn.Module) or not any(p.dtype == torch.float32 for p in model.parameters()):
        return ckpt
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    if all(torch.equal(t, t.half().float()) for t in tensors):
        ckpt = {**ckpt, "model": model.half()}
    return ckpt


def main(argv: list[str] | None = None) -> int:
    """``ultra-ext convert SRC -o DST``: detect what SRC is (stock or released YOLO12, Gold-YOLO, PST, Generalist
    YOLO), say so, and write it as an Ultralytics checkpoint of our model that YOLO(DST) loads."""
    import argparse

    about = " ".join(main.__doc__.split(": ", 1)[1].split())
    parser = argparse.ArgumentParser(prog="ultra-ext convert", description=about)
    parser.add_argument("checkpoint", help="the checkpoint to convert (.pt)")
    parser.add_argument("-o", "--output", required=True, help="Ultralytics checkpoint to write (.pt)")
    parser.add_argument("--scale", help="check the scale (it is read from the weights)")
    parser.add_argument("--dfl", action="store_true", help="Gold-YOLO distilled N/S: convert the auxiliary DFL branch")
    parser.add_argument("--gate", choices=("auto", "learned", "fixed"), help="PST gate policy (default auto)")
    args = parser.parse_args(argv)
    from ..integration import activate

    activate()
    try:
        found = identify_for_conversion(args.checkpoint)
        print(f"{args.checkpoint}: {found.what} (pickled {', '.join(found.evidence) or 'tensors only'})")
        done = READERS[found.source](found.path, {"scale": args.scale, "dfl": args.dfl, "gate": args.gate})
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    torch.save(_half_if_lossless(done.ckpt), args.output)
    for line in done.dropped:
        print(f"  dropped (no counterpart yet): {line}")
    print(f"converted {args.checkpoint} → {args.output}: {done.summary}")
    return 0

