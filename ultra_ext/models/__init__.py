"""Task pipelines (model, loss, trainer, validator, predictor) for tasks Ultralytics does not have.

Importing them changes nothing global: :mod:`ultra_ext.integration.generalist_task` registers the ``generalist``
task with Ultralytics and imports :mod:`.generalist` only once Ultralytics' trainers are loaded (they must not be
imported while the startup hook runs inside Ultralytics' own imports).
"""
