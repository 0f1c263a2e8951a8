"""PST (Pyramid Sparse Transformer) in YOLO11n and YOLOv12n: cost, CPU latency, fine-stage overhead, raccoon mAP.

Cost and latency part (always, unless ``--train-only``). Six rows, each built from its YAML with seeded random
weights (:func:`common.randomize`; the two PST rows of one model share the same weights):

=====================  ============================================================================
yolo11n                stock ``yolo11n.yaml``
yolo11n-pst-k0         ``yolo11n-pst.yaml`` (true YOLO11 + PST), fine stage off (``topk 0``, coarse only)
yolo11n-pst-k8         the same weights, fine stage on (``topk 8``, the published inference setting)
yolov12n               ultra_ext ``yolov12n.yaml``
yolov12n-pst-k0/-k8    ``yolov12n-pst.yaml`` (the published PST topology: YOLO12 backbone), topk 0 / 8
=====================  ============================================================================

The topk-8 rows use ``--gate`` (default ``fixed``: the 0.5 blend that ``auto`` picks for a gate never trained;
``learned`` adds the gate's ``Conv1d`` and sigmoid per token, the published inference path).

* params (training graph), fused params and GFLOPs (:func:`ultra_ext.utils.cost.model_cost`): fused conv-only
  (the papers' convention) and fused including the attention matmuls (coarse ``4·N·M·C``, fine ``16·N·k·C``);
* PyTorch CPU latency at ``--imgsz``, batch 1: ``model.fuse()``, eval, ``torch.inference_mode``, warm-up, then
  ``--runs`` rounds in which every row runs once in rotating order; median and minimum;
* ONNX Runtime CPU latency: each row exported on its own (the topk is frozen into the graph: the fine stage is a
  ``TopK`` + ``GatherElements`` + small attention, or absent), as Ultralytics exports (opset 18, TorchScript
  exporter, Detect head in export mode, onnxslim), CPU EP, idle-thread spinning off unless ``--ort-spin``,
  timed the same way; ``ORT rel |Δ|`` = max |ORT − fused PyTorch| of the row's own output over its largest value.

Denormals are flushed to zero in torch and ORT (``--no-ftz`` keeps them): with random weights the attention
logits of yolov12n-pst's P4 PST layer lie so far apart that ~12% of its softmax outputs are denormal, and ORT's
MatMul on them is ~16× slower — a value artefact that would charge ~13 ms to the architecture.

Ratios: every PST row against its base model, and topk 8 against topk 0 of the same model — the fine stage's
cost. Goal: topk-8 / topk-0 latency <= 1.10 in PyTorch and in ORT. ``--profile`` adds ORT per-node profiles
(by operator type and by YAML layer) and a PyTorch breakdown: every PST attention timed alone on its captured
inputs with topk 0 and 8, and the fine stage's extra ``kv(x)`` 1×1 convolution alone.

Training part (``--train``/``--train-only``): yolo11n and yolo11n-pst trained from scratch (YAML, no weights),
each in its own subprocess with identical settings (``--epochs``, ``--train-imgsz``, ``--batch``, Ultralytics
defaults otherwise, ``workers=0``, ``device=cpu``, seed 0, deterministic, ``val=False`` so only the last epoch
is validated, no plots, run folder in a temp dir), on a temp copy of the dataset with an absolute ``path:``. The
published recipe trains PST coarse-only (``train_topk 0``). Then, in the same subprocess, the final weights
(``best.pt``) are validated on the val split: yolo11n once; yolo11n-pst with topk 0, topk 8 gate ``auto`` (= the
fixed 0.5 blend: the gate was never trained) and topk 8 gate ``learned`` (its random init, as the published
code runs it). ``--train-fine`` (or ``--train-models ... yolo11n-pst-fine``) adds yolo11n-pst trained with
``train_topk 8`` (the fine stage and gate train), validated with topk 0, topk 8 gate ``auto`` (= learned, now
trained) and topk 8 ``fixed``. The "gate trained" column reads the checkpoint's ``gate_trained`` buffers.

Usage::

    python benchmarks/bench_pst.py                                   # cost + latency (~2 min on 2 cores)
    python benchmarks/bench_pst.py --profile --runs 60 --csv pst.csv
    nice -n 10 python benchmarks/bench_pst.py --train-only --epochs 25          # ~20 min on 2 cores
    nice -n 10 python benchmarks/bench_pst.py --train-only --train-models yolo11n-pst-fine --epochs 25
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

import torch
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

# name: (yaml, eval topk or None for a model without PST, base model of the ratio)
ROWS = {
    "yolo11n": ("yolo11n.yaml", None, None),
    "yolo11n-pst-k0": ("yolo11n-pst.yaml", 0, "yolo11n"),
    "yolo11n-pst-k8": ("yolo11n-pst.yaml", 8, "yolo11n"),
    "yolov12n": ("yolov12n.yaml", None, None),
    "yolov12n-pst-k0": ("yolov12n-pst.yaml", 0, "yolov12n"),
    "yolov12n-pst-k8": ("yolov12n-pst.yaml", 8, "yolov12n"),
}
FINE_GOAL = 1.10  # topk-8 / topk-0 latency of the same model, PyTorch and ORT


def _configure(model: torch.nn.Module, topk: int | None, gate: str) -> torch.nn.Module:
    if topk is not None:
        from ultra_ext.nn import set_pst_options

        if not set_pst_options(model, topk=topk, gate=gate):
            raise RuntimeError("no PST attention found in a PST row's model")
    return model


def build_rows(names: list[str], gate: str) -> list[dict]:
    """One dict per row with its configured model; rows of one YAML share one set of random weights."""
    import copy

    built, rows = {}, []
    for n in names:
        yaml, topk, base = ROWS[n]
        if yaml not in built:
            built[yaml] = randomize(build(yaml))
        rows.append({"name": n, "topk": topk, "base": base,
                     "model": _configure(copy.deepcopy(built[yaml]), topk, gate)})
    return rows


# ---------------------------------------------------------------------------------------------- latency


def pytorch_latency(rows: list[dict], x: torch.Tensor, runs: int, warmup: int) -> None:
    fused = [fused_eval(r["model"]) for r in rows]
    with torch.inference_mode():
        for r, m in zip(rows, fused):
            r["pt_out"] = m(x)[0].numpy()  # (1, 4 + nc, A): ORT's reference below
        stats = interleaved_ms([lambda m=m: m(x) for m in fused], runs, warmup)
    for r, (med, mn) in zip(rows, stats):
        r["pt_ms"], r["pt_min_ms"] = med, mn


def ort_latency(rows: list[dict], x: torch.Tensor, a, tmp: Path) -> None:
    import numpy as np

    sessions = []
    for r in rows:  # one export per row: the topk (and whether the fine stage exists at all) is baked in
        f = tmp / f"{r['name']}.onnx"
        r["onnx_slim"] = export_onnx(r["model"], x.shape[-1], f)
        r["onnx_nodes"] = onnx_node_count(f)
        sessions.append(ort_session(f, a.threads, spin=a.ort_spin, ftz=a.ftz))
    xn = x.numpy()
    for r, s in zip(rows, sessions):
        out = s.run(None, {"images": xn})[0]
        r["ort_parity"] = float(np.abs(out - r["pt_out"]).max() / np.abs(r["pt_out"]).max())
    stats = interleaved_ms([lambda s=s: s.run(None, {"images": xn}) for s in sessions], a.runs, a.warmup)
    for r, (med, mn) in zip(rows, stats):
        r["ort_ms"], r["ort_min_ms"] = med, mn
    if a.profile:
        for r in rows:
            r["ort_profile"] = ort_profile(tmp / f"{r['name']}.onnx", xn, a.threads, a.runs, tmp / r["name"],
                                           a.ort_spin, ftz=a.ftz)


def fine_stage_breakdown(rows: list[dict], x: torch.Tensor, runs: int, warmup: int) -> str:
    """Each PST attention of every topk-0 row timed alone on its captured inputs, with topk 0 and topk 8.

    Isolates the fine stage from the rest of the network (whole-model ratios on a shared machine carry the
    other layers' noise); the fine stage's extra ``kv(x)`` projection is timed alone too.
    """
    import copy

    from ultra_ext.nn import PyramidSparseAttention

    lines = []
    k8 = {r["name"]: r for r in rows if r["topk"]}
    for r in rows:
        if r["topk"] != 0 or r["name"].replace("-k0", "-k8") not in k8:
            continue
        gate = next(m for m in k8[r["name"].replace("-k0", "-k8")]["model"].modules()
                    if isinstance(m, PyramidSparseAttention)).gate_mode
        m = fused_eval(r["model"])
        captured = []
        hooks = [mod.register_forward_pre_hook(lambda mod, args, out=captured: out.append((mod, args)))
                 for mod in m.modules() if isinstance(mod, PyramidSparseAttention)]
        with torch.inference_mode():
            m(x)
        for h in hooks:
            h.remove()
        lines.append(f"{r['name'][:-3]}: PST attentions alone, PyTorch, {runs} rounds (median ms; topk 8 gate {gate})")
        tot0 = tot8 = 0.0
        for i, (att, (xf, up)) in enumerate(captured):
            a0, a8 = att, copy.deepcopy(att)
            a0.configure(topk=0)
            a8.configure(topk=8, gate=gate)
            fns = [lambda a=a0, xf=xf, up=up: a(xf, up), lambda a=a8, xf=xf, up=up: a(xf, up),
                   lambda a=a0, xf=xf: a.kv(xf)]
            with torch.inference_mode():
                (t0, _), (t8, _), (tkv, _) = interleaved_ms(fns, runs, warmup)
            tot0, tot8 = tot0 + t0, tot8 + t8
            _, c, h, w = xf.shape
            lines.append(f"  attn {i}: x {c}×{h}×{w} (N {h * w}), upper {up.shape[-2]}×{up.shape[-1]}, "
                         f"heads {c // 32}: topk 0 {t0:.2f} ms, topk 8 {t8:.2f} ms (+{t8 - t0:.2f}), "
                         f"of which kv(x) {tkv:.2f}")
        lines.append(f"  all: topk 0 {tot0:.2f} ms, topk 8 {tot8:.2f} ms, fine stage +{tot8 - tot0:.2f} ms "
                     f"vs whole model (PT median, topk 0) {r['pt_ms']:.1f} ms: +{(tot8 - tot0) / r['pt_ms']:.1%}"
                     if "pt_ms" in r else f"  all: topk 0 {tot0:.2f} ms, topk 8 {tot8:.2f} ms")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- training

TRAIN_RUNS = {  # name: (yaml, train_topk or None, validations [(label, topk, gate)])
    "yolo11n": ("yolo11n.yaml", None, [("-", None, None)]),
    "yolo11n-pst": ("yolo11n-pst.yaml", 0, [("topk 0", 0, "auto"), ("topk 8, gate auto (= fixed 0.5)", 8, "auto"),
                                            ("topk 8, gate learned (random init)", 8, "learned")]),
    "yolo11n-pst-fine": ("yolo11n-pst.yaml", 8, [("topk 0", 0, "auto"), ("topk 8, gate auto (= learned)", 8, "auto"),
                                                 ("topk 8, gate fixed 0.5", 8, "fixed")]),
}


def train_worker(spec: dict) -> None:
    """Train one model from its YAML in this (fresh) process, then validate its final weights per setting.

    Prints ``TRAIN {json}``: wall time, the trainer's own final validation, and one entry per validation.
    """
    from ultralytics import YOLO

    import ultra_ext  # noqa: F401  (resolves ultra_ext YAMLs, registers modules, safe-loads checkpoints)
    from ultra_ext.nn import set_pst_options

    model = YOLO(spec["yaml"])
    if spec["train_topk"]:
        # The trainer builds its own model from the YAML inside train(): switch the fine stage on there, before
        # the first step (the EMA copy made just before this callback gets the same settings).
        def fine_on(trainer):
            for m in (trainer.model, trainer.ema.ema):
                set_pst_options(m, train_topk=spec["train_topk"])

        model.add_callback("on_pretrain_routine_end", fine_on)
    t0 = time.perf_counter()
    model.train(data=spec["data"], epochs=spec["epochs"], imgsz=spec["imgsz"], batch=spec["batch"], workers=0,
                device="cpu", seed=spec["seed"], deterministic=True, plots=False, pretrained=False, amp=False,
                val=False, project=spec["project"], name=spec["name"], exist_ok=True, verbose=False)
    wall = time.perf_counter() - t0
    final = model.trainer.validator.metrics.results_dict
    weights = model.trainer.best if model.trainer.best.exists() else model.trainer.last
    out = {"train_s": wall, "s_per_epoch": wall / spec["epochs"], "threads": torch.get_num_threads(),
           "trainer_map": final["metrics/mAP50-95(B)"], "weights": weights.name, "vals": []}
    for label, topk, gate in spec["vals"]:
        m = YOLO(str(weights))
        if topk is not None:
            set_pst_options(m, topk=topk, gate=gate)
        gate_trained = [float(b) for n, b in m.model.named_buffers() if n.endswith("gate_trained")]
        r = m.val(data=spec["data"], imgsz=spec["imgsz"], batch=spec["batch"], device="cpu", workers=0, plots=False,
                  project=spec["project"], name=f"{spec['name']}-val", exist_ok=True, verbose=False).results_dict
        out["vals"].append({"eval": label, "map50": r["metrics/mAP50(B)"], "map": r["metrics/mAP50-95(B)"],
                            "gate_trained": max(gate_trained) if gate_trained else None})
    print("TRAIN " + json.dumps(out), flush=True)


def train_all(names: list[str], a, tmp: Path) -> list[dict]:
    src = resolve_data(a.data, DEFAULT_DATA)
    data = portable_data(src, tmp)
    print(f"training on {src}: {a.epochs} epochs, imgsz {a.train_imgsz}, batch {a.batch}, seed {a.seed}")
    results = []
    for n in names:
        yaml, train_topk, vals = TRAIN_RUNS[n]
        spec = {"yaml": yaml, "train_topk": train_topk, "vals": vals, "data": str(data), "epochs": a.epochs,
                "imgsz": a.train_imgsz, "batch": a.batch, "seed": a.seed, "project": str(tmp / "runs"), "name": n}
        cmd = [sys.executable, __file__, "--_train-worker", json.dumps(spec)]
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((s for s in p.stdout.splitlines() if s.startswith("TRAIN ")), None)
        if p.returncode or line is None:
            raise RuntimeError(f"training {n} failed:\n{(p.stderr or p.stdout)[-4000:]}")
        r = {"model": n, "train_topk": train_topk, **json.loads(line[len("TRAIN "):])}
        results.append(r)
        print(f"  {n}: {r['train_s']:.0f} s; " + "; ".join(f"{v['eval']}: mAP50-95 {v['map']:.3f}" for v in r["vals"]),
              flush=True)
    return results


def train_report(results: list[dict]) -> str:
    body = []
    for r in results:
        trained = "-" if r["train_topk"] is None else f"topk {r['train_topk']}"
        for i, v in enumerate(r["vals"]):
            gt = "-" if v["gate_trained"] is None else ("yes" if v["gate_trained"] > 0 else "no")
            body.append([r["model"] if i == 0 else "", trained if i == 0 else "", v["eval"], gt, f"{v['map50']:.3f}",
                         f"{v['map']:.3f}", f"{r['train_s']:.0f}" if i == 0 else ""])
    text = table(["model", "trained with", "evaluated with", "gate trained", "mAP50", "mAP50-95", "train s"], body,
                 left=4)
    checks = ", ".join(f"{r['model']} {r['trainer_map']:.3f}" for r in results)
    return text + f"\n(trainer's own final validation of {results[0]['weights']}, mAP50-95: {checks})"


# ---------------------------------------------------------------------------------------------- report

COLUMNS = [*COST_LATENCY_COLUMNS, ("ort_parity", "ORT rel |Δ|", "{:.1e}"), ("onnx_nodes", "ONNX nodes", "{}")]
RATIOS = LATENCY_RATIOS


def report(rows: list[dict]) -> tuple[str, list[dict]]:
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    body = [[r["name"]] + [f.format(r[k]) if k in r else "-" for k, _, f in cols] for r in rows]
    text = [table(["model"] + [h for _, h, _ in cols], body, left=1), ""]
    by_name = {r["name"]: r for r in rows}
    pairs = [(r["name"], r["base"]) for r in rows if r["base"] in by_name]
    pairs += [(r["name"], r["name"].replace("-k8", "-k0")) for r in rows
              if r["topk"] and r["name"].replace("-k8", "-k0") in by_name]
    ratios = []
    for num, den in pairs:
        n, d = by_name[num], by_name[den]
        ratios.append({"ratio": f"{num} / {den}", **{k: n[k] / d[k] for k, _ in RATIOS if k in n and k in d and d[k]}})
    if not ratios:
        return "\n".join(text), ratios
    rcols = [(k, h) for k, h in RATIOS if any(k in rr for rr in ratios)]
    rbody = [[rr["ratio"]] + [f"{rr[k]:.3f}" if k in rr else "-" for k, _ in rcols] for rr in ratios]
    text += ["ratios", table(["ratio"] + [h for _, h in rcols], rbody, left=1), ""]
    ok = lambda v: "met" if v <= FINE_GOAL else "MISSED"
    for rr in ratios:
        if "-k8 / " in rr["ratio"] and rr["ratio"].endswith("-k0"):
            keys = (("pt_ms", "PT med"), ("pt_min_ms", "PT min"), ("ort_ms", "ORT med"), ("ort_min_ms", "ORT min"))
            parts = [f"{lab} {rr[k]:.3f} {ok(rr[k])}" for k, lab in keys if k in rr]
            text.append(f"goal fine stage {rr['ratio']} <= {FINE_GOAL}: " + ", ".join(parts))
    return "\n".join(text), ratios


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--gate", default="fixed", choices=["fixed", "learned"],
                   help="gate of the topk-8 rows: fixed 0.5 blend (what 'auto' picks untrained) or the Conv1d gate")
    p.add_argument("--imgsz", type=int, default=640, help="latency / cost image size")
    p.add_argument("--runs", type=int, default=30, help="timed rounds (each row once per round)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads, same for every row")
    p.add_argument("--skip-onnx", action="store_true")
    p.add_argument("--ort-spin", action="store_true",
                   help="let idle ORT threads busy-wait (ORT's default; off here: it starves round-robin timing)")
    p.add_argument("--no-ftz", dest="ftz", action="store_false",
                   help="keep denormals (default: flushed to zero in torch and ORT; see the README on random weights)")
    p.add_argument("--profile", action="store_true",
                   help="ORT per-node profiles and a PyTorch timing of every PST attention alone (topk 0 vs 8)")
    p.add_argument("--train", action="store_true", help="also train yolo11n and yolo11n-pst and report mAP")
    p.add_argument("--train-only", action="store_true", help="only the training part")
    p.add_argument("--train-fine", action="store_true", help="also train yolo11n-pst with train_topk 8 (gate learns)")
    p.add_argument("--train-models", nargs="+", default=["yolo11n", "yolo11n-pst"], choices=list(TRAIN_RUNS),
                   help="training runs (--train-fine appends yolo11n-pst-fine)")
    p.add_argument("--data", type=Path, help="dataset YAML (default: ../shared/datasets/raccoon, else raccoon-mini)")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--train-imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", type=Path, help="also write one CSV row per latency row (ratios to its base included)")
    p.add_argument("--_train-worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.train = a.train or a.train_only or a.train_fine
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
    torch.set_flush_denormal(a.ftz)  # random weights: see common.ort_session(ftz=...)
    print(f"torch {torch.__version__}, ultralytics {ultralytics.__version__}, "
          f"ultra_ext from {Path(ultra_ext.__file__).parent}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs" + ("" if a.train_only else
          f", threads {a.threads}, latency imgsz {a.imgsz} batch 1, runs {a.runs}, ORT spinning "
          f"{'on' if a.ort_spin else 'off'}, denormals {'flushed' if a.ftz else 'kept'}, topk-8 gate {a.gate}"))
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    stamp = lambda what: print(f"  [{time.perf_counter() - t_start:6.0f}s] {what}", flush=True)
    rows, results, extra = [], [], ""
    with tempfile.TemporaryDirectory() as tmp:
        if not a.train_only:
            rows = build_rows(a.models, a.gate)
            for r in rows:
                c = model_cost(r["model"], a.imgsz).as_dict()
                r.update({k: c[k] for k in ("params", "params_fused", "gflops_conv_fused", "gflops_attn_fused")})
            stamp("cost")
            x = torch.rand(1, 3, a.imgsz, a.imgsz, generator=torch.Generator().manual_seed(0))
            pytorch_latency(rows, x, a.runs, a.warmup)
            stamp("PyTorch latency")
            if not a.skip_onnx:
                ort_latency(rows, x, a, Path(tmp))
                stamp("ONNX Runtime latency" + (" + profile" if a.profile else ""))
            if a.profile:
                extra = fine_stage_breakdown(rows, x, a.runs, a.warmup)
                stamp("PyTorch fine-stage breakdown")
        if a.train:
            names = list(dict.fromkeys(a.train_models + (["yolo11n-pst-fine"] if a.train_fine else [])))
            results = train_all(names, a, Path(tmp))
            stamp("training")
    print()
    ratios = []
    if rows:
        text, ratios = report(rows)
        print(text)
        if a.profile:
            print()
            print(extra)
            print(format_profile(rows))
    if results:
        print()
        print(train_report(results))
    load = os.getloadavg()
    if load[1] > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load[1]:.2f} on {os.cpu_count()} CPUs: other processes competed; "
              "trust min over median")
    print(f"\ntotal runtime {time.perf_counter() - t_start:.0f} s")
    if a.csv and rows:
        keys = ["name", "topk"] + [k for k, _, _ in COLUMNS] + ["onnx_slim"]
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys + [f"ratio_base_{k}" for k, _ in RATIOS], extrasaction="ignore")
            w.writeheader()
            for r in rows:
                rr = next((x for x in ratios if x["ratio"] == f"{r['name']} / {r['base']}"), {})
                w.writerow({**{k: r.get(k, "") for k in keys}, **{f"ratio_base_{k}": rr.get(k, "") for k, _ in RATIOS}})
        print(f"wrote {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
