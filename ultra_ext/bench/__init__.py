"""``ultra-ext bench``: any set of model YAMLs, ours and stock, measured side by side in one run.

* :mod:`.runner`: the command (argument parsing, the measurement pipeline, table, CSV and plots);
* :mod:`.measure`: measurements (seeded builds, round-robin latency, ONNX export and ORT sessions, training-step
  memory, synthetic batches);
* :mod:`.cost`: parameters and GFLOPs in both conventions, fused and unfused (``ultra-ext cost``).

``python -m ultra_ext.bench`` runs the command.
"""

from .runner import main

__all__ = ["main"]
