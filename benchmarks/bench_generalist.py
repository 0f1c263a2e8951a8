"""Generalist YOLO-N: the joint model (one pass) vs its three single-task models, and gyolo-n vs stock YOLO11n.

Five models in one run, each built from its YAML as the class Ultralytics' task map picks (``common.build(yaml,
task=True)``) with seeded random weights (:func:`common.randomize`; latency does not depend on the values, the
parity check needs non-trivial ones):

=====================  ==========  =====================================================================
model                  task        outputs (fused model, PyTorch and ONNX alike; n = max_det 300, A anchors)
=====================  ==========  =====================================================================
yolo11n                detect      stock; ``(1, 4 + 80, A)`` decoded boxes + scores (NMS not timed)
gyolo-n                detect      ``(1, n, 6)`` NMS-free one-to-one detections
gyolo-seg-n            segment     ``(1, n, 6 + 32)`` detections + mask coefficients, ``(1, 32, H/4, W/4)`` prototypes
gyolo-sem-n            semantic    ``(1, 80, H/4, W/4)`` class logits
gyolo-generalist-n     generalist  ``(1, n, 6 + 32)``, ``(1, 32, H/4, W/4)``, ``(1, 81, H/4, W/4)``: all three at once
=====================  ==========  =====================================================================

The GYOLO detection/segment heads carry a one-to-many training head and a one-to-one NMS-free head. Inference
here uses the one-to-one head (``model.end2end = True`` before fusing, what Ultralytics' ``nms=False`` selects;
the published setting): ``fuse()`` then drops the one-to-many branch and the graph ends in the top-k selection.
``--one2many`` times the one-to-many decode instead (``(1, 4 + 80 [+ 32], A)``, Ultralytics' default ``nms=None``,
whose NMS is not timed, as for yolo11n). The semantic model's logits stay at stride 4 (its head is not put in
export mode, which would add Ultralytics' full-size upsample + argmax): the joint model's semantic output has
the same form.

Measured, as in ``bench_goldyolo.py``:

* params (training graph: both heads), fused params and GFLOPs (:func:`ultra_ext.utils.cost.model_cost`), fused
  conv-only and fused including attention matmuls (the PSA block);
* PyTorch CPU latency at ``--imgsz``, batch 1: fused, eval, ``torch.inference_mode``, warm-up, then ``--runs``
  rounds in which every model runs once in rotating order; median and minimum;
* ONNX Runtime CPU latency of the fused model exported as Ultralytics does (``torch.onnx.export`` opset 18,
  TorchScript exporter, heads in export mode, onnxslim; outputs ``output0``, ``output1``, ...), CPU EP, idle-thread
  spinning off unless ``--ort-spin`` (see :func:`common.ort_session`), timed the same way. ``ORT rel |Δ|``: for
  every output, the largest absolute difference between ORT and the model's own fused PyTorch output over the
  latter's largest value; the column shows the worst output, the per-output values are printed below the table.
  The NMS-free detections are a top-k: they are compared as sets of rows, and a detection that ties the k-th
  score may be swapped for another (counted, see :func:`rel_diff`); the one-to-one class logits are spread out
  first so that such ties are rare (:func:`separate_scores`).

The generalist comparison: the joint model's latency against the **sum** of the three single-task latencies
(gyolo-n + gyolo-seg-n + gyolo-sem-n: what running them one after another costs), all measured in the same
interleaved rounds; sums of medians and of minimums, and the ratio joint / three. ORT is compared only when all
four GYOLO models exported. Ratios of gyolo-n are against yolo11n.

Every torch run uses ``torch.set_num_threads(--threads)``, every ORT session ``intra_op_num_threads=--threads``.

Usage::

    python benchmarks/bench_generalist.py                       # cost + PyTorch + ORT latency (~1 min on 2 cores)
    python benchmarks/bench_generalist.py --imgsz 320 --csv gyolo.csv
    python benchmarks/bench_generalist.py --one2many --skip-onnx
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (  # before ultralytics: it puts the working tree on sys.path
    COST_LATENCY_COLUMNS,
    LATENCY_RATIOS,
    build,
    fused_eval,
    inference_head,
    interleaved_ms,
    model_outputs,
    onnx_checked_session,
    onnx_node_count,
    randomize,
    table,
)

MODELS = {  # name: (YAML, task)
    "yolo11n": ("yolo11n.yaml", "detect"),
    "gyolo-n": ("gyolo-n.yaml", "detect"),
    "gyolo-seg-n": ("gyolo-seg-n.yaml", "segment"),
    "gyolo-sem-n": ("gyolo-sem-n.yaml", "semantic"),
    "gyolo-generalist-n": ("gyolo-generalist-n.yaml", "generalist"),
}
REFERENCE = ("gyolo-n", "yolo11n")  # detection model vs the stock one
SINGLE_TASK = ("gyolo-n", "gyolo-seg-n", "gyolo-sem-n")  # what the joint model replaces
JOINT = "gyolo-generalist-n"
THREE = " + ".join(SINGLE_TASK)
COST_KEYS = ("params", "params_fused", "gflops_conv_fused", "gflops_attn_fused")
SUM_KEYS = [k for k, _ in LATENCY_RATIOS]  # the summed quantities: fused cost and latencies


def separate_scores(model, x: torch.Tensor) -> None:
    """Standardise the one-to-one class logits over the image, per class and level (for the parity check only).

    With :func:`common.randomize` weights the features reaching the class convs vary little across the image and
    sit under the prior bias (about -9 to -11.5), so the 8400 × 80 candidate scores are nearly equal and the
    top-300 boundary is a near-tie that fp32 noise decides: ORT and PyTorch then keep different, equally scored
    detections (gyolo-n at 640: 21 of 300 rows). Here each class conv's weights and bias are set so that its
    logit map has mean 0 and std 1 over the positions of ``x`` ``(1, 3, H, W)``: the candidates spread out and
    such swaps become rare (1 row at 640, which :func:`rel_diff` recognises as a tie). Values do not change
    latency.
    """
    head = model.model[-1]
    convs = [seq[-1] for seq in head.one2one_cv3]
    inputs = {}
    hooks = [c.register_forward_hook(lambda m, a, _: inputs.__setitem__(m, a[0])) for c in convs]
    training = model.training
    with torch.no_grad():
        model.eval()(x)
        for c in convs:
            y = F.conv2d(inputs[c], c.weight)  # (1, nc, h, w) logits without bias
            mean, std = y.mean((0, 2, 3)), y.std((0, 2, 3))
            c.weight /= std[:, None, None, None]
            c.bias.copy_(-mean / std)
    model.train(training)
    for h in hooks:
        h.remove()


TIE = 1e-6  # scores this close to the k-th selected score are a tie the top-k may break either way
SWAPPED = 1e-4  # a row whose nearest row of the other output differs by more (relative) has no counterpart


def rel_diff(out, ref, top_k: bool = False) -> tuple[float, int]:
    """(max |out − ref| over max |ref|, number of tied detections swapped) of one output.

    ``top_k``: ``out``, ``ref`` are ``(1, k, 6 + nm)`` NMS-free detections ``[box, score, class, coefficients]``,
    the top-k of all candidates by score. ORT and PyTorch may list equally scored detections in another order,
    and where candidates tie with the k-th score (within ``TIE``) each may keep a different one of them. So every
    row is compared with its nearest row of the other output, both ways; a row without a counterpart is allowed,
    and counted, only when its score ties the lowest selected score of its output. Any other mismatch stays in
    the difference. :func:`separate_scores` keeps such ties rare.
    """
    import numpy as np

    scale = np.abs(ref).max()
    if not top_k:
        return float(np.abs(out - ref).max() / scale), 0
    d = np.abs(out[0][:, None, :] - ref[0][None, :, :]).max(-1) / scale  # (k, k) row-to-row differences
    err, swapped = 0.0, 0
    for rows, nearest in ((out[0], d.min(1)), (ref[0], d.min(0))):
        tied = (nearest > SWAPPED) & (rows[:, 4] - rows[:, 4].min() <= TIE)
        err = max(err, float(nearest[~tied].max()))
        swapped += int(tied.sum())
    return err, swapped


# ---------------------------------------------------------------------------------------------- latency


def pytorch_latency(rows: list[dict], x: torch.Tensor, runs: int, warmup: int) -> None:
    fused = [fused_eval(r["model"]) for r in rows]
    with torch.inference_mode():
        for r, m in zip(rows, fused):
            r["pt_out"] = [t.numpy() for t in model_outputs(m(x))]  # ORT's reference below
        stats = interleaved_ms([lambda m=m: m(x) for m in fused], runs, warmup)
    for r, (med, mn) in zip(rows, stats):
        r["pt_ms"], r["pt_min_ms"] = med, mn


def ort_latency(rows: list[dict], x: torch.Tensor, runs: int, warmup: int, threads: int, tmp: Path, spin: bool) -> None:
    """Export every model, check every output against PyTorch, then time the sessions that exported."""
    xn = x.numpy()
    ok, sessions = [], []
    for r in rows:
        f = tmp / f"{r['name']}.onnx"
        try:
            s, out, r["onnx_slim"] = onnx_checked_session(r["model"], x, f, r["pt_out"], threads, spin=spin)
        except Exception as e:  # noqa: BLE001  (one failed export must not hide the other models' numbers)
            r["onnx_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            continue
        r["onnx_nodes"] = onnx_node_count(f)
        top_k = r["head"] == "one2one"  # output0 is a top-k selection: compare its rows as a set
        parity = [rel_diff(o, p, top_k and i == 0) for i, (o, p) in enumerate(zip(out, r["pt_out"]))]
        r["ort_parity_each"], r["ort_swapped"] = [e for e, _ in parity], sum(n for _, n in parity)
        r["ort_parity"] = max(r["ort_parity_each"])
        ok.append(r)
        sessions.append(s)
    stats = interleaved_ms([lambda s=s: s.run(None, {"images": xn}) for s in sessions], runs, warmup)
    for r, (med, mn) in zip(ok, stats):
        r["ort_ms"], r["ort_min_ms"] = med, mn


# ---------------------------------------------------------------------------------------------- report

COLUMNS = [  # key, header, format
    *COST_LATENCY_COLUMNS,
    ("ort_parity", "ORT rel |Δ|", "{:.1e}"),
    ("onnx_nodes", "ONNX nodes", "{:d}"),
]


def three_vs_joint(rows: list[dict]) -> dict | None:
    """Sum of the three single-task rows for every cost/latency key all three have (None if one is missing)."""
    by = {r["name"]: r for r in rows}
    if not all(n in by for n in (*SINGLE_TASK, JOINT)):
        return None
    three = {"name": THREE, "task": "detect+segment+semantic", "head": "run one after another"}
    for k in SUM_KEYS + ["params"]:
        if all(k in by[n] for n in SINGLE_TASK):
            three[k] = sum(by[n][k] for n in SINGLE_TASK)
    return three


def ratio(a: dict, b: dict, label: str) -> dict:
    return {"name": label, **{k: a[k] / b[k] for k in SUM_KEYS if k in a and k in b and b[k]}}


def report(rows: list[dict]) -> tuple[str, list[dict], list[dict]]:
    """The printed text, the summed row(s) and the ratio rows (both also go to the CSV)."""

    def cells(r: dict, cols) -> list[str]:
        return [f.format(r[k]) if k in r else "-" for k, _, f in cols]

    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    head = ["model", "task", "inference"] + [h for _, h, _ in cols]
    body = [[r["name"], r["task"], r["head"]] + cells(r, cols) for r in rows]
    text = [table(head, body, left=3), ""]
    for r in rows:
        if "ort_parity_each" in r:
            each = ", ".join(f"output{i} {v:.1e}" for i, v in enumerate(r["ort_parity_each"]))
            shapes = ", ".join("×".join(map(str, p.shape)) for p in r["pt_out"])
            swapped = f" ({r['ort_swapped']} rows tied at the top-k boundary swapped)" if r["ort_swapped"] else ""
            text.append(f"{r['name']}: outputs {shapes}; ORT rel |Δ| {each}{swapped}")
        elif "onnx_error" in r:
            text.append(f"{r['name']}: ONNX export/run failed: {r['onnx_error']}")
    text.append("")

    sums, ratios = [], []
    by = {r["name"]: r for r in rows}
    three = three_vs_joint(rows)
    if three is not None:
        sums.append(three)
        scols = [c for c in COLUMNS if c[0] in SUM_KEYS and c[0] in three]
        sbody = [[r["name"]] + cells(r, scols) for r in (three, by[JOINT])]
        text += [
            "joint model (one pass) vs the three single-task models run one after another (sums)",
            table(["models"] + [h for _, h, _ in scols], sbody, left=1),
            "",
        ]
        ratios.append(ratio(by[JOINT], three, f"{JOINT} / ({THREE})"))
    if all(n in by for n in REFERENCE):
        ratios.insert(0, ratio(by[REFERENCE[0]], by[REFERENCE[1]], f"{REFERENCE[0]} / {REFERENCE[1]}"))
    if ratios:
        rcols = [(k, h) for k, h in LATENCY_RATIOS if any(k in r for r in ratios)]
        rbody = [[r["name"]] + [f"{r[k]:.2f}" if k in r else "-" for k, _ in rcols] for r in ratios]
        text += ["ratios", table(["ratio"] + [h for _, h in rcols], rbody, left=1)]
    if (
        three is not None
        and any("ort_ms" in r for r in rows)
        and not all("ort_ms" in by[n] for n in (*SINGLE_TASK, JOINT))
    ):
        missing = [n for n in (*SINGLE_TASK, JOINT) if "ort_ms" not in by[n]]
        text.append(f"no ORT comparison of the joint model: no ORT latency for {', '.join(missing)}")
    return "\n".join(text), sums, ratios


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--imgsz", type=int, default=640, help="latency / cost image size")
    p.add_argument("--runs", type=int, default=20, help="timed rounds (each model once per round)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads, same for every model")
    p.add_argument(
        "--one2many",
        action="store_true",
        help="time the one-to-many decode of the GYOLO heads instead of the NMS-free one-to-one head",
    )
    p.add_argument("--skip-onnx", action="store_true")
    p.add_argument(
        "--ort-spin",
        action="store_true",
        help="let idle ORT threads busy-wait (ORT's default; off here: it starves round-robin timing)",
    )
    p.add_argument("--seed", type=int, default=0, help="random weights and input")
    p.add_argument("--csv", type=Path, help="also write one CSV row per model, the summed row and the ratios")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    t_start = time.perf_counter()
    import ultralytics

    import ultra_ext
    from ultra_ext.utils.cost import model_cost

    torch.set_num_threads(a.threads)  # after `import ultralytics`, which sets its own thread count
    print(
        f"torch {torch.__version__}, ultralytics {ultralytics.__version__}, ultra_ext from {Path(ultra_ext.__file__).parent}"
    )
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads {a.threads}, imgsz {a.imgsz} "
        f"batch 1, runs {a.runs}, GYOLO heads {'one2many' if a.one2many else 'one2one (NMS-free)'}, "
        f"ORT spinning {'on' if a.ort_spin else 'off'}"
    )
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    stamp = lambda what: print(f"  [{time.perf_counter() - t_start:6.0f}s] {what}", flush=True)
    x = torch.rand((1, 3, a.imgsz, a.imgsz), generator=torch.Generator().manual_seed(a.seed))
    rows = []
    for n in MODELS:  # table order, whatever the --models order
        if n in a.models:
            model = randomize(build(MODELS[n][0], task=True), seed=a.seed)
            r = {"name": n, "task": MODELS[n][1], "head": inference_head(model, a.one2many), "model": model}
            if r["head"] == "one2one":
                separate_scores(model, x)
            r.update({k: v for k, v in model_cost(model, a.imgsz).as_dict().items() if k in COST_KEYS})
            rows.append(r)
    stamp("cost")
    pytorch_latency(rows, x, a.runs, a.warmup)
    stamp("PyTorch latency")
    if not a.skip_onnx:
        with tempfile.TemporaryDirectory() as tmp:
            ort_latency(rows, x, a.runs, a.warmup, a.threads, Path(tmp), a.ort_spin)
        stamp("ONNX Runtime latency")
    text, sums, ratios = report(rows)
    print()
    print(text)
    load = os.getloadavg()
    if load[1] > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load[1]:.2f} on {os.cpu_count()} CPUs: other processes competed; trust min over median"
        )
    print(f"\ntotal runtime {time.perf_counter() - t_start:.0f} s")
    if a.csv:
        keys = ["name", "task", "head"] + [k for k, _, _ in COLUMNS] + ["ort_swapped", "onnx_slim", "onnx_error"]
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            for r in rows + sums + [{**r, "task": "ratio"} for r in ratios]:
                w.writerow({k: r.get(k, "") for k in keys})
        print(f"wrote {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
