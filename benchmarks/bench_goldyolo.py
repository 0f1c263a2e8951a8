"""Gold-YOLO-N vs stock YOLO11n and ultra_ext YOLOv12n, side by side in one run.

Cost and latency part (always, unless ``--train-only``), every model built from its YAML with seeded random
weights (:func:`common.randomize`; latency does not depend on the values, parity checks need non-trivial ones):

* params (training graph), fused params and GFLOPs (:func:`ultra_ext.utils.cost.model_cost`): fused conv-only
  (the papers' convention: Gold-YOLO-N is published as 5.6M / 12.1G) and fused including the attention matmuls;
* PyTorch CPU latency at ``--imgsz``, batch 1: ``model.fuse()`` (RepVGG blocks merged), eval,
  ``torch.inference_mode``, warm-up, then ``--runs`` rounds in which every model runs once in rotating order;
  median and minimum;
* ONNX Runtime CPU latency of the fused model exported as Ultralytics does (``torch.onnx.export`` opset 18,
  TorchScript exporter, Detect head in export mode, then onnxslim), CPU EP, idle-thread spinning off unless
  ``--ort-spin`` (see :func:`common.ort_session`), timed the same way; ``ORT rel |Δ|`` is the largest absolute
  difference between the ORT output and the model's own fused PyTorch output, over the latter's largest value.

Ratios are against yolo11n. Goal: goldyolo-n ORT latency / yolo11n <= 1.8 (the paper's TensorRT T4 ratio is
1.95). ``--profile`` adds ORT per-node profiles: time by operator type and by YAML layer.

Training part (``--train``, ``--train-models`` default yolo11n and goldyolo-n): each model trained from scratch (YAML, no weights) in its own subprocess through the
Ultralytics API with identical settings (``--epochs``, ``--train-imgsz``, ``--batch``, SGD/Ultralytics defaults,
``workers=0``, ``device=cpu``, fixed seed, deterministic, no plots, run folder in a temp dir), on a temp copy of the
dataset (so label caches land there, not in the dataset) with an absolute ``path:``; then mAP50 and mAP50-95 of
the final validation on the val split, and the wall time per model.

Every torch run uses ``torch.set_num_threads(--threads)``, every ORT session ``intra_op_num_threads=--threads``.
Training uses Ultralytics' own CPU thread count (``os.cpu_count() - 1``, at most 8) for both models.

Usage::

    python benchmarks/bench_goldyolo.py                              # cost + latency (~3 min on 2 cores)
    python benchmarks/bench_goldyolo.py --profile --csv out.csv      # plus ORT per-op profiles
    nice -n 10 python benchmarks/bench_goldyolo.py --train-only --epochs 10 --train-imgsz 320
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

from pathlib import Path

import torch  # noqa: E402
from common import (  # noqa: E402  (before ultralytics: it puts the working tree on sys.path)
    COST_LATENCY_COLUMNS,
    DEFAULT_DATA,
    LATENCY_RATIOS,
    build,
    export_onnx,
    format_profile,
    fused_eval,
    interleaved_ms,
    onnx_node_count,
    ort_profile,
    ort_session,
    portable_data,
    randomize,
    resolve_data,
    table,
)

MODELS = {"yolo11n": "yolo11n.yaml", "yolov12n": "yolov12n.yaml", "goldyolo-n": "goldyolo-n.yaml"}
REFERENCE = "yolo11n"
GOAL = ("goldyolo-n", "ort_ms", 1.8)  # model, metric, max ratio vs REFERENCE


# ---------------------------------------------------------------------------------------------- latency


def pytorch_latency(rows: list[dict], imgsz: int, runs: int, warmup: int) -> None:
    x = torch.rand(1, 3, imgsz, imgsz)
    fused = [fused_eval(r["model"]) for r in rows]
    with torch.inference_mode():
        for r, m in zip(rows, fused):
            r["pt_out"] = m(x)[0].numpy()  # (1, 4 + nc, A): ORT's reference below
        stats = interleaved_ms([lambda m=m: m(x) for m in fused], runs, warmup)
    for r, (med, mn) in zip(rows, stats):
        r["pt_ms"], r["pt_min_ms"] = med, mn
    rows[0]["pt_input"] = x


def ort_latency(rows: list[dict], imgsz: int, runs: int, warmup: int, threads: int, tmp: Path, profile: bool,
                spin: bool) -> None:
    import numpy as np

    sessions = []
    for r in rows:
        f = tmp / f"{r['name']}.onnx"
        r["onnx_slim"] = export_onnx(r["model"], imgsz, f)
        r["onnx_nodes"] = onnx_node_count(f)
        sessions.append(ort_session(f, threads, spin=spin))
    x = rows[0]["pt_input"].numpy() if "pt_input" in rows[0] else np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    for r, s in zip(rows, sessions):
        out = s.run(None, {"images": x})[0]
        if "pt_out" in r:  # same input as the PyTorch timing: ORT vs the model's own fused PyTorch output
            r["ort_parity"] = float(np.abs(out - r["pt_out"]).max() / np.abs(r["pt_out"]).max())
    stats = interleaved_ms([lambda s=s: s.run(None, {"images": x}) for s in sessions], runs, warmup)
    for r, (med, mn) in zip(rows, stats):
        r["ort_ms"], r["ort_min_ms"] = med, mn
    if profile:
        for r in rows:
            r["ort_profile"] = ort_profile(tmp / f"{r['name']}.onnx", x, threads, runs, tmp / r["name"], spin)


# ---------------------------------------------------------------------------------------------- training


def train_worker(spec: dict) -> dict:
    """Train one model from its YAML in this (fresh) process; prints and returns its metrics and wall time."""
    import ultra_ext  # noqa: F401  (resolves ultra_ext YAMLs, registers modules, safe-loads checkpoints)
    from ultralytics import YOLO

    model = YOLO(spec["yaml"])
    t0 = time.perf_counter()
    model.train(data=spec["data"], epochs=spec["epochs"], imgsz=spec["imgsz"], batch=spec["batch"], workers=0,
                device="cpu", seed=spec["seed"], deterministic=True, plots=False, pretrained=False, amp=False,
                val=False, project=spec["project"], name=spec["name"], exist_ok=True, verbose=False)
    wall = time.perf_counter() - t0
    m = model.trainer.validator.metrics.results_dict  # final validation (Ultralytics' final_eval of best.pt)
    out = {"map50": m["metrics/mAP50(B)"], "map": m["metrics/mAP50-95(B)"], "train_s": wall,
           "s_per_epoch": wall / spec["epochs"], "threads": torch.get_num_threads()}
    print("TRAIN " + json.dumps(out), flush=True)
    return out


def train_all(rows: list[dict], a, tmp: Path) -> None:
    data = portable_data(resolve_data(a.data, DEFAULT_DATA), tmp)
    print(f"training on {resolve_data(a.data, DEFAULT_DATA)}: {a.epochs} epochs, imgsz {a.train_imgsz}, batch {a.batch}, seed {a.seed}")
    for r in rows:
        spec = {"yaml": MODELS[r["name"]], "data": str(data), "epochs": a.epochs, "imgsz": a.train_imgsz,
                "batch": a.batch, "seed": a.seed, "project": str(tmp / "runs"), "name": r["name"]}
        p = subprocess.run([sys.executable, __file__, "--_train-worker", json.dumps(spec)], capture_output=True, text=True)
        line = next((s for s in p.stdout.splitlines() if s.startswith("TRAIN ")), None)
        if p.returncode or line is None:
            raise RuntimeError(f"training {r['name']} failed:\n{(p.stderr or p.stdout)[-4000:]}")
        r.update(json.loads(line[len("TRAIN "):]))
        print(f"  {r['name']}: mAP50 {r['map50']:.3f}, mAP50-95 {r['map']:.3f}, {r['train_s']:.0f} s", flush=True)


# ---------------------------------------------------------------------------------------------- report

COLUMNS = [  # key, header, format
    *COST_LATENCY_COLUMNS,
    ("ort_parity", "ORT rel |Δ|", "{:.1e}"),
    ("map50", "mAP50", "{:.3f}"),
    ("map", "mAP50-95", "{:.3f}"),
    ("train_s", "train s", "{:.0f}"),
]
RATIOS = [*LATENCY_RATIOS, ("train_s", "train s")]


def report(rows: list[dict]) -> tuple[str, list[dict]]:
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    body = [[r["name"]] + [f.format(r[k]) if k in r else "-" for k, _, f in cols] for r in rows]
    text = [table(["model"] + [h for _, h, _ in cols], body, left=1), ""]
    ref = next((r for r in rows if r["name"] == REFERENCE), None)
    ratios = []
    if ref is None:
        return "\n".join(text), ratios
    rcols = [(k, h) for k, h in RATIOS if k in ref]
    for r in rows:
        ratios.append({"model": r["name"], **{k: r[k] / ref[k] for k, _ in rcols if k in r and ref[k]}})
    rbody = [[rr["model"]] + [f"{rr[k]:.2f}" if k in rr else "-" for k, _ in rcols] for rr in ratios]
    text += [f"ratio vs {REFERENCE}", table(["model"] + [h for _, h in rcols], rbody, left=1), ""]
    name, key, limit = GOAL
    rr = next((x for x in ratios if x["model"] == name), {})
    if key in rr:
        ok = lambda v: "met" if v <= limit else "MISSED"  # noqa: E731
        kmin = key.replace("_ms", "_min_ms")
        text.append(f"goal {name} ORT latency / {REFERENCE} <= {limit}: median {rr[key]:.2f} {ok(rr[key])}; "
                    f"min {rr[kmin]:.2f} {ok(rr[kmin])}")
    return "\n".join(text), ratios


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--imgsz", type=int, default=640, help="latency / cost image size")
    p.add_argument("--runs", type=int, default=30, help="timed rounds (each model once per round)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads, same for every model")
    p.add_argument("--skip-onnx", action="store_true")
    p.add_argument("--ort-spin", action="store_true",
                   help="let idle ORT threads busy-wait (ORT's default; off here: it starves round-robin timing)")
    p.add_argument("--profile", action="store_true", help="ORT per-node profile: time by op type and by layer")
    p.add_argument("--train", action="store_true", help="also train every model from scratch and report mAP")
    p.add_argument("--train-only", action="store_true", help="only the training part")
    p.add_argument("--train-models", nargs="+", default=["yolo11n", "goldyolo-n"], choices=list(MODELS))
    p.add_argument("--data", type=Path, help="dataset YAML (default: ../shared/datasets/raccoon, else raccoon-mini)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", type=Path, help="also write one CSV row per model (ratios included)")
    p.add_argument("--_train-worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.train = a.train or a.train_only
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a._train_worker:
        train_worker(json.loads(a._train_worker))
        return 0
    t_start = time.perf_counter()
    import ultralytics

    import ultra_ext
    from ultra_ext.utils.cost import model_cost

    torch.set_num_threads(a.threads)  # after `import ultralytics`, which sets its own thread count
    print(f"torch {torch.__version__}, ultralytics {ultralytics.__version__}, ultra_ext from {Path(ultra_ext.__file__).parent}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs" + ("" if a.train_only else
          f", threads {a.threads}, latency imgsz {a.imgsz} batch 1, runs {a.runs}, ORT spinning {'on' if a.ort_spin else 'off'}"))
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    stamp = lambda what: print(f"  [{time.perf_counter() - t_start:6.0f}s] {what}", flush=True)  # noqa: E731
    names = [] if a.train_only else list(a.models)
    names += [n for n in (a.train_models if a.train else []) if n not in names]
    rows = [{"name": n} for n in names]
    with tempfile.TemporaryDirectory() as tmp:
        if not a.train_only:
            bench = [r for r in rows if r["name"] in a.models]
            for r in bench:
                r["model"] = randomize(build(MODELS[r["name"]]))
                c = model_cost(r["model"], a.imgsz).as_dict()
                r.update({k: c[k] for k in ("params", "params_fused", "gflops_conv_fused", "gflops_attn_fused")})
            stamp("cost")
            pytorch_latency(bench, a.imgsz, a.runs, a.warmup)
            stamp("PyTorch latency")
            if not a.skip_onnx:
                ort_latency(bench, a.imgsz, a.runs, a.warmup, a.threads, Path(tmp), a.profile, a.ort_spin)
                stamp("ONNX Runtime latency" + (" + profile" if a.profile else ""))
        if a.train:
            train_all([r for r in rows if r["name"] in a.train_models], a, Path(tmp))
            stamp("training")
    text, ratios = report(rows)
    print()
    print(text)
    if a.profile:
        print()
        print(format_profile(rows))
    load = os.getloadavg()
    if load[1] > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load[1]:.2f} on {os.cpu_count()} CPUs: other processes competed; trust min over median")
    print(f"\ntotal runtime {time.perf_counter() - t_start:.0f} s")
    if a.csv:
        keys = ["name"] + [k for k, _, _ in COLUMNS] + ["onnx_slim", "onnx_nodes", "s_per_epoch"]
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys + [f"ratio_{k}" for k, _ in RATIOS], extrasaction="ignore")
            w.writeheader()
            for r in rows:
                rr = next((x for x in ratios if x["model"] == r["name"]), {})
                w.writerow({**{k: r.get(k, "") for k in keys}, **{f"ratio_{k}": rr.get(k, "") for k, _ in RATIOS}})
        print(f"wrote {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
