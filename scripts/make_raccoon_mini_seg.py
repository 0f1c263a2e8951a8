#!/usr/bin/env python
"""Build ``ultra_ext/data/raccoon-mini-seg``: raccoon-mini with polygon masks derived from its boxes.

The raccoon dataset (Dat Tran, 2017, MIT License) has hand-drawn boxes only; nobody drew masks for
it. This script *derives* one polygon per box automatically, so the result is a pseudo-labelled
segmentation set for smoke training and examples, not ground truth. The method, per image and box:

1. The source is ``ultra_ext/data/raccoon-mini`` (already subset and downscaled to <= 320 px by
   ``scripts/make_raccoon_mini.py``); its JPEGs are copied byte for byte, so both datasets show
   exactly the same pixels, and the labels there give the boxes.
2. For segmentation only, each image is resized (bicubic) so that its longer side is
   ``--work-side`` px (default 640). GrabCut's pairwise term has a fixed weight while its
   per-pixel colour term adds up over the area, so on small, textured photos the cheapest cut is
   often "everything is background": at the shipped 320 px, 18 of the 59 boxes collapsed to an
   empty or tiny mask; at 640 px, 4 did. Polygons are normalised, so the working size does not
   change how they map onto the shipped images.
3. The YOLO ``class x y w h`` box is turned into a pixel rectangle at the working size (edges
   rounded to the nearest pixel, clipped to the image). If it spans the whole width (height), it
   is pulled in by one pixel on both sides so that GrabCut always has some background to model.
4. ``cv2.grabCut`` runs with ``GC_INIT_WITH_RECT`` from that rectangle only (outside = certain
   background, inside = probable foreground) for a fixed ``--iters`` rounds. Every box is segmented
   on its own, so overlapping raccoons each get their own mask. OpenCV seeds the k-means inside
   GrabCut from its RNG, which is reset (``cv2.setRNGSeed(--seed)``) before every call, and runs
   single-threaded, so the output is deterministic for a given OpenCV build.
5. Foreground is ``GC_FGD | GC_PR_FGD``. Its largest external contour (holes ignored) is simplified
   with ``cv2.approxPolyDP``: tolerance starts at 1 px and grows by 25 % until the polygon has at
   most ``--max-points`` vertices. Vertices are pixel centres, clipped to the box and normalised to
   [0, 1].
6. Fallback: if GrabCut raises, or the chosen polygon covers less than ``--min-ratio`` of the box
   area, the box's inscribed ellipse (``--ellipse-points`` vertices) is written instead. Fallbacks
   are counted and printed.

Label lines are YOLO segmentation rows ``cls x1 y1 x2 y2 ...`` (6 decimals), one per source box,
in source order. Ultralytics derives each training box from the polygon's extent, so those boxes can
be somewhat tighter than the hand-drawn ones.

Example::

    python scripts/make_raccoon_mini_seg.py --src ultra_ext/data/raccoon-mini \
        --dst ultra_ext/data/raccoon-mini-seg --iters 5 --work-side 640

Writes images/, labels/, data.yaml and LICENSE under ``--dst`` (README.md there is hand-written and
left alone) and prints per-split counts, the fallback count and the mean polygon/box area ratio.
Existing images/ and labels/ are only replaced with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared with the sibling script
from make_raccoon_mini import IMG_SUFFIXES, SPLITS, clear_outputs, read_boxes, read_names, write_data_yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pixel_rect(box: tuple[float, float, float, float], W: int, H: int) -> tuple[int, int, int, int]:
    """Normalised xywh -> pixel (x0, y0, x1, y1), exclusive ends, leaving >= 1 px of background."""
    x, y, w, h = box
    x0, x1 = max(0, round((x - w / 2) * W)), min(W, round((x + w / 2) * W))
    y0, y1 = max(0, round((y - h / 2) * H)), min(H, round((y + h / 2) * H))
    if x0 == 0 and x1 == W:  # a rect spanning the whole image leaves GrabCut no background samples
        x0, x1 = 1, W - 1
    if y0 == 0 and y1 == H:
        y0, y1 = 1, H - 1
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def grabcut_polygon(img: np.ndarray, rect: tuple[int, int, int, int], iters: int, seed: int, max_points: int):
    """GrabCut from ``rect``; return the simplified largest outer contour in pixels, or None."""
    x0, y0, x1, y1 = rect
    mask = np.zeros(img.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(seed)
    try:
        cv2.grabCut(img, mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iters, cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return None
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea)
    eps, poly = 1.0, cv2.approxPolyDP(c, 1.0, True)
    while len(poly) > max_points:
        eps *= 1.25
        poly = cv2.approxPolyDP(c, eps, True)
    poly = poly.reshape(-1, 2).astype(np.float64) + 0.5  # pixel centres
    return poly if len(poly) >= 3 else None


def ellipse_polygon(rect: tuple[int, int, int, int], n: int) -> np.ndarray:
    """Vertices of the ellipse inscribed in ``rect`` (pixels), starting at 3 o'clock."""
    x0, y0, x1, y1 = rect
    cx, cy, ax, ay = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    t = np.arange(n) * (2 * math.pi / n)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1)


def shoelace(p: np.ndarray) -> float:
    """Area of a simple polygon given as an (N, 2) array."""
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=REPO / "ultra_ext/data/raccoon-mini",
                    help="YOLO detection dataset (images/, labels/, data.yaml, LICENSE); "
                    "default ultra_ext/data/raccoon-mini")
    ap.add_argument("--dst", type=Path, default=REPO / "ultra_ext/data/raccoon-mini-seg",
                    help="output folder; default ultra_ext/data/raccoon-mini-seg")
    ap.add_argument("--iters", type=int, default=5, help="GrabCut iterations per box (default 5)")
    ap.add_argument("--work-side", type=int, default=640,
                    help="longer image side (px) GrabCut runs at, bicubic resize; 0 = as stored (default 640)")
    ap.add_argument("--seed", type=int, default=0, help="cv2.setRNGSeed value before each GrabCut (default 0)")
    ap.add_argument("--max-points", type=int, default=48, help="most polygon vertices per instance (default 48)")
    ap.add_argument("--min-ratio", type=float, default=0.15,
                    help="polygon/box area below which the ellipse fallback is used (default 0.15)")
    ap.add_argument("--ellipse-points", type=int, default=32, help="vertices of the fallback ellipse (default 32)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing images/ and labels/ in --dst")
    a = ap.parse_args(argv)

    src, dst = a.src.resolve(), a.dst
    if src == dst.resolve():
        raise SystemExit("--src and --dst must differ")
    names = read_names(src / "data.yaml")
    clear_outputs(dst, a.overwrite)

    cv2.setNumThreads(1)
    counts, n_inst, fallbacks, ratios, vertices, used_gc = {}, 0, [], [], [], []
    for split in SPLITS:
        imgs = sorted((p for p in (src / "images" / split).iterdir() if p.suffix.lower() in IMG_SUFFIXES),
                      key=lambda p: p.name)
        (dst / "images" / split).mkdir(parents=True)
        (dst / "labels" / split).mkdir(parents=True)
        for img_path in imgs:
            lbl = src / "labels" / split / f"{img_path.stem}.txt"
            if not lbl.is_file():
                raise SystemExit(f"no label file for {img_path}")
            img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            if img is None:
                raise SystemExit(f"cannot read {img_path}")
            if a.work_side:
                s = a.work_side / max(img.shape[:2])
                size = (round(img.shape[1] * s), round(img.shape[0] * s))
                img = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
            H, W = img.shape[:2]
            rows = []
            for k, (c, *box) in enumerate(read_boxes(lbl, len(names))):
                rect = pixel_rect(box, W, H)
                x0, y0, x1, y1 = rect
                box_area = float((x1 - x0) * (y1 - y0))
                poly = grabcut_polygon(img, rect, a.iters, a.seed, a.max_points)
                if poly is not None:
                    poly[:, 0] = poly[:, 0].clip(x0, x1)
                    poly[:, 1] = poly[:, 1].clip(y0, y1)
                ok = poly is not None and shoelace(poly) >= a.min_ratio * box_area
                if not ok:
                    fallbacks.append(f"{split}/{img_path.name}#{k}")
                    poly = ellipse_polygon(rect, a.ellipse_points)
                used_gc.append(ok)
                ratios.append(shoelace(poly) / box_area)
                vertices.append(len(poly))
                xy = (poly / (W, H)).clip(0.0, 1.0).reshape(-1)
                rows.append(f"{c} " + " ".join(f"{v:.6f}" for v in xy))
            n_inst += len(rows)
            shutil.copyfile(img_path, dst / "images" / split / img_path.name)
            (dst / "labels" / split / lbl.name).write_text("\n".join(rows) + "\n")
        counts[split] = len(imgs)

    work = f"{a.work_side} px" if a.work_side else "stored size"
    write_data_yaml(
        dst,
        f"""\
raccoon-mini-seg: the {counts["train"]} train / {counts["val"]} val raccoon-mini photos with one polygon per raccoon,
1 class, YOLO segmentation format (`cls x1 y1 x2 y2 ...`, normalized).
Photos from the raccoon dataset by Dat Tran (github.com/datitran/raccoon_dataset), MIT License (see LICENSE).
Masks are NOT human-annotated: scripts/make_raccoon_mini_seg.py derived one polygon per hand-drawn box
with OpenCV GrabCut initialised from the box ({a.iters} iterations, image resized to {work} longer side),
inscribed-ellipse fallback where GrabCut finds no foreground. For smoke training and examples only.""",
        names,
        src / "LICENSE",
    )
    r, g = np.array(ratios), np.array(used_gc)
    print(f"wrote {dst}: {counts} images, {n_inst} instances, GrabCut iters={a.iters}, work side={a.work_side}")
    print(f"fallbacks (inscribed ellipse): {len(fallbacks)}{' ' + ', '.join(fallbacks) if fallbacks else ''}")
    print(f"polygon/box area ratio, all {len(r)}: mean {r.mean():.3f}, median {np.median(r):.3f}, "
          f"min {r.min():.3f}, max {r.max():.3f}")
    if g.any():
        print(f"polygon/box area ratio, {g.sum()} GrabCut polygons: mean {r[g].mean():.3f}, "
              f"median {np.median(r[g]):.3f}, min {r[g].min():.3f}, max {r[g].max():.3f}")
    print(f"vertices per polygon: mean {np.mean(vertices):.1f}, max {max(vertices)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
