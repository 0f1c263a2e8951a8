"""``ultra-ext bench --preset NAME``: every preset's models build, options merge, and one preset runs for real.

The real run is the ``pst`` preset at 128 px (PST's smallest input), one round, no ONNX and no training-step memory:
about 10 s on 2 cores, most of it the subprocess's imports.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import REPO_ROOT, describe, run

from ultra_ext.bench import runner
from ultra_ext.bench.presets import PRESETS
from ultra_ext.bench.row import COLUMNS, BenchRow

STOCK = {"yolo11n.yaml", "yolo12n.yaml", "yolo26n.yaml", "yolo11n-seg.yaml", "yolov6n.yaml"}  # in Ultralytics 8.4.190
ALL_MODELS = sorted({m for p in PRESETS.values() for m in p.models})


def test_preset_names():
    assert list(PRESETS) == ["yolov12", "goldyolo", "pst", "generalist"]


@pytest.mark.parametrize("yaml", ALL_MODELS)
def test_preset_model_resolves_and_builds(yaml):
    """Each name resolves (ours through ultra_ext, stock inside Ultralytics) and its layers build on the meta device."""
    from ultralytics.nn.tasks import parse_model, yaml_model_load

    from ultra_ext.integration import activate
    from ultra_ext.nn import set_pst_options

    activate()
    assert runner.model_source(yaml) == ("stock" if yaml in STOCK else "ours")
    with torch.device("meta"):
        model, _ = parse_model(deepcopy(yaml_model_load(yaml)), ch=3, verbose=False)
    assert sum(p.numel() for p in model.parameters()) > 900_000
    assert bool(set_pst_options(model)) == ("-pst" in yaml)  # --pst-topk rows need PST layers in the PST models


def test_preset_defaults_and_command_line_overrides():
    a = runner.parse_args(["--preset", "pst"])
    assert a.models == list(PRESETS["pst"].models)
    assert (a.runs, a.pst_topk, a.imgsz) == (30, [0, 8], 640)  # preset defaults, then the command's own
    a = runner.parse_args(["--preset", "yolov12", "--mem-imgsz", "320", "extra.yaml"])
    assert a.models == [*PRESETS["yolov12"].models, "extra.yaml"]  # the command line's YAMLs come after
    assert (a.mem_imgsz, a.mem_batch) == (320, 1)  # the command line wins over the preset
    assert runner.parse_args(["yolo11n.yaml"]).pst_topk is None  # no preset: no preset defaults


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_options_are_command_options(name):
    dests = vars(runner.parse_args(["yolo11n.yaml"]))
    assert set(PRESETS[name].options) <= set(dests), name


@pytest.mark.parametrize("argv", [["--preset", "nope"], []])
def test_unknown_or_missing_preset_lists_the_presets(argv, capsys):
    with pytest.raises(SystemExit) as e:
        runner.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    for name in PRESETS:
        assert name in err, err
    assert ("invalid choice: 'nope'" if argv else "give model YAMLs or --preset NAME") in err


def test_pst_preset_runs(tmp_path):
    """``ultra-ext bench --preset pst``, tiny: the documented columns, one row per PST model and topk, exact costs."""
    out_csv = tmp_path / "pst.csv"
    args = ["--preset", "pst", "--imgsz", "128", "--runs", "1", "--warmup", "0", "--threads", "1", "--skip-onnx",
            "--skip-memory", "--csv", str(out_csv)]  # fmt: skip
    proc = run([sys.executable, "-m", "ultra_ext.cli", "bench", *args], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, describe(proc)

    rows = {r.model: r for r in map(BenchRow.from_cells, _read(out_csv, COLUMNS))}
    names = ["yolo11n-pst-k0", "yolo11n-pst-k8", "yolov12n-pst-k0", "yolov12n-pst-k8", "yolo11n", "yolo12n", "yolo26n"]
    assert list(rows) == names
    assert (rows["yolo11n"].params, rows["yolo12n"].params) == (2_624_080, 2_602_288)
    for m in ("yolo11n-pst", "yolov12n-pst"):
        k0, k8 = rows[f"{m}-k0"], rows[f"{m}-k8"]
        assert k0.params == k8.params and k0.fused_params == k8.fused_params  # one set of weights
        assert k8.gflops_attn > k0.gflops_attn  # the fine stage's matmuls
        assert (k0.source, k0.task, k0.head) == ("ours", "detect", "one2many")
    assert rows["yolo26n"].head == "one2one" and rows["yolo26n"].source == "stock"
    for r in rows.values():
        assert 0 < r.pt_ms_min <= r.pt_ms_median, r
        assert r.ort_ms_min is r.ort_rel_diff is r.train_peak_mb is r.map50 is None, r  # skipped
        assert (r.imgsz, r.threads, r.device) == (128, 1, "cuda:0" if torch.cuda.is_available() else "cpu")


def _read(path: Path, header: list[str]) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == header
        return list(reader)


def test_run_all_runs_every_preset(tmp_path):
    """``benchmarks/run_all.sh OUT [options]``: one command per preset, CSV and plots under OUT, options passed on."""
    log = tmp_path / "calls.txt"
    fake = tmp_path / "python"  # stands in for the interpreter: records the bench calls, answers the preset query
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = "-c" ]; then exec {sys.executable} "$@"; fi\necho "$@" >> {log}\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    script = REPO_ROOT / "benchmarks" / "run_all.sh"
    env = {**os.environ, "PYTHON": str(fake)}
    p = subprocess.run(
        ["bash", str(script), str(tmp_path / "out"), "--runs", "5"], env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        f"-m ultra_ext.bench --preset {n} --csv {tmp_path}/out/{n}.csv --plot-dir {tmp_path}/out/{n} --runs 5"
        for n in PRESETS
    ]
