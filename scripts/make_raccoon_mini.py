#!/usr/bin/env python
"""Build ``ultra_ext/data/raccoon-mini``: a small, downscaled subset of the raccoon dataset.

The source is the YOLO-format copy of the MIT-licensed ``datitran/raccoon_dataset`` (Dat Tran, 2017):
``<src>/images/{train,val}/*.jpg``, ``<src>/labels/{train,val}/*.txt``, ``LICENSE``.

Selection is deterministic: the image names of each split are sorted (plain string sort) and ``n``
evenly spaced ones are taken, index ``i * len(files) // n`` for ``i in range(n)`` (160 -> 40 is every
4th file). Images whose longer side exceeds ``--max-side`` are shrunk to it (aspect ratio kept,
Lanczos); smaller images are never upscaled. All are re-saved as baseline JPEG, quality 85, without
metadata. YOLO labels are normalized xywh, which a uniform resize leaves unchanged, so label files
are copied byte for byte after validation (5 columns, class in range, coordinates in [0, 1]).

Example::

    python scripts/make_raccoon_mini.py --src /path/to/raccoon --dst ultra_ext/data/raccoon-mini \
        --train 40 --val 12 --max-side 320

Writes images/, labels/, data.yaml and LICENSE under ``--dst`` (README.md there is hand-written and
left alone). Existing images/ and labels/ are only replaced with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

SPLITS = ("train", "val")
IMG_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def select(files: list[Path], n: int) -> list[Path]:
    """Return ``n`` evenly spaced entries of ``files`` sorted by name (deterministic)."""
    files = sorted(files, key=lambda p: p.name)
    if n > len(files):
        raise SystemExit(f"asked for {n} files but only {len(files)} available")
    return [files[i * len(files) // n] for i in range(n)]


def read_names(data_yaml: Path) -> dict[int, str]:
    """Read ``names`` from the source data.yaml (dict or list form)."""
    import yaml  # PyYAML ships with ultralytics

    names = yaml.safe_load(data_yaml.read_text())["names"]
    return dict(enumerate(names)) if isinstance(names, list) else {int(k): str(v) for k, v in names.items()}


def read_boxes(path: Path, nc: int) -> list[tuple[int, float, float, float, float]]:
    """Parse and validate a YOLO detection label file: ``(cls, x, y, w, h)`` rows, normalised, at least one."""
    rows = [r.split() for r in path.read_text().splitlines() if r.strip()]
    if not rows:
        raise SystemExit(f"{path}: empty label file")
    boxes = []
    for r in rows:
        if len(r) != 5:
            raise SystemExit(f"{path}: expected 5 columns, got {len(r)}: {r}")
        c, *xywh = r
        if not (c.isdigit() and int(c) < nc):
            raise SystemExit(f"{path}: bad class {c!r} (nc={nc})")
        x, y, w, h = map(float, xywh)
        if not all(0.0 <= v <= 1.0 for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise SystemExit(f"{path}: box outside [0, 1] or empty: {xywh}")
        boxes.append((int(c), x, y, w, h))
    return boxes


def resize_save(src: Path, dst: Path, max_side: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Shrink ``src`` so its longer side is at most ``max_side``; save as JPEG q85 at ``dst``."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        w0, h0 = im.size
        s = max_side / max(w0, h0)
        if s < 1:
            im = im.resize((max(1, round(w0 * s)), max(1, round(h0 * s))), Image.Resampling.LANCZOS)
        im.save(dst, "JPEG", quality=85, optimize=True)
        return (w0, h0), im.size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, required=True, help="source YOLO dataset root (images/, labels/, data.yaml)")
    ap.add_argument("--dst", type=Path, required=True, help="output folder")
    ap.add_argument("--train", type=int, default=40, help="number of train images (default 40)")
    ap.add_argument("--val", type=int, default=12, help="number of val images (default 12)")
    ap.add_argument("--max-side", type=int, default=320, help="longer image side in px; never upscaled (default 320)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing images/ and labels/ in --dst")
    a = ap.parse_args(argv)

    src, dst = a.src.resolve(), a.dst
    names = read_names(src / "data.yaml")
    clear_outputs(dst, a.overwrite)

    counts, boxes, resized = {}, 0, 0
    for split, n in zip(SPLITS, (a.train, a.val)):
        imgs = [p for p in (src / "images" / split).iterdir() if p.suffix.lower() in IMG_SUFFIXES]
        (dst / "images" / split).mkdir(parents=True)
        (dst / "labels" / split).mkdir(parents=True)
        for img in select(imgs, n):
            lbl = src / "labels" / split / f"{img.stem}.txt"
            if not lbl.is_file():
                raise SystemExit(f"no label file for {img}")
            boxes += len(read_boxes(lbl, len(names)))
            before, after = resize_save(img, dst / "images" / split / f"{img.stem}.jpg", a.max_side)
            resized += before != after
            shutil.copyfile(lbl, dst / "labels" / split / lbl.name)
        counts[split] = n

    write_data_yaml(
        dst,
        f"""\
raccoon-mini: {counts["train"]} train / {counts["val"]} val real photos of raccoons, 1 class, YOLO format.
Subset of the raccoon dataset by Dat Tran (github.com/datitran/raccoon_dataset), MIT License (see LICENSE).
Made by scripts/make_raccoon_mini.py: evenly spaced picks from the sorted source train/val splits,
longer side shrunk to <= {a.max_side} px (aspect kept, never upscaled), JPEG quality 85; labels unchanged.""",
        names,
        src / "LICENSE",
    )
    print(f"wrote {dst}: {counts} images, {boxes} boxes, {resized} resized to <= {a.max_side} px")
    return 0


def clear_outputs(dst: Path, overwrite: bool) -> None:
    """Remove ``dst/images`` and ``dst/labels`` when ``overwrite``; refuse to touch existing ones otherwise."""
    for sub in ("images", "labels"):
        if (dst / sub).exists():
            if not overwrite:
                raise SystemExit(f"{dst / sub} exists; pass --overwrite to replace it")
            shutil.rmtree(dst / sub)


def write_data_yaml(dst: Path, about: str, names: dict[int, str], license_file: Path) -> None:
    """``dst/data.yaml`` (``about`` as its comment header, no ``path:`` key) and a copy of the source license."""
    header = "\n".join(f"# {line}" for line in about.splitlines())
    names_yaml = "\n".join(f"  {k}: {v}" for k, v in sorted(names.items()))
    (dst / "data.yaml").write_text(
        f"""{header}
# No `path:` key on purpose: Ultralytics then resolves train/val relative to this file's folder,
# so `data=<path to this file>` works from any working directory.
train: images/train
val: images/val
nc: {len(names)}
names:
{names_yaml}
"""
    )
    shutil.copyfile(license_file, dst / "LICENSE")


if __name__ == "__main__":
    sys.exit(main())
