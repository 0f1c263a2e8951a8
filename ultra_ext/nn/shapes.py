"""Feature-map size checks shared by the multi-scale modules (Gold-YOLO's GD neck, PST).

These modules combine maps of different strides with fixed integer pool/upsample ratios, so that an
exported graph keeps working at every input size (no kernel frozen from one traced shape). The ratios are a
property of the architecture; what can go wrong is the input: a map whose size is not the exact multiple
the layer needs. The checks run in eager mode only (they are Python comparisons of sizes, meaningless while
tracing) and name the YAML layer.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

__all__ = ["MapSizeError", "checking_sizes", "integer_ratio", "layer_name", "require_ratio", "structural_sizes"]


class MapSizeError(ValueError):
    """A feature map does not have the size a multi-scale layer requires."""


def checking_sizes() -> bool:
    """Whether size checks should run now (eager mode; not while tracing, scripting or exporting)."""
    return not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export())


@contextlib.contextmanager
def structural_sizes():
    """Silence the tracer's "might not generalize" warning around size arithmetic that is meant to be frozen.

    Pool ratios and the same-size/upsample branch depend on the ratio of two maps' sizes, fixed by their strides;
    freezing them in an exported graph is correct at every input size, so the warning would only mislead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def layer_name(module: torch.nn.Module) -> str:
    """``"layer 13 (LocalFusion3)"``: the YAML layer index parse_model attached, and the class name."""
    return f"layer {getattr(module, 'i', '?')} ({type(module).__name__})"


def require_ratio(module: torch.nn.Module, what: str, x: torch.Tensor, ref: torch.Tensor, ratio: float) -> None:
    """Require ``x``'s spatial size to be exactly ``ratio`` × ``ref``'s (``ratio`` may be ``0.5``).

    Raises:
        MapSizeError: naming the layer, both sizes and the likely cause.
    """
    if not checking_sizes():
        return
    (h, w), (hr, wr) = x.shape[-2:], ref.shape[-2:]
    ok = (h, w) == (hr * ratio, wr * ratio) if ratio >= 1 else (h / ratio, w / ratio) == (hr, wr)
    if not ok:
        times = f"{ratio:g}×" if ratio >= 1 else f"1/{1 / ratio:g} of"
        raise MapSizeError(
            f"{layer_name(module)}: {what} is {h}×{w}, but must be exactly {times} {hr}×{wr}. "
            f"Input images must be multiples of 32 px (Ultralytics letterboxes to this; direct calls must too)."
        )


def integer_ratio(module: torch.nn.Module, what: str, x: torch.Tensor, ref: torch.Tensor) -> int:
    """The integer factor by which ``x`` is larger than ``ref`` (same factor on both axes), checked.

    While tracing this returns the traced sizes' ratio as a constant, which is right: the ratio is fixed by
    the layer's input strides, not by the image size.
    """
    (h, w), (hr, wr) = x.shape[-2:], ref.shape[-2:]
    with structural_sizes():
        r = int(h) // max(int(hr), 1)
    if checking_sizes() and (r < 1 or (h, w) != (hr * r, wr * r)):
        raise MapSizeError(
            f"{layer_name(module)}: {what} is {h}×{w}, which is not a whole multiple of {hr}×{wr} on both axes. "
            f"Input images must be multiples of 32 px."
        )
    return r
