"""Checkpoint integrity: refuse a ``.pt`` file whose bytes changed after it was written.

``torch.save`` writes a zip archive and records a CRC-32 per record (the pickle and one record per tensor), but
``torch.load`` never checks them: a flipped bit in a weight tensor loads silently as a different model, and one in
the pickle surfaces as a baffling ``AttributeError`` from the unpickler. Ultralytics already turns a *truncated*
file into a clear ``TypeError``; :func:`verify_checkpoint` adds the missing case, and :func:`wrap_torch_safe_load`
runs it in front of Ultralytics' loader (``YOLO("x.pt")``, ``yolo predict model=x.pt``, resume, ...).

Reading every record costs one pass over the file (0.44 GB/s on the shared 2-core CI machine, printed by
``tests/integration/test_checkpoint_families.py``). A CRC catches corruption, not a deliberate edit with
recomputed checksums; code execution from a crafted pickle is what ``ULTRALYTICS_SAFE_LOAD=1`` is for.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

__all__ = ["CheckpointIntegrityError", "verify_checkpoint", "wrap_torch_safe_load"]

_CHUNK = 1 << 20


class CheckpointIntegrityError(TypeError):
    """A checkpoint's bytes do not match the checksums written with it.

    A ``TypeError`` like Ultralytics' own "not a loadable checkpoint" error, so callers that handle one handle both.
    """


def verify_checkpoint(path: str | Path) -> None:
    """Check the CRC-32 of every record of a torch zip checkpoint.

    Files that are not zip archives (legacy pickles, truncated files without a central directory) are left to
    Ultralytics' own loader, which reports them. Records stored with CRC 0 (``torch.serialization.
    set_crc32_options(False)`` at save time) are skipped: there is nothing to compare against.

    Raises:
        CheckpointIntegrityError: naming the file and the first record whose bytes changed.
    """
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.CRC == 0 or info.is_dir():
                    continue
                with archive.open(info) as record:  # zipfile raises BadZipFile on a CRC mismatch at the end
                    while record.read(_CHUNK):
                        pass
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointIntegrityError(
            f"ERROR ❌️ {path} is corrupted: {e}. Its bytes changed after it was written (a partial copy, a disk "
            f"or transfer error, or an edit), so loading it would build a different model than was saved. "
            f"Re-download or re-export the file. (Checked by ultra_ext before Ultralytics loads it.)"
        ) from None


def wrap_torch_safe_load(original, before=None):
    """``torch_safe_load`` that verifies a local checkpoint file before loading it (and calls ``before()`` first:
    the integration loads users' plugin modules there, so safe loading allows their classes), then gives the
    installed translator (:mod:`.load_hooks`: official checkpoints converted in memory) the first say."""
    from .load_hooks import get_translator

    @functools.wraps(original)
    def torch_safe_load(weight, *args, **kwargs):
        if before is not None:
            before()
        verify_checkpoint(weight)  # a name to download is not a file yet; the original resolves it
        translator = get_translator()
        if translator is not None:
            loaded = translator(weight, original, args, kwargs)
            if loaded is not None:
                return loaded
        return original(weight, *args, **kwargs)

    torch_safe_load.ultra_ext_wrapped = original
    return torch_safe_load
