"""Shared test setup: everything offline, Ultralytics' settings and font in a private config dir.

Set before Ultralytics is imported (pytest imports conftest first), and inherited by every subprocess the
tests start (the stock `yolo` CLI, fresh interpreters, DDP workers).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_CONFIG_DIR = Path(tempfile.mkdtemp(prefix="ultra_ext_tests_cfg_"))
os.environ.update(
    YOLO_OFFLINE="1",  # no DNS probes, no update or analytics calls
    YOLO_AUTOINSTALL="0",  # never pip-install at run time
    YOLO_CONFIG_DIR=str(_CONFIG_DIR),
)
# One torch thread in the tests and every subprocess (Ultralytics does the same on a 2-core machine): two threads
# per process thrash as soon as a second process (a CLI subprocess, a benchmark) shares the two cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _place_font() -> None:
    """Ultralytics downloads Arial.ttf for plots unless it finds one in its config dir; give it DejaVuSans."""
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    target = _CONFIG_DIR / "Ultralytics"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        shutil.copyfile(font, target / name)


_place_font()


def _register_fuzz_profiles() -> None:
    """Hypothesis profiles for the property-based tests (``tests/**/test_fuzz_*.py``).

    ``ci`` (default): a fixed example sequence (derandomized: a red CI run reproduces locally), no example database
    written into the checkout, no per-example deadline (2 shared cores make timings meaningless). ``nightly``
    (``ULTRA_EXT_FUZZ_PROFILE=nightly``, see ``scripts/fuzz_nightly.sh``): random search, ten times the examples.
    """
    from hypothesis import HealthCheck, settings

    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("ci", max_examples=FUZZ_EXAMPLES["ci"], derandomize=True, database=None, **common)
    settings.register_profile("nightly", max_examples=FUZZ_EXAMPLES["nightly"], print_blob=True, **common)
    settings.load_profile(os.environ.get("ULTRA_EXT_FUZZ_PROFILE", "ci"))


# Examples per property test; every module family has at least two property tests (>= 220 cases per family in CI).
FUZZ_EXAMPLES = {"ci": 110, "nightly": int(os.environ.get("ULTRA_EXT_FUZZ_EXAMPLES", "1100"))}
_register_fuzz_profiles()
