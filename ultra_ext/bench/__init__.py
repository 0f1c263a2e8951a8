"""``ultra-ext bench``: any set of model YAMLs, ours and stock, measured side by side in one run.

* :mod:`.runner`: the command (argument parsing, the measurement pipeline, table, CSV and plots);
* :mod:`.row`: :class:`BenchRow`, one model's results; its fields are the CSV columns (the one set of names);
* :mod:`.presets`: the published comparisons as named model sets (``--preset yolov12|goldyolo|pst|generalist``);
* :mod:`.measure`: measurements (seeded builds, round-robin latency, ONNX export, ORT sessions and parity,
  training-step memory, synthetic batches);
* :mod:`.cost`: parameters and GFLOPs in both conventions, fused and unfused (``ultra-ext cost``).

``python -m ultra_ext.bench`` runs the command.
"""

from .runner import main

__all__ = ["main"]
