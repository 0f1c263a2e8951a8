"""Checkpoints from elsewhere → ultra_ext models that ``YOLO(path)`` loads: one module per source.

* :mod:`.goldyolo`: official Gold-YOLO checkpoints (``ultra-ext convert-goldyolo``);
* :mod:`.pst`: published PST checkpoints, an Ultralytics 8.3.105 fork (``ultra-ext convert-pst``);
* :mod:`.yolov12`: stock Ultralytics YOLO12 models and checkpoints, upgraded in place to our attention
  (``ultra-ext upgrade``).

Shared by all of them: :mod:`.checkpoint` (reading with stub classes, copying a key plan, writing an Ultralytics
checkpoint for any task), :mod:`.mapping` (layout and scale checks, one error listing every problem) and
:mod:`.unpickle` (the stub unpickler). Importing this package imports no converter.
"""
