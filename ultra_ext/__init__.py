"""ultra_ext: new YOLO architectures as plain model YAMLs for the stock Ultralytics CLI and Python API.

Importing the package activates it (see :mod:`ultra_ext.integration`); after ``pip install`` the startup hook
does so as soon as Ultralytics builds models, so ``yolo train model=yolov12n.yaml`` needs no user code.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .integration import LayerError, UltralyticsIncompatibleError, activate, deactivate, is_active  # noqa: E402
from .integration.plugins import RegistrationError, register, registered_modules  # noqa: E402
from .nn import attn_backend, backend_report, get_attn_backend, set_attn_backend  # noqa: E402

__all__ = [
    "LayerError",
    "RegistrationError",
    "UltralyticsIncompatibleError",
    "__version__",
    "activate",
    "attn_backend",
    "backend_report",
    "deactivate",
    "get_attn_backend",
    "is_active",
    "register",
    "registered_modules",
    "set_attn_backend",
]

activate()

from .convert.on_load import install as _install_checkpoint_translator  # noqa: E402

_install_checkpoint_translator()  # official checkpoints convert in memory when Ultralytics loads them
