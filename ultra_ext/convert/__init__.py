"""Checkpoints from elsewhere → ultra_ext models that ``YOLO(path)`` loads: one module per source.

* :mod:`.goldyolo`: official Gold-YOLO checkpoints (``ultra-ext convert-goldyolo``);
* :mod:`.pst`: published PST checkpoints, an Ultralytics 8.3.105 fork (``ultra-ext convert-pst``);
* :mod:`.yolov12`: YOLO12 models and checkpoints that unpickle as stock classes (stock v1.0; the authors' turbo,
  seg and cls releases), upgraded in place to our attention (``ultra-ext upgrade``);
* :mod:`.generalist`: official Generalist YOLO checkpoints.

Above them: :mod:`.identify` tells what a file is from the class names it pickles (nothing unpickled),
:mod:`.auto` is ``ultra-ext convert`` (any source, detected), and :mod:`.on_load` converts official files in memory
when Ultralytics loads them (``YOLO("yolov12n.pt")``; installed by the package root).

Shared by all of them: :mod:`.checkpoint` (reading with stub classes, copying a key plan, writing an Ultralytics
checkpoint for any task), :mod:`.mapping` (layout and scale checks, one error listing every problem) and
:mod:`.unpickle` (the stub unpickler). Importing this package imports no converter.
"""
