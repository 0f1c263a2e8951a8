"""Task pipelines (model, loss, trainer, validator, predictor) for tasks Ultralytics does not have.

Imported lazily (by ``YOLO.task_map``, see :mod:`ultra_ext.integration.tasks`): they build on Ultralytics'
trainers, which must not be imported while the startup hook runs inside Ultralytics' own imports.
"""
