"""Export parity (``output_rel_diff``): plain outputs elementwise, NMS-free top-k detections as sets of rows."""

from __future__ import annotations

import numpy as np
import pytest

from ultra_ext.bench.measure import output_rel_diff


def detections(k: int = 6, seed: int = 0) -> np.ndarray:
    """``(1, k, 6)`` rows ``[x1, y1, x2, y2, score, class]``, scores falling and distinct."""
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 64, (k, 4))
    return np.concatenate([boxes, np.linspace(0.9, 0.4, k)[:, None], rng.integers(0, 3, (k, 1))], 1)[None]


def test_plain_output_relative_to_its_largest_value():
    ref = np.array([[1.0, -4.0], [2.0, 0.5]])
    assert output_rel_diff(ref + [[0, 0], [0.004, 0]], ref) == pytest.approx(0.001)
    assert output_rel_diff(ref, ref) == 0


def test_top_k_rows_compare_as_a_set():
    ref = detections()
    assert output_rel_diff(ref[:, ::-1], ref, top_k=True) == 0  # another order: same detections
    assert output_rel_diff(ref[:, ::-1], ref) > 0.1  # elementwise it would be a mismatch


def test_top_k_boundary_ties_may_swap_other_mismatches_count():
    ref = detections()
    swapped = ref.copy()
    swapped[0, -1, :4] += 20  # the last row (lowest selected score) is another candidate with the same score
    assert output_rel_diff(swapped, ref, top_k=True) == 0
    moved = ref.copy()
    moved[0, 1, :4] += 0.064  # a confident detection moved by 0.064 px (max |ref| is 64)
    assert output_rel_diff(moved, ref, top_k=True) == pytest.approx(0.001, rel=0.1)
