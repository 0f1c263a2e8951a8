"""Stock Ultralytics YOLO12 vs ultra_ext YOLOv12 (v1.0 layout), side by side in one run.

For every scale in ``--models`` it builds stock ``yolo12<s>.yaml`` and our ``yolov12<s>.yaml`` (the stock
weights loaded into ours, so both compute the same function) and measures, per attention backend of ours:

* params and GFLOPs (:func:`ultra_ext.utils.cost.model_cost`): fused conv-only (the papers' convention) and
  fused including the attention matmuls;
* PyTorch CPU latency at ``--imgsz``, batch 1: ``model.fuse()``, eval, ``torch.inference_mode``, warm-up, then
  ``--runs`` rounds in which every model runs once in rotating order (so load from other processes hits all
  models alike); median and minimum;
* peak memory of one training step at ``--mem-imgsz`` (1280), batch 1: forward in train mode + the real
  ``v8DetectionLoss`` on a synthetic 3-box batch + backward, each model in a fresh subprocess; the peak is the
  resident-set high-water mark above the RSS just before the step (see :func:`memory_worker`), next to the
  exact bytes autograd saves for backward;
* ONNX Runtime CPU latency of the fused model exported with ``torch.onnx.export`` (opset 18, TorchScript
  exporter as Ultralytics uses it, then onnxslim when installed); ours always exports its math path.

Every torch run uses ``torch.set_num_threads(--threads)``, every ORT session ``intra_op_num_threads=--threads``.
Goals (ours / stock): PyTorch CPU latency <= 0.90, training-step peak memory <= 0.65, ORT latency <= 1.00.

Usage::

    python benchmarks/bench_yolov12.py                    # n and s, everything (~10 min on 2 cores)
    python benchmarks/bench_yolov12.py --quick            # n only, few runs, memory at 640, no cost
    python benchmarks/bench_yolov12.py --models n --skip-memory --csv out.csv
"""

from __future__ import annotations

import argparse
import copy
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
    build,
    export_onnx,
    fused_eval,
    interleaved_ms,
    ort_session,
    randomize,
    rss_step_peak,
    table,
)

BACKENDS = ("sdpa", "math")
GOALS = {"pt_ms": 0.90, "mem_mb": 0.65, "ort_ms": 1.00}


# ---------------------------------------------------------------------------------------------- models


def set_backend(model: torch.nn.Module, backend: str | None) -> None:
    """Pin every attention module of ``model`` to ``backend`` (``None``: the model has no switch)."""
    for m in model.modules():
        if hasattr(m, "attn_backend"):
            m.attn_backend = backend


def variants(scale: str) -> list[dict]:
    """Stock model plus ours on each backend; ours carries the stock weights."""
    stock = randomize(build(f"yolo12{scale}.yaml"))
    ours = build(f"yolov12{scale}.yaml")
    ours.load_state_dict(stock.state_dict())  # v1.0 layout: identical keys and shapes
    rows = [dict(name=f"yolo12{scale}", kind="stock", backend="-", yaml=f"yolo12{scale}.yaml", model=stock)]
    for b in BACKENDS:
        mb = copy.deepcopy(ours)
        set_backend(mb, b)
        rows.append(dict(name=f"yolov12{scale}", kind="ours", backend=b, yaml=f"yolov12{scale}.yaml", model=mb))
    return rows


# ---------------------------------------------------------------------------------------------- latency


def pytorch_latency(rows: list[dict], imgsz: int, runs: int, warmup: int) -> None:
    x = torch.rand(1, 3, imgsz, imgsz)
    fused = [fused_eval(r["model"]) for r in rows]
    with torch.inference_mode():
        ref = fused[0](x)[0]
        for r, m in zip(rows, fused):
            r["parity"] = float((m(x)[0] - ref).abs().max() / ref.abs().max())  # vs stock, fp32, same weights
        stats = interleaved_ms([lambda m=m: m(x) for m in fused], runs, warmup)
    for r, (med, mn) in zip(rows, stats):
        r["pt_ms"], r["pt_min_ms"] = med, mn


# ---------------------------------------------------------------------------------------------- ONNX


def ort_latency(rows: list[dict], imgsz: int, runs: int, warmup: int, threads: int, tmp: Path) -> None:
    import numpy as np

    # ours exports its math path whatever the backend, so one graph serves both rows
    exported, sessions, targets = {}, [], []
    for r in rows:
        key = r["kind"]
        if key not in exported:
            f = tmp / f"{r['name']}-{key}.onnx"
            slim = export_onnx(r["model"], imgsz, f)
            exported[key] = (ort_session(f, threads), slim)
            sessions.append(exported[key][0])
            targets.append(key)
        r["onnx_slim"] = exported[key][1]
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    with torch.inference_mode():
        ref = fused_eval(rows[0]["model"])(torch.from_numpy(x))[0].numpy()
    outs = {k: s.run(None, {"images": x})[0] for k, s in zip(targets, sessions)}
    stats = dict(zip(targets, interleaved_ms([lambda s=s: s.run(None, {"images": x}) for s in sessions], runs, warmup)))
    for r in rows:
        r["ort_ms"], r["ort_min_ms"] = stats[r["kind"]]
        r["ort_parity"] = float(np.abs(outs[r["kind"]] - ref).max())  # ORT vs stock PyTorch fp32


# ---------------------------------------------------------------------------------------------- memory


def memory_worker(yaml: str, backend: str, imgsz: int, threads: int) -> dict:
    """One training step in this (fresh) process; prints and returns its memory figures.

    Method (Linux): build the model, the synthetic batch and the loss, then reset the kernel's resident-set
    high-water mark (``echo 5 > /proc/self/clear_refs``), run forward + ``v8DetectionLoss`` + backward, and report
    ``peak_mb = VmHWM - VmRSS before the step``: the real peak the step adds to the process, allocator caching and
    parameter gradients included, undisturbed by import- or build-time peaks. Where the reset is refused the
    fallback is ``ru_maxrss`` after the step minus the RSS before it (``valid`` says whether that step peak
    exceeded the earlier high-water mark; otherwise it is a lower bound).
    ``saved_mb`` is exact and allocator-independent: the bytes of distinct non-parameter tensors autograd saves
    for backward (where the stock path's ``(B, h, N, N)`` softmax tensors live).
    """
    torch.set_num_threads(threads)
    from ultralytics.cfg import get_cfg

    model = build(yaml)
    set_backend(model, None if backend == "-" else backend)
    model.args = get_cfg()  # loss gains (box/cls/dfl) for v8DetectionLoss
    model.train()
    model.criterion = model.init_criterion()
    batch = {
        "img": torch.rand(1, 3, imgsz, imgsz),
        "batch_idx": torch.zeros(3),
        "cls": torch.tensor([[0.0], [1.0], [2.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.1], [0.7, 0.6, 0.3, 0.2]]),
    }
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            saved[s.data_ptr()] = s.nbytes()
        return t

    def step():
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = model.loss(batch)
        loss.sum().backward()

    mem_mb, step_s, valid = rss_step_peak(step)
    out = {"mem_mb": mem_mb, "saved_mb": sum(saved.values()) / 2**20, "step_s": step_s, "mem_valid": valid}
    print("MEMORY " + json.dumps(out), flush=True)
    return out


def training_memory(rows: list[dict], imgsz: int, threads: int) -> None:
    for r in rows:
        cmd = [sys.executable, __file__, "--_memory-worker", r["yaml"], r["backend"], str(imgsz), str(threads)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        line = next((s for s in p.stdout.splitlines() if s.startswith("MEMORY ")), None)
        if p.returncode or line is None:
            raise RuntimeError(f"memory worker for {r['name']} ({r['backend']}) failed:\n{p.stderr[-3000:]}")
        r.update(json.loads(line[len("MEMORY "):]))


# ---------------------------------------------------------------------------------------------- GPU


def gpu_section(rows: list[dict], imgsz: int, runs: int) -> None:
    """fp16 latency at ``imgsz`` and the largest imgsz (batch 1, AMP) that trains without OOM. CUDA only."""
    dev = torch.device("cuda")
    x = torch.rand(1, 3, imgsz, imgsz, device=dev, dtype=torch.half)
    for r in rows:
        m = fused_eval(r["model"]).half().to(dev)

        def run(m=m):
            m(x)
            torch.cuda.synchronize()

        with torch.inference_mode():
            r["gpu_fp16_ms"] = interleaved_ms([run], runs, 10)[0][0]
        del m
    from ultralytics.cfg import get_cfg

    for r in rows:
        best = 0
        for size in (640, 1280, 1920, 2560, 3200, 3840, 4480, 5120):
            m = copy.deepcopy(r["model"]).to(dev).train()
            m.args = get_cfg()
            batch = {"img": torch.rand(1, 3, size, size, device=dev), "batch_idx": torch.zeros(1, device=dev),
                     "cls": torch.zeros(1, 1, device=dev), "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]], device=dev)}
            try:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss, _ = m.loss(batch)
                loss.sum().backward()
                best = size
            except torch.cuda.OutOfMemoryError:
                break
            finally:
                del m, batch
                torch.cuda.empty_cache()
        r["gpu_max_train_imgsz"] = best


# ---------------------------------------------------------------------------------------------- report

COLUMNS = [  # key, header, format
    *COST_LATENCY_COLUMNS,
    ("mem_mb", "train peak MB", "{:.0f}"),
    ("saved_mb", "saved MB", "{:.0f}"),
    ("step_s", "step s", "{:.1f}"),
    ("parity", "rel |Δ| vs stock", "{:.1e}"),
    ("gpu_fp16_ms", "GPU fp16 ms", "{:.2f}"),
    ("gpu_max_train_imgsz", "GPU max imgsz", "{}"),
]
RATIOS = [("pt_ms", "PT med"), ("pt_min_ms", "PT min"), ("ort_ms", "ORT med"), ("ort_min_ms", "ORT min"),
          ("mem_mb", "train peak"), ("saved_mb", "saved")]


def report(rows: list[dict]) -> tuple[str, list[dict]]:
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    body = [[r["name"], r["backend"]] + [f.format(r[k]) if k in r else "-" for k, _, f in cols] for r in rows]
    text = [table(["model", "backend"] + [h for _, h, _ in cols], body), ""]
    ratio_rows, rbody = [], []
    for r in rows:
        if r["kind"] != "ours":
            continue
        s = next(x for x in rows if x["kind"] == "stock" and x["name"] == r["name"].replace("yolov12", "yolo12"))
        rr = {"model": r["name"], "backend": r["backend"]}
        for k, _ in RATIOS:
            if k in r and k in s and s[k]:
                rr[k] = r[k] / s[k]
        ratio_rows.append(rr)
        rbody.append([r["name"], r["backend"]] + [f"{rr[k]:.2f}" if k in rr else "-" for k, _ in RATIOS])
    text += ["ours / stock", table(["model", "backend"] + [h for _, h in RATIOS], rbody), ""]
    for k, label in (("pt_ms", "PyTorch CPU latency"), ("mem_mb", "training-step peak memory"), ("ort_ms", "ORT latency")):
        for rr in ratio_rows:
            if k in rr:
                ok = lambda v: "met" if v <= GOALS[k] else "MISSED"  # noqa: E731
                line = f"goal {label} <= {GOALS[k]:.2f}: {rr['model']} {rr['backend']}: {rr[k]:.2f} {ok(rr[k])}"
                kmin = k.replace("_ms", "_min_ms")
                if kmin != k and kmin in rr:
                    line = line.replace(": " + f"{rr[k]:.2f}", f": median {rr[k]:.2f}") + f"; min {rr[kmin]:.2f} {ok(rr[kmin])}"
                text.append(line)
    return "\n".join(text), ratio_rows


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["n", "s"], help="scales: n s m l x (yolo12<s> vs yolov12<s>)")
    p.add_argument("--imgsz", type=int, default=640, help="latency / cost image size")
    p.add_argument("--mem-imgsz", type=int, default=1280, help="training-step memory image size")
    p.add_argument("--runs", type=int, default=30, help="timed rounds (each model once per round)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads, same for every model")
    p.add_argument("--skip-cost", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-onnx", action="store_true")
    p.add_argument("--quick", action="store_true", help="n only, 5 runs, memory at 640, no cost")
    p.add_argument("--csv", type=Path, help="also write one CSV row per model/backend (ratios included)")
    p.add_argument("--_memory-worker", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.models, a.runs, a.warmup, a.mem_imgsz, a.skip_cost = ["n"], 5, 1, 640, True
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a._memory_worker:
        yaml, backend, imgsz, threads = a._memory_worker
        memory_worker(yaml, backend, int(imgsz), int(threads))
        return 0
    t_start = time.perf_counter()
    import ultralytics

    import ultra_ext
    from ultra_ext.utils.cost import model_cost

    torch.set_num_threads(a.threads)  # after `import ultralytics`, which sets its own thread count
    print(f"torch {torch.__version__}, ultralytics {ultralytics.__version__}, ultra_ext from {Path(ultra_ext.__file__).parent}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads {a.threads}, "
          f"latency imgsz {a.imgsz} batch 1, runs {a.runs}, memory imgsz {a.mem_imgsz} batch 1")
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in a.models:
            group = variants(scale)
            stamp = lambda what: print(f"  [{time.perf_counter() - t_start:6.0f}s] yolo12{scale}: {what}", flush=True)  # noqa: E731
            if not a.skip_cost:
                costs = {}
                for r in group:  # the FLOP count does not depend on the backend: measure stock and ours once
                    if r["kind"] not in costs:
                        costs[r["kind"]] = model_cost(r["model"], a.imgsz).as_dict()
                    r.update({k: costs[r["kind"]][k] for k in ("params", "params_fused", "gflops_conv_fused", "gflops_attn_fused")})
                stamp("cost")
            pytorch_latency(group, a.imgsz, a.runs, a.warmup)
            stamp("PyTorch latency")
            if not a.skip_onnx:
                ort_latency(group, a.imgsz, a.runs, a.warmup, a.threads, Path(tmp))
                stamp("ONNX Runtime latency")
            if not a.skip_memory:
                training_memory(group, a.mem_imgsz, a.threads)
                stamp("training memory")
            if torch.cuda.is_available():
                gpu_section(group, a.imgsz, a.runs)
                stamp("GPU")
            rows += group
    text, ratios = report(rows)
    print()
    print(text)
    if any("mem_valid" in r and not r["mem_valid"] for r in rows):
        print("warning: a training step did not exceed the process's earlier RSS high-water mark; its peak is a lower bound")
    load = os.getloadavg()
    if load[1] > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load[1]:.2f} on {os.cpu_count()} CPUs: other processes competed; trust min over median")
    print(f"\ntotal runtime {time.perf_counter() - t_start:.0f} s")
    if a.csv:
        keys = ["name", "kind", "backend"] + [k for k, _, _ in COLUMNS] + ["ort_parity", "onnx_slim", "mem_valid"]
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys + [f"ratio_{k}" for k, _ in RATIOS], extrasaction="ignore")
            w.writeheader()
            for r in rows:
                rr = next((x for x in ratios if x["model"] == r["name"] and x["backend"] == r["backend"]), {})
                w.writerow({**{k: r.get(k, "") for k in keys}, **{f"ratio_{k}": rr.get(k, "") for k, _ in RATIOS}})
        print(f"wrote {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
