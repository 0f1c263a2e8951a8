"""What a checkpoint file is, read from the classes it pickles, without running any of its code.

``torch.save`` archives list every global their pickle names (``torch.serialization.get_unsafe_globals_in_checkpoint``
reads that list without unpickling anything). The classes of each source we convert are distinctive:

========================= ====================================================================================
source                    pickled classes that identify it
========================= ====================================================================================
``yolov12``               stock ``ultralytics.nn.modules.block.AAttn`` (stock YOLO12 = v1.0 layout, or the YOLOv12
                          authors' fork: turbo detection, seg and cls branches; the layout is read after loading)
``pst``                   ``ultralytics.nn.modules.block.PST`` / ``PSAttn`` / ``PSAttnBlock`` (the PST fork)
``goldyolo``              anything under ``gold_yolo.*`` (the official YOLOv6 fork; plain YOLOv6 is ``unknown``)
``generalist``            ``models.*`` (a YOLOv9-style code base) with the Generalist head ``DualDPanoptic``,
                          captioner ``Grit`` or block ``RepNCSPELAN4B``
``ultra_ext``             anything under ``ultra_ext.*``: already ours, nothing to convert
``ultralytics``           other ``ultralytics.*`` classes only: a stock checkpoint, nothing to convert
========================= ====================================================================================

Anything else is ``unknown``; :func:`describe_unknown` says what was found (the framework its classes suggest, the
top-level keys, a few class paths) for the error message.
"""

from __future__ import annotations

import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["SOURCES", "Identification", "describe_unknown", "identify", "might_be_foreign", "pickled_globals"]

# source → what it is, in the words of messages
SOURCES = {
    "yolov12": "a YOLO12 checkpoint (stock Ultralytics v1.0, or the YOLOv12 authors' turbo / seg / cls weights)",
    "pst": "a published PST checkpoint (the PST fork of Ultralytics 8.3.105)",
    "goldyolo": "an official Gold-YOLO checkpoint (the YOLOv6 fork)",
    "generalist": "an official Generalist YOLO checkpoint (WongKinYiu/GeneralistYOLO, YOLOv9-style)",
    "ultra_ext": "an ultra_ext checkpoint (already ours: load it with YOLO(path))",
    "ultralytics": "a stock Ultralytics checkpoint without YOLO12 attention (it loads with YOLO(path) as it is)",
}
CONVERTIBLE = ("yolov12", "pst", "goldyolo", "generalist")

_PST_CLASSES = {f"ultralytics.nn.modules.block.{n}" for n in ("PST", "PSAttn", "PSAttnBlock")}
_GENERALIST_CLASSES = {"DualDPanoptic", "Grit", "RepNCSPELAN4B"}
_AATTN = "ultralytics.nn.modules.block.AAttn"
# top-level package of a pickled class → the framework it suggests (for the message about an unknown file)
_FRAMEWORKS = {
    "models": "a YOLOv5/YOLOv7/YOLOv9-style code base (classes under models.*)",
    "yolov6": "YOLOv6 (meituan/YOLOv6; Gold-YOLO checkpoints also pickle gold_yolo.* classes, this one does not)",
    "mmdet": "MMDetection",
    "mmcv": "OpenMMLab (mmcv)",
    "detectron2": "Detectron2",
    "timm": "timm",
    "torchvision": "torchvision",
    "yolox": "YOLOX",
    "transformers": "Hugging Face transformers",
    "ultralytics": "Ultralytics",
}


@dataclass
class Identification:
    """What :func:`identify` found.

    Attributes:
        source: a key of :data:`SOURCES`, or ``"unknown"``.
        path: the file.
        classes: every pickled global (``module.name``) outside torch's built-in allow-list, in file order.
        evidence: the classes that decided it.
    """

    source: str
    path: Path
    classes: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    @property
    def convertible(self) -> bool:
        return self.source in CONVERTIBLE

    @property
    def what(self) -> str:
        return SOURCES.get(self.source, "an unrecognised checkpoint")


def _pickle_bytes(path: Path) -> bytes | None:
    """The pickle record of a ``torch.save`` zip archive; ``None`` for other files."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            return None if name is None else archive.read(name)
    except (zipfile.BadZipFile, OSError, RuntimeError):
        return None


# byte strings one of which every source we convert has in its pickle (class names; GLOBAL opcodes are plain text)
_MARKERS = (b"gold_yolo", b"AAttn", b"PSAttn", b"\nPST\n", b"DualDPanoptic", b"RepNCSPELAN4B", b"\nGrit\n")


def might_be_foreign(path: str | Path) -> bool:
    """Whether ``path`` may be a source we convert: a byte search of its pickle for the marker class names, much
    cheaper than walking the opcodes. ``False`` means certainly not (Ultralytics' own checkpoints, anything else)."""
    data = _pickle_bytes(Path(path))
    return data is not None and any(marker in data for marker in _MARKERS)


def pickled_globals(path: str | Path) -> list[str] | None:
    """Every global (``module.name``) the pickle of a ``torch.save`` zip archive names, in first-seen order, read
    from its opcodes without unpickling anything; ``None`` for other files (the legacy non-zip format, or not a
    checkpoint at all). torch's own scan (``get_unsafe_globals_in_checkpoint``) is not used: it leaves out whatever
    the process has allow-listed, and Ultralytics' safe loading allow-lists classes for the life of the process.
    ``torch.save`` writes protocol 2, where every global is a ``GLOBAL`` opcode; ``STACK_GLOBAL`` (protocol 4+) is
    not decoded."""
    data = _pickle_bytes(Path(path))
    if data is None:
        return None
    found: dict[str, None] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                found[arg.replace(" ", ".", 1)] = None
    except (ValueError, EOFError):  # a damaged pickle: what was read so far still tells something
        pass
    return [g for g in found if not g.startswith(_BUILTIN_GLOBALS)]


# globals every checkpoint pickles (tensor storage rebuilding, dicts): no evidence of anything
_BUILTIN_GLOBALS = (
    "torch._utils.", "torch.storage.", "torch.FloatStorage", "torch.HalfStorage", "torch.LongStorage", "torch._tensor.",
    "torch.serialization.", "collections.", "builtins.", "__builtin__.", "_codecs.", "copyreg.",
)  # fmt: skip


def _decide(classes: list[str]) -> tuple[str, list[str]]:
    """(source, evidence) from the pickled globals."""
    packages = {c.split(".", 1)[0] for c in classes}
    gold = [c for c in classes if c.startswith("gold_yolo.")]  # plain YOLOv6 has yolov6.* classes only
    if gold:
        return "goldyolo", gold[:3]
    pst = [c for c in classes if c in _PST_CLASSES]
    if pst:
        return "pst", pst
    generalist = [c for c in classes if c.startswith("models.") and c.rsplit(".", 1)[1] in _GENERALIST_CLASSES]
    if generalist:
        return "generalist", generalist
    if "ultra_ext" in packages:  # after the foreign sources: a file with their classes does not load as it is
        return "ultra_ext", [c for c in classes if c.startswith("ultra_ext.")][:3]
    if _AATTN in classes:
        return "yolov12", [_AATTN]
    if "ultralytics" in packages:
        return "ultralytics", [c for c in classes if c.startswith("ultralytics.nn.tasks.")][:1]
    return "unknown", []


# a key fragment only one source's state dict has → that source (for bare state dicts, which pickle no classes)
_STATE_DICT_MARKERS = {
    "neck.low_IFM.": "goldyolo",
    ".attnlayer_0.attn.gate_conv1d.": "pst",
    ".uconv2.": "generalist",
}


def source_of_state_dict(state_dict: dict) -> str:
    """The source of a bare state dict (a key only that source has), or ``"unknown"``."""
    for marker, source in _STATE_DICT_MARKERS.items():
        if any(marker in k for k in state_dict):
            return source
    return "unknown"


def identify(path: str | Path) -> Identification:
    """Which source (:data:`SOURCES`) the checkpoint ``path`` comes from, from its pickled class names alone.

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    classes = pickled_globals(path)
    if classes is None:
        return Identification("unknown", path)
    source, evidence = _decide(classes)
    return Identification(source, path, classes, evidence)


def describe_unknown(ident: Identification, top_keys: list[str] | None = None) -> str:
    """The message for a file we cannot convert: the framework its classes suggest, the top-level keys, a few class
    paths, and the sources we accept."""
    from .mapping import listed

    if not ident.classes and not zipfile.is_zipfile(ident.path):
        found = "not a torch.save zip archive (a legacy-format or non-PyTorch file, or a damaged one)"
    else:
        packages = sorted({c.split(".", 1)[0] for c in ident.classes} - {"torch", "collections", "builtins"})
        frameworks = [_FRAMEWORKS[p] for p in packages if p in _FRAMEWORKS]
        found = f"classes from {', '.join(frameworks) or ', '.join(packages) or 'torch only (a bare state dict?)'}"
        foreign = [c for c in ident.classes if not c.startswith("torch.")]
        if foreign:
            found += f"; pickled classes: {listed(foreign)}"
    if top_keys is not None:
        found += f"; top-level keys: {listed(top_keys) or '(none)'}"
    accepted = "\n".join(f"  - {SOURCES[s]}" for s in CONVERTIBLE)
    return f"{ident.path}: cannot tell what this checkpoint is: {found}.\nultra_ext converts:\n{accepted}"
