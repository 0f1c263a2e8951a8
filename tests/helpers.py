"""Small helpers shared by the end-to-end tests: a synthetic detection dataset and subprocess plumbing.

Imported as ``from helpers import ...`` (pytest's rootdir-relative ``sys.path`` insertion covers ``tests/``; the
files under ``tests/integration/`` add ``tests/`` themselves).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
YOLO_CLI = Path(sys.executable).parent / "yolo"  # the stock Ultralytics console script of this environment
NAMES = ("box", "bar")


def _draw(
    rng: np.random.Generator, imgsz: int, n_boxes: int, nc: int, polygons: bool = False, keypoints: bool = False
) -> tuple[np.ndarray, list[str]]:
    """One image (imgsz, imgsz, 3) uint8 with filled rectangles on a noisy background, and its YOLO label rows
    (``cls cx cy w h``, with ``keypoints`` followed by the four corners as visible keypoints ``x y 2``, or with
    ``polygons`` the rectangle's four corners ``cls x1 y1 ... x4 y4``: also the OBB label format)."""
    img = rng.integers(0, 60, size=(imgsz, imgsz, 3), dtype=np.uint8)
    rows = []
    for _ in range(n_boxes):
        cls = int(rng.integers(0, nc))
        w, h = (int(v) for v in rng.integers(imgsz // 6, imgsz // 2, size=2))
        if cls == 1:  # class 1 is a wide bar, so the two classes differ in shape as well as colour
            h = max(4, h // 3)
        x0, y0 = int(rng.integers(0, imgsz - w)), int(rng.integers(0, imgsz - h))
        img[y0 : y0 + h, x0 : x0 + w] = (230, 40, 40) if cls == 0 else (40, 200, 230)
        if polygons:
            corners = ((x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h))
            rows.append(f"{cls} " + " ".join(f"{x / imgsz:.6f} {y / imgsz:.6f}" for x, y in corners))
        else:
            box = f"{cls} {(x0 + w / 2) / imgsz:.6f} {(y0 + h / 2) / imgsz:.6f} {w / imgsz:.6f} {h / imgsz:.6f}"
            if keypoints:  # top-left, top-right, bottom-right, bottom-left
                corners = ((x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h))
                box += "".join(f" {x / imgsz:.6f} {y / imgsz:.6f} 2" for x, y in corners)
            rows.append(box)
    return img, rows


def make_image(path: str | Path, imgsz: int = 64, seed: int = 0) -> Path:
    """Write one synthetic JPEG (no label) and return its path; used as a ``predict`` source."""
    from PIL import Image

    img, _ = _draw(np.random.default_rng(seed), imgsz, 2, len(NAMES))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=95)
    return path


def make_tiny_dataset(
    root: str | Path,
    n_train: int = 8,
    n_val: int = 4,
    imgsz: int = 64,
    nc: int = 2,
    polygons: bool = False,
    keypoints: bool = False,
) -> Path:
    """Write a YOLO-format detection dataset of filled rectangles under ``root``; return its ``data.yaml``.

    Layout: ``images/{train,val}/*.jpg`` + ``labels/{train,val}/*.txt`` (``cls cx cy w h``, normalised; with
    ``polygons`` instance outlines ``cls x1 y1 ... x4 y4`` for segmentation and OBB; with ``keypoints`` the four
    corners as pose keypoints, ``kpt_shape: [4, 3]``), 1-3 boxes per image, ``nc`` (1 or 2) classes. Deterministic
    (fixed seed).
    """
    from PIL import Image

    assert 1 <= nc <= len(NAMES)
    root = Path(root)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, rows = _draw(rng, imgsz, int(rng.integers(1, 4)), nc, polygons, keypoints)
            Image.fromarray(img).save(root / "images" / split / f"{i:03d}.jpg", quality=95)
            (root / "labels" / split / f"{i:03d}.txt").write_text("\n".join(rows) + "\n")
    names = "\n".join(f"  {i}: {NAMES[i]}" for i in range(nc))
    data = root / "data.yaml"
    pose = "kpt_shape: [4, 3]\nflip_idx: [1, 0, 3, 2]\n" if keypoints else ""  # a flip swaps left and right corners
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\n{pose}names:\n{names}\n")
    return data


def run(cmd: list[str], cwd: str | Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``cmd`` with the test environment (plus ``env``), capture text output, never raise on failure."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def run_python(
    code: str, args: list[str] = (), cwd: str | Path = ".", env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``code`` (``python -c code *args``) in a fresh interpreter of this environment; ``sys.argv[1:] == args``."""
    return run([sys.executable, "-c", code, *args], cwd=cwd, env=env, timeout=timeout)


def describe(proc: subprocess.CompletedProcess) -> str:
    """Exit code and output tails of a finished subprocess, for assertion messages."""
    return f"rc={proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"


def nudge(model, seed: int):
    """Keep a model's init but move every BatchNorm's affine and running statistics away from the identity, so BN
    is not a no-op in eval mode (fusion and export parity would otherwise be trivially exact). Returns it in eval."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                randomize_bn(m, g)
    return model.eval()


def fused_copy(model):
    """What the stock ``DetectionModel.fuse()`` does to these blocks, on a copy: RepConv branch merge, then Conv+BN
    folding. ``model`` itself is left as it is (compare the two for re-parameterisation parity)."""
    from copy import deepcopy

    from ultralytics.nn.modules.conv import Conv, RepConv
    from ultralytics.utils.torch_utils import fuse_conv_and_bn

    model = deepcopy(model)
    for m in model.modules():
        if isinstance(m, RepConv) and hasattr(m, "conv1"):
            m.fuse_convs()
            m.forward = m.forward_fuse
        elif isinstance(m, Conv) and hasattr(m, "bn"):
            m.conv = fuse_conv_and_bn(m.conv, m.bn)
            delattr(m, "bn")
            m.forward = m.forward_fuse
    return model


def set_row(d: dict, i: int, row: list) -> dict:
    """Replace layer ``i`` (counted over backbone + head, as parse_model does) of a model YAML dict; return it."""
    n_backbone = len(d["backbone"])
    (d["backbone"] if i < n_backbone else d["head"])[i if i < n_backbone else i - n_backbone] = row
    return d


def layer_output_shapes(model, imgsz: int) -> dict[int, tuple]:
    """``{layer index: output shape}`` of every layer but the head, for one zero image in eval mode."""
    import torch

    seen = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, j=j: seen.__setitem__(j, tuple(o.shape)))
        for j, m in enumerate(model.model[:-1])
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, imgsz, imgsz))
    finally:
        for h in hooks:
            h.remove()
    return seen


def randomize_bn(m, g) -> None:
    """Random BN affine (scale 0.75..1.25, shift ±0.1) and running statistics (mean ±0.1, var 0.5..1.5)."""
    import torch

    k = m.num_features
    m.weight.copy_(torch.rand(k, generator=g) * 0.5 + 0.75)
    m.bias.copy_(torch.randn(k, generator=g) * 0.1)
    m.running_mean.copy_(torch.randn(k, generator=g) * 0.1)
    m.running_var.copy_(torch.rand(k, generator=g) + 0.5)


MANIFESTS = REPO_ROOT / "tests" / "data"  # committed official state-dict manifests, tests/data/<family>/*.json


def read_manifest(family: str, name: str) -> dict:
    """A committed manifest ``tests/data/<family>/<name>.json``; ``keys`` as ``[(name, shape tuple), ...]``."""
    import json

    data = json.loads((MANIFESTS / family / f"{name}.json").read_text())
    data["keys"] = [(k, tuple(s)) for k, s in data["keys"]]
    return data


def random_state_dict(keys: list[tuple[str, tuple]], seed: int = 0) -> dict:
    """Random tensors under manifest names and shapes: distinct values everywhere, BN variances positive,
    ``num_batches_tracked`` a random count."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in keys:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.randint(1, 10**6, (), generator=g)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.1
    return sd


def tensor_bytes(t) -> bytes:
    """A tensor's raw bytes (for byte-exact comparisons: no tolerance, ``-0.0 != 0.0``, NaN payloads count)."""
    import torch

    return t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()


def state_sha256(model) -> str:
    """sha256 of a module's state dict: every entry's name, dtype, shape and bytes, in sorted order."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()


def module_tree(state_dict: dict, classes: dict | None = None, root_class=None):
    """An ``nn.Module`` tree whose ``state_dict()`` is ``state_dict`` (same keys, order and tensors): a container per
    key prefix, parameters for floating tensors (buffers for running stats and integer tensors). ``classes`` maps a
    prefix (``""`` the root) to the class its container gets, e.g. a foreign class made by :func:`foreign_class`,
    so the pickle names that class as the foreign code base's would."""
    import torch

    classes = dict(classes or {})
    root = (classes.pop("", None) or root_class or torch.nn.Module)()
    for key, value in state_dict.items():
        *path, leaf = key.split(".")
        node, prefix = root, []
        for part in path:
            prefix.append(part)
            child = node._modules.get(part)
            if child is None:
                child = (classes.get(".".join(prefix)) or torch.nn.Module)()
                node.add_module(part, child)
            node = child
        buffer = not value.is_floating_point() or leaf.startswith("running_") or leaf in ("proj",)
        if buffer:
            node.register_buffer(leaf, value.clone())
        else:
            node.register_parameter(leaf, torch.nn.Parameter(value.clone(), requires_grad=False))
    return root


def foreign_class(monkeypatch, module: str, name: str, base=None):
    """A class named ``module.name`` that exists until ``monkeypatch.undo()``: pickles as the foreign code's class,
    and the module is gone again when the test loads the file (so loading must not need it)."""
    import sys
    import types

    import torch

    cls = type(name, (base or torch.nn.Module,), {"__module__": module, "__qualname__": name})
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in sys.modules:
            monkeypatch.setitem(sys.modules, sub, types.ModuleType(sub))
    monkeypatch.setattr(sys.modules[module], name, cls, raising=False)
    return cls
