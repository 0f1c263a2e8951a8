"""The parse_model self-check: build a probe model through the patched parser and compare it with pinned numbers.

The source guard in :mod:`.patch` checks the *shape* of ``parse_model`` (one dispatch anchor, the locals we read).
A future Ultralytics could keep that shape and still change what happens around our branch (how ``c2`` is
recorded in ``ch``, how repeats are scaled, which layers are saved). So the guard also fingerprints the source:
on a version whose ``parse_model`` we have tested (:data:`KNOWN_FINGERPRINTS`) nothing more happens; on any other,
:func:`run_self_check` parses a small probe (stock ``Conv``/``Detect``, our ``A2C2f`` with repeats and our
two-input ``PST``) on the meta device (about 50 ms) and refuses to activate unless every layer's class, parameter
count, ``from`` and the save list match what the tested versions build.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import textwrap

__all__ = ["KNOWN_FINGERPRINTS", "PROBE", "fingerprint", "fingerprint_tree", "run_self_check"]

KNOWN_FINGERPRINTS = {
    # sha256 of parse_model's AST without its docstring -> the Ultralytics releases it was tested on
    "cc82c39d1bade481e1160fd482d6b42198586d7a9eaa1eacb2ab9f338f8812a6": "8.4.164 to 8.4.190",
}

PROBE = {
    "nc": 1,
    "scale": "n",
    "scales": {"n": [1.0, 0.5, 256]},  # depth 1.0 keeps A2C2f's 2 repeats; width 0.5 halves every c2
    "backbone": [
        [-1, 1, "Conv", [64, 3, 2]],  # 0 stock, width-scaled → 32 ch
        [-1, 1, "Conv", [128, 3, 2]],  # 1 → 64 ch
        [-1, 2, "ultra_ext.A2C2f", [128, True, 1]],  # 2 ours, consumes its repeats → 64 ch
        [-1, 1, "Conv", [128, 3, 2]],  # 3 → 64 ch
        [-1, 1, "Conv", [128, 3, 2]],  # 4 → 64 ch
    ],
    "head": [
        [[3, -1], 2, "ultra_ext.PST", [128]],  # 5 ours, [fine, coarse] → 64 ch
        [[2, 5, 4], 1, "Detect", ["nc"]],  # 6 stock head over three of them
    ],
}
# (class name, parameters, from) per probe layer, and the save list, as every tested Ultralytics release builds them.
EXPECTED_LAYERS = (
    ("Conv", 928, -1),
    ("Conv", 18560, -1),
    ("A2C2f", 49472, -1),
    ("Conv", 36992, -1),
    ("Conv", 36992, -1),
    ("PST", 35200, [3, -1]),
    ("Detect", 264211, [2, 5, 4]),
)
EXPECTED_SAVE = [2, 3, 4, 5]


def fingerprint(source: str) -> str:
    """sha256 of the function's AST (no docstring, comments, formatting or line numbers)."""
    return fingerprint_tree(ast.parse(textwrap.dedent(source)))


def fingerprint_tree(tree: ast.Module) -> str:
    """:func:`fingerprint` of a parsed module's first statement; ``tree`` is left unchanged."""
    node = tree.body[0] if tree.body else tree
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        node = copy.copy(node)  # shallow: only the body list is replaced
        node.body = body[1:]  # the docstring
    return hashlib.sha256(ast.dump(node, annotate_fields=False).encode()).hexdigest()


def run_self_check(parse_model) -> list[str]:
    """Parse :data:`PROBE` with ``parse_model`` on the meta device; return the differences (empty: all as expected)."""
    import torch

    try:
        with torch.device("meta"):
            layers, save = parse_model(copy.deepcopy(PROBE), ch=3, verbose=False)
    except Exception as e:  # noqa: BLE001 (any failure to build the probe is a difference to report)
        return [f"the probe model does not build ({type(e).__name__}: {e})"]
    got = tuple((type(m).__name__, sum(p.numel() for p in m.parameters()), m.f) for m in layers)
    problems = [f"layer {i}: built {g}, expected {e}" for i, (g, e) in enumerate(zip(got, EXPECTED_LAYERS)) if g != e]
    if len(got) != len(EXPECTED_LAYERS):
        problems.append(f"{len(got)} layers built, expected {len(EXPECTED_LAYERS)}")
    if sorted(save) != EXPECTED_SAVE:
        problems.append(f"save list {sorted(save)}, expected {EXPECTED_SAVE}")
    return problems
