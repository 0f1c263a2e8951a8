"""Benchmark any set of model YAMLs, ours and stock, side by side in one run: cost, latency, memory, mAP.

Usage::

    python -m ultra_ext.bench yolo11n.yaml gyolo-n.yaml --imgsz 640 --runs 20 --threads 2 --csv out.csv --plot-dir out/
    python -m ultra_ext.bench yolo11n.yaml goldyolo-n.yaml --train data.yaml --epochs 10 --train-imgsz 320
    python -m ultra_ext.bench --preset pst --csv pst.csv         # a published comparison (ultra_ext/bench/presets.py)

``--preset NAME`` measures a named model set with its option defaults (:data:`ultra_ext.bench.presets.PRESETS`:
``yolov12``, ``goldyolo``, ``pst``, ``generalist``; ``--help`` lists them); options given on the command line win,
YAMLs given on it are added. ``ultra-ext bench`` is the same command.

Every model is built from its YAML (no weights) as the class Ultralytics' task map picks for it, with seeded
random weights (:func:`ultra_ext.bench.measure.randomize`: latency does not depend on the values, but the
default init leaves branches at exactly zero). Measured per model:

* **cost** (:func:`ultra_ext.bench.cost.model_cost`, at ``--imgsz``, batch 1): training-graph and fused
  parameters; GFLOPs of the fused model conv-only (convolutions and linear layers: the papers' convention) and
  including the attention matmuls (what the deployed model really computes).
* **PyTorch CPU latency** at ``--imgsz``, batch 1: fused (Conv+BN folded, RepVGG/RepConv merged), eval,
  ``torch.inference_mode``, ``--warmup`` runs, then ``--runs`` rounds in which every model runs once, in rotating
  order (load from other processes hits all models alike); median and minimum.
* **ONNX Runtime CPU latency**: the fused model exported as Ultralytics exports it (``torch.onnx.export`` opset 18,
  TorchScript exporter, heads in export mode, onnxslim when installed; one ONNX output per PyTorch output:
  segmentation and generalist models have 2-3), CPU execution provider, idle-thread spinning off unless
  ``--ort-spin``, timed round-robin like PyTorch. Every output is compared with the fused PyTorch model's on the
  same input (:func:`ultra_ext.bench.measure.output_rel_diff`): export parity. NMS-free top-k detections are compared
  as sets of rows; their one-to-one class logits are spread out first (:func:`ultra_ext.bench.measure.spread_scores`)
  so that random weights do not leave the top-k boundary to near-ties.
* **training-step peak memory**: one forward + the model's own loss on a synthetic batch (random images, three
  boxes each; masks, keypoints or class ids as the task needs) + backward at ``--mem-imgsz`` (320) and
  ``--mem-batch`` (8), each model in a fresh subprocess. CPU: the resident-set high-water mark over the step
  (reset through ``/proc/self/clear_refs``) minus the RSS just before it, so activations, gradients, loss
  tensors and allocator caching count, import and build peaks do not (see
  :func:`ultra_ext.bench.measure.train_step_peak`). With a GPU (``--device``): ``torch.cuda.max_memory_allocated``
  over the step minus the allocation before it.
* **mAP** (``--train DATA``): each model trained from scratch in its own subprocess through the Ultralytics API
  with identical settings (``--epochs``, ``--train-imgsz``, ``--train-batch``, ``workers=0``, seed, deterministic,
  no AMP, no plots, ``val=False`` so only the end is validated, run folder in a temp dir) on a temp copy of the
  dataset; mAP50 and mAP50-95 (box) of Ultralytics' final validation of ``best.pt`` on the val split.

PST models (``--pst-topk K [K ...]``): every PST attention's eval topk (0: coarse only; 8: the published setting)
set to each K in turn, one row per K named ``<model>-k<K>``, all from one set of weights and timed in the same rounds
(training-step memory does not depend on it; ``--train`` validates with it). Other models are unaffected.

Heads with a one-to-one branch (GYOLO, YOLOv10/26-style ``end2end``) are timed NMS-free (``--one2many``: their
one-to-many decode); the other detection models are timed up to their decoded boxes and scores, without NMS.
Denormal floats are flushed to zero in torch and ORT for every model (``--no-ftz`` keeps them): random weights
can make attention softmax outputs denormal, which slows x86 arithmetic many times over (a value artefact).
Every torch run uses ``torch.set_num_threads(--threads)``, every ORT session ``intra_op_num_threads=--threads``.

CSV (``--csv``): one row per model (:class:`ultra_ext.bench.row.BenchRow`), these columns in this order; empty where
not measured:

=================  =======================================================================================
``model``          the YAML's stem as given (``yolo11n.yaml`` → ``yolo11n``; the path if two stems collide;
                   ``-k<K>`` appended for a ``--pst-topk`` row)
``task``           Ultralytics task of the built model (``detect``, ``segment``, ``classify``, ``generalist``...)
``source``         ``ours`` (an ultra_ext YAML or a file elsewhere) or ``stock`` (a YAML inside Ultralytics)
``head``           what was timed: ``one2one`` (NMS-free top-k), ``one2many`` (decoded boxes and scores, NMS not
                   timed) or ``-`` (no detection head)
``params``         training-graph parameters (unfused)
``fused_params``   parameters after ``model.fuse()``: what is deployed
``gflops_conv``    GFLOPs of the fused model at ``imgsz``, batch 1: convolutions and linear layers only
``gflops_attn``    the same plus the attention matmuls
``pt_ms_median``   PyTorch CPU latency, median of ``--runs`` (ms)
``pt_ms_min``      PyTorch CPU latency, minimum (ms)
``ort_ms_median``  ONNX Runtime CPU latency, median (ms)
``ort_ms_min``     ONNX Runtime CPU latency, minimum (ms)
``ort_rel_diff``   export parity: max |ORT − PyTorch| over max |PyTorch|, worst output (fused model, same input)
``train_peak_mb``  peak memory one training step adds, MiB, at ``--mem-imgsz`` / ``--mem-batch``
``map50``          box mAP50 after ``--train``
``map50_95``       box mAP50-95 after ``--train``
``imgsz``          cost and latency image size
``threads``        torch and ORT intra-op threads
``device``         where ``train_peak_mb`` and training ran (``cpu`` or ``cuda:N``); latencies are always CPU
=================  =======================================================================================

Plots (``--plot-dir``, matplotlib): ``latency_params.png`` (latency vs fused parameters) and, with ``--train``,
``latency_map.png`` (latency vs mAP50-95), as the papers' figure 1. Latency is ORT's minimum, or PyTorch's when
ORT did not run for every model; every point carries the model name; ours (ultra_ext YAMLs) and stock
(Ultralytics YAMLs) use different markers.

Exit status 0, or 1 when a measurement failed for some model (its cells stay empty; the reason is printed).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .presets import PRESETS, describe
from .row import COLUMNS, BenchRow

if TYPE_CHECKING:
    from torch.nn import Module

__all__ = ["COLUMNS", "BenchRow", "main", "model_source", "parse_args", "plot", "run_worker"]

_TABLE = [  # field, header, format: the printed table after model, source, task, head
    ("params", "params", "{:,}"),
    ("fused_params", "fused params", "{:,}"),
    ("gflops_conv", "GFLOPs conv", "{:.2f}"),
    ("gflops_attn", "GFLOPs +attn", "{:.2f}"),
    ("pt_ms_median", "PT ms med", "{:.1f}"),
    ("pt_ms_min", "PT ms min", "{:.1f}"),
    ("ort_ms_median", "ORT ms med", "{:.1f}"),
    ("ort_ms_min", "ORT ms min", "{:.1f}"),
    ("ort_rel_diff", "ORT rel |Δ|", "{:.1e}"),
    ("train_peak_mb", "train peak MB", "{:.0f}"),
    ("map50", "mAP50", "{:.3f}"),
    ("map50_95", "mAP50-95", "{:.3f}"),
]
WORKER = "_worker"  # first argument of the subprocess form: _worker {memory|train} JSON


# ---------------------------------------------------------------------------------------------- models


def model_source(yaml: str) -> str:
    """``"stock"`` when Ultralytics' own lookup finds the YAML inside the ultralytics package, else ``"ours"``.

    Resolved as ``yaml_model_load`` does (the name, then the scale-free ``yolo11n.yaml`` → ``yolo11.yaml``), with
    ultra_ext active: a name only ultra_ext resolves (``gyolo-n.yaml``) or a YAML file elsewhere counts as ours.
    """
    import re

    import ultralytics
    from ultralytics.nn import tasks

    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", str(yaml))
    found = tasks.check_yaml(yaml, hard=False) or tasks.check_yaml(unified, hard=False)
    root = Path(ultralytics.__file__).resolve().parent
    return "stock" if found and Path(found).resolve().is_relative_to(root) else "ours"


def _error(e: BaseException) -> str:
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}"


def _build_rows(a, x) -> list[tuple[BenchRow, Module | None]]:
    """One ``(row, model)`` per YAML (per YAML and ``--pst-topk`` value for PST models): random weights, inference
    head selected, cost measured. A YAML that fails to build gets a row with its error and model ``None``."""
    import copy

    from ultralytics import YOLO

    from ..nn import set_pst_options
    from .cost import model_cost
    from .measure import inference_head, randomize, spread_scores

    stems = [Path(y).stem for y in a.models]
    built = []
    for yaml, stem in zip(a.models, stems):
        row = BenchRow(stem if stems.count(stem) == 1 else yaml, yaml=yaml)
        try:
            y = YOLO(yaml)
            row.task, row.source = y.task, model_source(yaml)
            row.head = inference_head(y.model, a.one2many)  # before the cost: fusing drops the other branch
            net = randomize(y.model, seed=a.seed)
            if row.head == "one2one":
                spread_scores(net, x)
        except Exception as e:  # noqa: BLE001  (one broken YAML must not hide the other models' numbers)
            row.errors["build"] = _error(e)
            built.append((row, None))
            continue
        variants = [(row, net)]
        if a.pst_topk and set_pst_options(net):  # PST rows: one per topk, one set of weights
            variants = []
            for k in a.pst_topk:
                v = copy.deepcopy(net)
                set_pst_options(v, topk=k)
                variants.append((replace(row, model=f"{row.model}-k{k}", pst_topk=k, errors={}, notes=[]), v))
        for r, v in variants:
            try:
                c = model_cost(v, a.imgsz)
            except Exception as e:  # noqa: BLE001
                r.errors["cost"] = _error(e)
            else:
                r.params, r.fused_params = c.params, c.params_fused
                r.gflops_conv, r.gflops_attn = c.gflops_conv_fused, c.gflops_attn_fused
            built.append((r, v))
    return built


# ---------------------------------------------------------------------------------------------- latency


def pytorch_latency(built: list[tuple[BenchRow, Module]], x, runs: int, warmup: int) -> list[tuple]:
    """``pt_ms_median``/``pt_ms_min`` of every built model, round-robin; returns ``(row, model, outputs)`` of those
    that ran (outputs: the fused model's, as numpy, the reference of the ORT parity)."""
    import torch

    from .measure import fused_eval, interleaved_ms, model_outputs

    ran, fused = [], []
    with torch.inference_mode():
        for row, net in built:
            try:
                m = fused_eval(net)
                out = [t.numpy() for t in model_outputs(m(x))]
            except Exception as e:  # noqa: BLE001
                row.errors["pytorch"] = _error(e)
                continue
            ran.append((row, net, out))
            fused.append(m)
        stats = interleaved_ms([lambda m=m: m(x) for m in fused], runs, warmup)
    for (row, _, _), (med, mn) in zip(ran, stats):
        row.pt_ms_median, row.pt_ms_min = med, mn
    return ran


def ort_latency(ran: list[tuple], x, a, tmp: Path) -> None:
    """Export every model PyTorch ran, check output names and shapes, measure parity, then time round-robin."""
    from .measure import interleaved_ms, onnx_checked_session, output_rel_diff

    xn = x.numpy()
    ok, sessions = [], []
    for row, net, ref in ran:
        f = tmp / f"{len(ok)}-{row.model.replace('/', '_')}.onnx"
        try:
            s, out, _ = onnx_checked_session(net, x, f, ref, a.threads, spin=a.ort_spin, ftz=a.ftz)
        except Exception as e:  # noqa: BLE001
            row.errors["onnx"] = _error(e)
            continue
        top_k = row.head == "one2one"  # output0 is the top-k selection: compared as a set of rows
        row.ort_rel_diff = max(output_rel_diff(o, p, top_k and i == 0) for i, (o, p) in enumerate(zip(out, ref)))
        ok.append(row)
        sessions.append(s)
    stats = interleaved_ms([lambda s=s: s.run(None, {"images": xn}) for s in sessions], a.runs, a.warmup)
    for row, (med, mn) in zip(ok, stats):
        row.ort_ms_median, row.ort_ms_min = med, mn


# ---------------------------------------------------------------------------------------------- subprocesses


def run_worker(kind: str, spec: dict) -> dict:
    """The subprocess side: ``memory`` (one training step, :func:`train_step_peak`) or ``train`` (full training)."""
    import torch
    from ultralytics import YOLO

    from ..integration import activate

    activate()  # our YAMLs, modules and the generalist task

    if kind == "memory":
        from .measure import train_step_peak

        torch.set_num_threads(spec["threads"])  # after `import ultralytics`, which sets its own thread count
        y = YOLO(spec["yaml"])
        return train_step_peak(y.model, y.task, spec["batch"], spec["imgsz"], spec["device"])
    if kind == "train":
        model = YOLO(spec["yaml"])
        if spec.get("pst_topk") is not None:
            from ..nn import set_pst_options

            def pst_topk(trainer):  # train() builds its own model: set the eval topk there and on the EMA copy,
                for m in (trainer.model, trainer.ema.ema):  # which best.pt (finally validated) is saved from
                    set_pst_options(m, topk=spec["pst_topk"])

            model.add_callback("on_pretrain_routine_end", pst_topk)
        t0 = time.perf_counter()
        model.train(
            data=spec["data"],
            epochs=spec["epochs"],
            imgsz=spec["imgsz"],
            batch=spec["batch"],
            workers=0,
            device=spec["device"],
            seed=spec["seed"],
            deterministic=True,
            plots=False,
            pretrained=False,
            amp=False,
            val=False,
            project=spec["project"],
            name=spec["name"],
            exist_ok=True,
            verbose=False,
        )
        m = {k: float(v) for k, v in model.trainer.validator.metrics.results_dict.items()}  # final val of best.pt
        return {
            "map50": m.get("metrics/mAP50(B)"),
            "map50_95": m.get("metrics/mAP50-95(B)"),
            "metrics": m,
            "train_s": time.perf_counter() - t0,
        }
    raise ValueError(f"unknown worker {kind!r}")


def _subprocess(kind: str, spec: dict, timeout: float | None = None) -> dict:
    """Run :func:`run_worker` in a fresh interpreter that imports this very copy of ultra_ext; its result dict."""
    root = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {root!r}); from ultra_ext.bench.runner import main; "
        f"sys.exit(main(sys.argv[1:]))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, WORKER, kind, json.dumps(spec)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    line = next((s for s in reversed(p.stdout.splitlines()) if s.startswith("RESULT ")), None)
    if p.returncode or line is None:
        tail = (p.stderr.strip() or p.stdout.strip()).splitlines()[-1:] or [f"exit status {p.returncode}"]
        raise RuntimeError(f"{kind} worker failed: {tail[0][:300]}")
    return json.loads(line[len("RESULT ") :])


def training_memory(rows: list[BenchRow], a) -> None:
    done = {}  # YAML → worker result: the --pst-topk rows of one YAML train alike (topk is an eval setting)
    for r in rows:
        spec = {"yaml": r.yaml, "imgsz": a.mem_imgsz, "batch": a.mem_batch, "threads": a.threads, "device": a.device}
        try:
            out = done[r.yaml] if r.yaml in done else _subprocess("memory", spec)
        except Exception as e:  # noqa: BLE001
            r.errors["memory"] = _error(e)
            continue
        done[r.yaml] = out
        r.train_peak_mb = out["peak_mb"]
        if out["loss"] == "surrogate":
            r.notes.append(f"no synthetic targets for task {r.task}: train peak of a surrogate loss")
        if not out["valid"]:
            r.notes.append("the step did not exceed the earlier RSS high-water mark: train peak is a lower bound")


def train_all(rows: list[BenchRow], a, tmp: Path) -> None:
    from .measure import portable_data

    data = portable_data(Path(a.train).resolve(), tmp)
    device = "cpu" if a.device == "cpu" else a.device.replace("cuda:", "").replace("cuda", "0")
    for i, r in enumerate(rows):
        spec = {
            "yaml": r.yaml,
            "pst_topk": r.pst_topk,
            "data": str(data),
            "epochs": a.epochs,
            "imgsz": a.train_imgsz,
            "batch": a.train_batch,
            "seed": a.seed,
            "device": device,
            "project": str(tmp / "runs"),
            "name": f"{i}-{Path(r.yaml).stem}",
        }
        try:
            out = _subprocess("train", spec)
        except Exception as e:  # noqa: BLE001
            r.errors["train"] = _error(e)
            continue
        if out["map50"] is None:  # classify, semantic: trained, but no box mAP to report
            r.notes.append(f"no box mAP for task {r.task} (see its metrics above)")
        else:
            r.map50, r.map50_95 = out["map50"], out["map50_95"]
        print(
            f"  trained {r.model}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in out["metrics"].items())
            + f", {out['train_s']:.0f} s",
            flush=True,
        )


# ---------------------------------------------------------------------------------------------- report


def report(rows: list[BenchRow]) -> str:
    from .measure import table

    cols = [c for c in _TABLE if any(getattr(r, c[0]) is not None for r in rows)]
    head = ["model", "source", "task", "head"] + [h for _, h, _ in cols]
    body = [
        [r.model, r.source or "-", r.task or "-", r.head or "-"]
        + ["-" if getattr(r, k) is None else f.format(getattr(r, k)) for k, _, f in cols]
        for r in rows
    ]
    return table(head, body, left=4)


def plot(rows: list[BenchRow], out_dir: Path, subtitle: str = "") -> tuple[list[Path], str]:
    """Write ``latency_params.png`` and, when every plotted model has mAP50-95, ``latency_map.png``.

    Returns the written paths and a note on what was left out. Latency: ORT minimum when every model has one,
    else PyTorch minimum (one runtime per figure, so the points compare).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if r.pt_ms_min is not None]
    if not timed:
        return [], "no latency measured: no plots"
    ort = all(r.ort_ms_min is not None for r in timed)
    key, xlabel = (
        ("ort_ms_min", "ONNX Runtime CPU latency, min (ms)") if ort else ("pt_ms_min", "PyTorch CPU latency, min (ms)")
    )
    style = {
        "ours": {"marker": "o", "color": "tab:red", "label": "ours (ultra_ext)"},
        "stock": {"marker": "s", "color": "tab:blue", "label": "stock (Ultralytics)"},
    }
    out_dir.mkdir(parents=True, exist_ok=True)

    def figure(ykey: str, ylabel: str, scale: float, name: str) -> Path:
        measured = [r for r in timed if getattr(r, ykey) is not None]
        fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
        for source, st in style.items():
            pts = [(getattr(r, key), getattr(r, ykey) * scale) for r in measured if r.source == source]
            if pts:
                ax.scatter(*zip(*pts), s=45, zorder=3, **st)
        ax.margins(0.15)  # room for the labels of the outermost points
        fig.canvas.draw()  # fixes the axis limits, so data points map to their final pixel positions
        placed = []  # anchors of the labels so far: points that (nearly) coincide get stacked labels
        points = sorted((getattr(r, key), getattr(r, ykey) * scale, r.model) for r in measured)
        for x, y, label in points:
            px, py = ax.transData.transform((x, y)) * 72 / fig.dpi  # in points, like xytext
            dy = 4
            while any(abs(px - qx) < 60 and abs(py + dy - qy) < 10 for qx, qy in placed):
                dy -= 11  # one text line lower
            placed.append((px, py + dy))
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, dy), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel} vs latency {subtitle}".strip())
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path)
        plt.close(fig)
        return path

    paths = [figure("fused_params", "fused parameters (M)", 1e-6, "latency_params.png")]
    if all(r.map50_95 is not None for r in timed):
        paths.insert(0, figure("map50_95", "mAP50-95", 1.0, "latency_map.png"))
        return paths, ""
    return paths, "no mAP for every model (train with --train DATA): wrote only the latency-params plot"


# ---------------------------------------------------------------------------------------------- main


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass  # option defaults shown, the preset list (epilog) kept as written


def parse_args(argv=None) -> argparse.Namespace:
    """The options; with ``--preset NAME`` its models first and its option defaults (command-line options win)."""
    presets = argparse.ArgumentParser(prog="ultra-ext bench", add_help=False)
    presets.add_argument("--preset", choices=list(PRESETS), help="a named model set with option defaults (below)")
    known, _ = presets.parse_known_args(argv)
    p = argparse.ArgumentParser(
        prog="ultra-ext bench",
        description=__doc__.split("\n")[0],
        formatter_class=_HelpFormatter,
        parents=[presets],
        epilog=describe(),
    )
    p.add_argument(
        "models", nargs="*", help="model YAML names or paths, ours and stock (e.g. yolo11n.yaml gyolo-n.yaml)"
    )
    p.add_argument("--imgsz", type=int, default=640, help="cost and latency image size (batch 1)")
    p.add_argument("--runs", type=int, default=20, help="timed rounds (every model once per round)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per model first")
    p.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads, same for every model")
    p.add_argument("--seed", type=int, default=0, help="random weights, input and training seed")
    p.add_argument("--one2many", action="store_true", help="time end-to-end heads' one-to-many decode (NMS-free off)")
    p.add_argument("--skip-onnx", action="store_true", help="no ONNX export / ORT latency")
    p.add_argument(
        "--ort-spin",
        action="store_true",
        help="let idle ORT threads busy-wait (ORT's default; off here: it starves round-robin timing)",
    )
    p.add_argument("--no-ftz", dest="ftz", action="store_false", help="keep denormal floats (slow on x86)")
    p.add_argument("--skip-memory", action="store_true", help="no training-step memory")
    p.add_argument("--mem-imgsz", type=int, default=320, help="training-step memory image size")
    p.add_argument("--mem-batch", type=int, default=8, help="training-step memory batch size")
    p.add_argument(
        "--device", default=None, help="training-step memory and --train device (default: cuda if available)"
    )
    p.add_argument("--train", metavar="DATA", help="also train every model from scratch on this data YAML; report mAP")
    p.add_argument("--epochs", type=int, default=10, help="--train epochs")
    p.add_argument("--train-imgsz", type=int, default=320, help="--train image size")
    p.add_argument("--train-batch", type=int, default=16, help="--train batch size")
    p.add_argument(
        "--pst-topk",
        type=int,
        nargs="+",
        metavar="K",
        help="eval topk of PST attentions, one row per K for every PST model (none: the YAML's)",
    )
    p.add_argument("--csv", type=Path, help="write one row per model (columns: see the module docstring)")
    p.add_argument("--plot-dir", type=Path, help="write latency_params.png (and latency_map.png with --train) here")
    if known.preset:
        p.set_defaults(**PRESETS[known.preset].options)
    a = p.parse_args(argv)
    if a.preset:
        a.models = [*PRESETS[a.preset].models, *a.models]
    if not a.models:
        p.error(f"give model YAMLs or --preset NAME (presets: {', '.join(PRESETS)})")
    return a


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [WORKER]:
        print("RESULT " + json.dumps(run_worker(argv[1], json.loads(argv[2]))), flush=True)
        return 0
    a = parse_args(argv)
    t_start = time.perf_counter()
    import torch
    import ultralytics

    from ..integration import activate

    activate()
    if a.device is None:
        a.device = "cuda:0" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(a.threads)  # after `import ultralytics`, which sets its own thread count
    torch.set_flush_denormal(a.ftz)
    print(
        f"torch {torch.__version__}, ultralytics {ultralytics.__version__}, "
        f"ultra_ext from {Path(__file__).resolve().parents[1]}"
    )
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads {a.threads}, imgsz {a.imgsz} "
        f"batch 1, runs {a.runs}, end-to-end heads {'one2many' if a.one2many else 'one2one (NMS-free)'}, "
        f"ORT spinning {'on' if a.ort_spin else 'off'}, denormals {'flushed' if a.ftz else 'kept'}, "
        f"train-step memory {'off' if a.skip_memory else f'{a.mem_imgsz} px batch {a.mem_batch} on {a.device}'}"
    )
    if a.preset:
        print(f"preset {a.preset}: {' '.join(a.models)}")
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    stamp = lambda what: print(f"  [{time.perf_counter() - t_start:6.0f}s] {what}", flush=True)

    x = torch.rand((1, 3, a.imgsz, a.imgsz), generator=torch.Generator().manual_seed(a.seed))
    built = _build_rows(a, x)
    rows = [r for r, _ in built]
    for r in rows:
        r.imgsz, r.threads, r.device = a.imgsz, a.threads, a.device
    stamp("build + cost")
    ran = pytorch_latency([(r, net) for r, net in built if net is not None], x, a.runs, a.warmup)
    stamp("PyTorch latency")
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_onnx:
            ort_latency(ran, x, a, Path(tmp))
            stamp("ONNX Runtime latency")
        measured = [r for r, net in built if net is not None]
        del built, ran  # the subprocesses need memory more than the main process needs the models
        if not a.skip_memory:
            training_memory(measured, a)
            stamp("training-step memory")
        if a.train:
            print(
                f"training on {a.train}: {a.epochs} epochs, imgsz {a.train_imgsz}, batch {a.train_batch}, "
                f"seed {a.seed}, device {a.device}",
                flush=True,
            )
            train_all(measured, a, Path(tmp))
            stamp("training")

    print()
    print(report(rows))
    for r in rows:
        for note in r.notes:
            print(f"{r.model}: {note}")
        for what, err in r.errors.items():
            print(f"{r.model}: {what} failed: {err}")
    load = os.getloadavg()
    if load[1] > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load[1]:.2f} on {os.cpu_count()} CPUs: other processes competed; "
            "trust min over median"
        )
    if a.csv:
        a.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(r.cells() for r in rows)
        print(f"wrote {a.csv}")
    if a.plot_dir:
        paths, note = plot(
            rows, a.plot_dir, f"({a.imgsz} px, batch 1, {a.threads} thread{'s' if a.threads > 1 else ''})"
        )
        for p in paths:
            print(f"wrote {p}")
        if note:
            print(note)
    print(f"total runtime {time.perf_counter() - t_start:.0f} s")
    return 1 if any(r.errors for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
