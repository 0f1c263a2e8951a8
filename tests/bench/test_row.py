"""``BenchRow``: the one typed record of a benchmark row; its CSV columns round-trip through a real CSV file."""

from __future__ import annotations

import csv
from dataclasses import fields

from ultra_ext.bench import runner
from ultra_ext.bench.row import COLUMNS, BenchRow

FULL = BenchRow(
    "yolov12n-pst-k8", task="detect", source="ours", head="one2many", params=2_617_232, fused_params=2_605_288,
    gflops_conv=6.4612, gflops_attn=8.9514, pt_ms_median=124.9, pt_ms_min=112.25, ort_ms_median=92.375,
    ort_ms_min=71.8, ort_rel_diff=7.2e-07, train_peak_mb=1126.5, map50=0.5581, map50_95=0.1802, imgsz=640,
    threads=2, device="cpu",
)  # fmt: skip


def test_columns_are_the_leading_fields_and_the_runners():
    assert COLUMNS == [f.name for f in fields(BenchRow)][: len(COLUMNS)]
    assert COLUMNS[-1] == "device" and runner.COLUMNS is COLUMNS


def test_round_trip_through_a_csv_file(tmp_path):
    empty = BenchRow("broken", yaml="broken.yaml", errors={"build": "ValueError: ..."})
    path = tmp_path / "rows.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(r.cells() for r in (FULL, empty))
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        back = [BenchRow.from_cells(c) for c in reader]
    assert back == [FULL, BenchRow("broken")]  # yaml, errors and notes are not CSV columns
    assert isinstance(back[0].params, int) and isinstance(back[0].pt_ms_min, float)


def test_cells_format_and_leave_unmeasured_empty():
    cells = FULL.cells()
    assert list(cells) == COLUMNS
    assert (cells["params"], cells["gflops_conv"], cells["pt_ms_min"], cells["ort_rel_diff"]) == (
        "2617232", "6.4612", "112.250", "7.20e-07",
    )  # fmt: skip
    assert BenchRow("m").cells() == {c: "m" if c == "model" else "" for c in COLUMNS}


def test_columns_documented_in_benchmarks_readme():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "benchmarks" / "README.md").read_text()
    for c in COLUMNS:
        assert f"`{c}`" in text, c
