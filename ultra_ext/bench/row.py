"""One model's benchmark result as a typed record: its CSV columns are the fields of :class:`BenchRow`.

Every measurement of ``ultra-ext bench`` writes into a ``BenchRow``; the printed table, the plots and the CSV read
from it. :data:`COLUMNS` (the CSV header, in order) is the one vocabulary of column names; the runner's module
docstring says what each column means.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

__all__ = ["COLUMNS", "BenchRow"]


def _column(kind: type = str, fmt: str = "{}"):
    """A CSV column, empty (``None``) until measured: ``kind`` parses a cell back, ``fmt`` writes a value."""
    return field(default=None, metadata={"kind": kind, "fmt": fmt})


@dataclass
class BenchRow:
    """One model of a benchmark run: what was built, what it cost, how fast it ran, how much it learned.

    The fields up to ``device`` are the CSV columns (:data:`COLUMNS`); the rest drive the run and the report.

    Example:
        >>> row = BenchRow("yolo11n", task="detect", params=2_624_080, pt_ms_min=75.7)
        >>> BenchRow.from_cells(row.cells()) == BenchRow("yolo11n", task="detect", params=2_624_080, pt_ms_min=75.7)
        True
    """

    model: str = field(metadata={"kind": str, "fmt": "{}"})
    task: str | None = _column()
    source: str | None = _column()
    head: str | None = _column()
    params: int | None = _column(int)
    fused_params: int | None = _column(int)
    gflops_conv: float | None = _column(float, "{:.4f}")
    gflops_attn: float | None = _column(float, "{:.4f}")
    pt_ms_median: float | None = _column(float, "{:.3f}")
    pt_ms_min: float | None = _column(float, "{:.3f}")
    ort_ms_median: float | None = _column(float, "{:.3f}")
    ort_ms_min: float | None = _column(float, "{:.3f}")
    ort_rel_diff: float | None = _column(float, "{:.2e}")
    train_peak_mb: float | None = _column(float, "{:.1f}")
    map50: float | None = _column(float, "{:.4f}")
    map50_95: float | None = _column(float, "{:.4f}")
    imgsz: int | None = _column(int)
    threads: int | None = _column(int)
    device: str | None = _column()
    # not in the CSV
    yaml: str = ""
    pst_topk: int | None = None  # eval topk of the row's PST attentions (--pst-topk); None: as built
    errors: dict[str, str] = field(default_factory=dict)  # stage → reason; the stage's cells stay empty
    notes: list[str] = field(default_factory=list)

    def cells(self) -> dict[str, str]:
        """The CSV cells, column → text: measured floats formatted, unmeasured ones empty."""
        values = {f.name: (getattr(self, f.name), f.metadata["fmt"]) for f in _CSV}
        return {k: "" if v is None else fmt.format(v) for k, (v, fmt) in values.items()}

    @classmethod
    def from_cells(cls, cells: dict[str, str]) -> BenchRow:
        """A row from one CSV line (``csv.DictReader``): the inverse of :meth:`cells` up to the written precision."""
        return cls(**{f.name: f.metadata["kind"](cells[f.name]) if cells.get(f.name) else None for f in _CSV})


_CSV = [f for f in fields(BenchRow) if "kind" in f.metadata]
COLUMNS = [f.name for f in _CSV]
