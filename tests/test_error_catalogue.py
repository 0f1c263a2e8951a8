"""The catalogue of bad model YAMLs and arguments: each gives one clear error naming the layer, module and value.

Every case starts from a shipped YAML (or a public function), changes one thing a user could get wrong, and states
the exception class, the YAML layer index, the module and the offending value the message must name. The same
table is the user-facing reference ``docs/errors.md``; regenerate it after changing a message with::

    python tests/test_error_catalogue.py > docs/errors.md

(a test below fails while the page and the real messages differ).
"""

from __future__ import annotations

import os
import sys
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")  # when run as a script (pytest sets these in conftest)
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ holds helpers.py (no package)
from helpers import YOLO_CLI, describe, run, set_row  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"


@dataclass(frozen=True)
class Case:
    """One bad input and what its error must say.

    Attributes:
        id: short name (pytest id, docs anchor).
        problem: what is wrong, in words.
        yaml: the shipped YAML the case edits (``None`` for an argument that is not a YAML row).
        edit: changes the loaded model dict in place (``None``: the YAML as shipped).
        layer: YAML layer index the message must name (``None`` for process-wide arguments).
        module: module (or option) name the message must name.
        value: the offending value as the message shows it.
        error: the exception class expected (all are ``ValueError`` or ``TypeError`` subclasses).
        imgsz: for input-size cases, the (H, W) of a direct eval forward after a successful build.
        run: for argument cases, the call that must fail.
        also: further fragments the message must contain.
    """

    id: str
    problem: str
    yaml: str | None
    edit: Callable[[dict], None] | None
    layer: int | None
    module: str
    value: str
    error: type = ValueError
    imgsz: tuple[int, int] | None = None
    run: Callable[[], None] | None = None
    also: tuple[str, ...] = field(default_factory=tuple)


def row(i: int, new: list) -> Callable[[dict], None]:
    return lambda d: set_row(d, i, new)


def key(name: str, value) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        if value is None:
            d.pop(name, None)
        else:
            d[name] = value

    return edit


def _bad_global_backend():
    import ultra_ext

    ultra_ext.set_attn_backend("fast")


def _bad_module_backend():
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(load("yolov12n.yaml"), verbose=False)
    model.model[6].m[0][0].attn.attn_backend = "fast"  # layer 6's first area-attention module
    model.eval()(torch.zeros(1, 3, 64, 64))


def _bad_pst_topk():
    from ultralytics.nn.tasks import DetectionModel

    from ultra_ext.nn.pst import set_pst_options

    set_pst_options(DetectionModel(load("yolo11n-pst.yaml"), verbose=False), topk=-3)


def _pooled_backbone_pretraining():
    """``ultra-ext pretrain`` on a backbone that pools to 1×1: a patch mask cannot follow it through."""
    from ultralytics.nn.tasks import ClassificationModel
    from ultralytics.utils import LOGGER

    from ultra_ext.pretrain.backbone import BackboneView

    d = {"nc": 1, "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [32, 3, 2]],
                               [-1, 1, "nn.AdaptiveAvgPool2d", [1]]], "head": [[-1, 1, "Classify", [1]]]}
    LOGGER.disabled = True  # ClassificationModel prints its summary whatever verbose says
    try:
        model = ClassificationModel(d, verbose=False)
    finally:
        LOGGER.disabled = False
    BackboneView(model, yaml_name="pooled.yaml").inspect(128)


def _pretraining_image_size():
    from ultra_ext.pretrain.backbone import build_backbone

    build_backbone("goldyolo-n.yaml", 100)


def _bad_distill_loss():
    from types import SimpleNamespace

    from ultra_ext.integration.distill import check_args

    check_args(SimpleNamespace(distill_loss="kl", distill_tau=1.0))


CATALOGUE = [
    # --- rows naming things that do not exist ---------------------------------------------------------------------
    Case("unknown-module", "a module name that neither Ultralytics nor ultra_ext defines (a typo)", "yolov12n.yaml",
         row(6, [-1, 4, "ultra_ext.A2C2F", [512, True, 4]]), 6, "ultra_ext.A2C2F", "'ultra_ext.A2C2F'",
         also=("unknown module", "did you mean 'ultra_ext.A2C2f'?")),
    Case("from-future-layer", "'from' points at a layer that is built later", "yolov12n.yaml",
         row(6, [9, 4, "ultra_ext.A2C2f", [512, True, 4]]), 6, "A2C2f", "from=9", also=("does not exist yet",)),
    Case("missing-scale", "a multi-scale YAML loaded without naming a scale", "yolov12n.yaml", key("scale", None),
         None, "scales", "n, s, m, l, x", also=("no model scale given",)),
    Case("unknown-scale", "a scale letter the YAML does not define", "goldyolo-n.yaml", key("scale", "x"),
         None, "scale", "'x'", also=("not one of this model's scales",)),
    # --- wrong number of inputs ('from' arity) --------------------------------------------------------------------
    Case("pst-one-input", "PST reads a fine and a coarse map, the row gives one", "yolo11n-pst.yaml",
         row(13, [-1, 2, "PST", [512]]), 13, "PST", "from=-1", also=("[fine, coarse]",)),
    Case("injection-one-input", "Injection needs [local, global] inputs", "goldyolo-n.yaml",
         row(14, [13, 1, "Injection", [256, 0]]), 14, "Injection", "from=13", also=("[local, global]",)),
    Case("low-align-three-inputs", "the low-stage gather takes four backbone maps", "goldyolo-n.yaml",
         row(10, [[2, 4, 6], 1, "LowStageAlign", []]), 10, "LowStageAlign", "[2, 4, 6]", also=("four maps",)),
    Case("head-three-of-five", "the joint GYOLO head lists 4 of its 5 inputs", "gyolo-generalist-n.yaml",
         row(31, [[16, 19, 22, 26], 1, "GeneralistHead", ["nc", 32, 1]]), 31, "GeneralistHead", "[16, 19, 22, 26]",
         also=("must list 5 layers",)),
    Case("elan-b-two-inputs", "a single-input GELAN block given two inputs", "gyolo-n.yaml",
         row(16, [[-1, 4], 1, "RepNCSPELAN4B", [256, 256, 128, 1]]), 16, "RepNCSPELAN4B", "[-1, 4]",
         also=("one input",)),
    # --- channel lists and splits ---------------------------------------------------------------------------------
    Case("split-index-out-of-range", "Injection takes split 2 of a two-split global feature", "goldyolo-n.yaml",
         row(14, [[13, 11], 1, "Injection", [256, 2]]), 14, "Injection", "split index 2", also=("2 splits [64, 32]",)),
    Case("split-of-unsplit-layer", "Injection's global input is a layer without channel splits", "goldyolo-n.yaml",
         row(14, [[13, 12], 1, "Injection", [256, 0]]), 14, "Injection", "layer 12", also=("no channel splits",)),
    Case("channel-list-zero", "a channel split list with a zero entry", "goldyolo-n.yaml",
         row(21, [-1, 1, "HighStageFusion", [[256, 0], 2, 8, 4]]), 21, "HighStageFusion", "[256, 0]",
         also=("list of positive ints",)),
    Case("local-fusion-width", "LAF's fine input has a different width than its output", "goldyolo-n.yaml",
         row(13, [[4, 6, 12], 1, "LocalFusion3", [128]]), 13, "LocalFusion3", "got 64 (layer 4)", also=("c2=32",)),
    # --- widths, heads and areas ----------------------------------------------------------------------------------
    Case("heads-not-dividing-width", "PST's hidden width is not a multiple of the 32-channel attention head",
         "yolo11n-pst.yaml", row(13, [[-1, 10], 2, "PST", [512, 2.0, 0.3]]), 13, "PST", "int(128*0.3) = 38",
         also=("multiple of the head width 32",)),
    Case("zero-heads", "a transformer with 0 attention heads", "goldyolo-n.yaml",
         row(21, [-1, 1, "HighStageFusion", [[256, 512], 2, 8, 0]]), 21, "HighStageFusion", "(heads)=0"),
    Case("area-hidden-width", "A2C2f's hidden width (c2/2) is not a multiple of the 32-channel head",
         "yolov12n.yaml", row(6, [-1, 4, "ultra_ext.A2C2f", [80, True, 4]]), 6, "A2C2f", "int(24*0.5) = 12",
         also=("multiple of the head width 32",)),
    Case("area-not-dividing-tokens", "5 areas cannot split the 16×16 = 256 tokens of the build-time stride pass",
         "yolov12n.yaml", row(6, [-1, 4, "ultra_ext.A2C2f", [512, True, 5, True, 1.2]]), 6, "A2C2f", "area=5",
         error=ValueError, also=("256 tokens",)),
    Case("coarse-not-half-fine", "PST's coarse input is not half the fine map (P3 given for a P4 query)",
         "yolo11n-pst.yaml", row(13, [[-1, 4], 2, "PST", [512, 2.0, 0.5]]), 13, "PST", "input 0 (fine map)",
         also=("must be exactly 2×",)),
    Case("gather-wrong-strides", "the low-stage gather fed B3 twice instead of B2, B3", "goldyolo-n.yaml",
         row(10, [[4, 4, 6, 9], 1, "LowStageAlign", []]), 10, "LowStageAlign", "32×32", also=("exactly 4× 16×16",)),
    # --- repeats ----------------------------------------------------------------------------------------------------
    Case("zero-repeats", "repeats 0 on an ultra_ext row", "yolov12n.yaml",
         row(6, [-1, 0, "ultra_ext.A2C2f", [512, True, 4]]), 6, "A2C2f", "got 0", also=("repeats",)),
    Case("negative-repeats", "negative repeats on an ultra_ext row", "yolo11n-pst.yaml",
         row(13, [[-1, 10], -2, "PST", [512]]), 13, "PST", "got -2", also=("repeats",)),
    Case("gelan-repeats", "a GELAN row repeats itself (its depth is an argument)", "gyolo-n.yaml",
         row(4, [-1, 2, "ScaledRepNCSPELAN4", [512, 256, 128, 1]]), 4, "ScaledRepNCSPELAN4", "got 2",
         also=("repeats must be 1",)),
    # --- types and values of arguments ------------------------------------------------------------------------------
    Case("string-for-int", "a word where the area count belongs", "yolov12n.yaml",
         row(6, [-1, 4, "ultra_ext.A2C2f", [512, True, "four"]]), 6, "A2C2f", "'four'", also=("area",)),
    Case("string-for-width", "a word where a channel count belongs", "gyolo-n.yaml",
         row(4, [-1, 1, "ScaledRepNCSPELAN4", [512, "wide", 128, 1]]), 4, "ScaledRepNCSPELAN4", "c3='wide'"),
    Case("bool-for-int", "True where the area count belongs (True is an int in Python)", "yolov12n.yaml",
         row(6, [-1, 4, "ultra_ext.A2C2f", [512, True, True]]), 6, "A2C2f", "True", also=("must be int",)),
    Case("even-pool-kernel", "SPPELAN's max-pool kernel must be odd", "gyolo-n.yaml",
         row(9, [-1, 1, "ScaledSPPELAN", [512, 256, 4]]), 9, "ScaledSPPELAN", "(k)=4", also=("odd",)),
    Case("semantic-stride", "an upsampling stride the semantic head does not support", "gyolo-sem-n.yaml",
         row(21, [[20], 1, "GeneralistSemanticSegment", ["nc", 3]]), 21, "GeneralistSemanticSegment", "got stride=3"),
    Case("zero-classes", "nc 0 in a detection head", "goldyolo-n.yaml",
         row(28, [[19, 24, 27], 1, "EfficientDecoupledDetect", [0]]), 28, "EfficientDecoupledDetect", "nc",
         also=("must be >= 1",)),
    Case("extra-arguments", "more arguments than the module reads (never silently ignored)", "gyolo-generalist-n.yaml",
         row(31, [[16, 19, 22, 26, 30], 1, "GeneralistHead", ["nc", 32, 1, 5]]), 31, "GeneralistHead",
         "[80, 32, 1, 5]", also=("at most 3 arguments",)),
    Case("residual-width", "a residual A2C2f whose input and output widths differ", "yolov12n.yaml",
         row(8, [-1, 4, "ultra_ext.A2C2f", [512, True, 1, True, 1.2]]), 8, "A2C2f", "c1=256, c2=128",
         also=("residual",)),
    Case("end2end-gold-yolo", "end2end: True on Gold-YOLO (its head has no one-to-one branch)", "goldyolo-n.yaml",
         key("end2end", True), 28, "EfficientDecoupledDetect", "end2end"),
    # --- input sizes the model cannot take ------------------------------------------------------------------------
    Case("image-not-multiple-of-32", "a 100×100 image fed to Gold-YOLO directly (not letterboxed)",
         "goldyolo-n.yaml", None, 10, "LowStageAlign", "multiples of 32", imgsz=(100, 100)),
    Case("image-too-small-for-topk", "a 64-px image: PST's top-8 exceeds the 2×2 coarse map", "yolo11n-pst.yaml",
         None, 13, "PST", "topk=8", imgsz=(64, 64), also=("4 coarse tokens",)),
    # --- arguments outside the YAML -------------------------------------------------------------------------------
    Case("attention-backend-name", "an unknown process-wide attention backend", None, None, None, "attention backend",
         "'fast'", run=_bad_global_backend, also=("sdpa, math, flash",)),
    Case("module-backend-name", "an unknown attention backend set on one attention module", None, None, None,
         "attention backend", "'fast'", run=_bad_module_backend),
    Case("pst-topk-option", "a negative top-k given to set_pst_options", None, None, None, "topk", "-3",
         run=_bad_pst_topk),
    Case("distill-loss-name", "an unknown distill_loss= (training with distill_model=)", None, None, None,
         "distill_loss", "'kl'", run=_bad_distill_loss, also=("sl2, cwd",)),
    # --- masked pre-training (ultra-ext pretrain) -------------------------------------------------------------------
    Case("pretrain-pooled-backbone", "a backbone row that pools away the spatial map cannot be pre-trained masked",
         None, None, 2, "AdaptiveAvgPool2d", "to 1×1", run=_pooled_backbone_pretraining),
    Case("pretrain-image-size", "a pre-training imgsz that is not a multiple of the backbone's deepest stride",
         None, None, None, "imgsz", "imgsz=100", run=_pretraining_image_size, also=("multiple of 32", "imgsz=96")),
]  # fmt: skip


def load(name: str) -> dict:
    from ultralytics.nn.tasks import yaml_model_load

    return deepcopy(yaml_model_load(name))


def model_class(d: dict):
    from ultralytics.nn.tasks import DetectionModel, SegmentationModel, guess_model_task

    from ultra_ext.models.generalist import GeneralistModel

    return {"generalist": GeneralistModel, "segment": SegmentationModel}.get(guess_model_task(d), DetectionModel)


def trigger(case: Case) -> BaseException:
    """Run the case; return the exception it raised (fails if it raised none)."""
    try:
        if case.run is not None:
            case.run()
        else:
            d = load(case.yaml)
            if case.edit is not None:
                case.edit(d)
            model = model_class(d)(d, verbose=False)
            if case.imgsz is not None:
                with torch.no_grad():
                    model.eval()(torch.zeros(1, 3, *case.imgsz))
    except Exception as e:  # noqa: BLE001 (the catalogue inspects whatever came out)
        return e
    finally:
        import ultra_ext

        ultra_ext.set_attn_backend("sdpa")
    raise AssertionError(f"{case.id}: no error was raised")


def test_catalogue_is_large_and_unique():
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 20


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_error_names_layer_module_and_value(case):
    e = trigger(case)
    msg = str(e)
    assert isinstance(e, case.error) and isinstance(e, (ValueError, TypeError)), f"{type(e).__name__}: {msg}"
    if case.layer is not None:
        assert f"layer {case.layer} " in msg or f"layer {case.layer}:" in msg, msg
    for fragment in (case.module, case.value, *case.also):
        assert fragment in msg, (fragment, msg)
    # one clear error: a single line, not a chain the user must read backwards
    assert "\n" not in msg.strip() and 20 < len(msg) < 1000, msg
    assert e.__cause__ is None or e.__suppress_context__ or isinstance(e.__cause__, (ValueError, TypeError)), msg


def markdown() -> str:
    """``docs/errors.md``: the catalogue with the real message of each case."""
    lines = [
        "# Error catalogue",
        "",
        "What ultra_ext says when a model YAML or an argument is wrong. Every message names the YAML layer index, the",
        "module and the offending value. Generated from `tests/test_error_catalogue.py`, which checks every entry",
        "(regenerate: `python tests/test_error_catalogue.py > docs/errors.md`). All are `ValueError` or `TypeError`",
        "subclasses: `LayerError` (a row), `MapSizeError` and `AreaSplitError` (feature-map sizes).",
        "",
        "| case | what is wrong | starting from | error |",
        "|---|---|---|---|",
    ]
    for case in CATALOGUE:
        e = trigger(case)
        message = str(e).replace("|", "\\|")
        lines.append(
            f"| `{case.id}` | {case.problem} | {case.yaml or '(argument)'} | `{type(e).__name__}`: {message} |"
        )
    return "\n".join(lines) + "\n"


def test_docs_page_matches_the_real_messages():
    assert DOC.is_file(), "docs/errors.md is missing: python tests/test_error_catalogue.py > docs/errors.md"
    assert DOC.read_text() == markdown(), (
        "docs/errors.md is stale: python tests/test_error_catalogue.py > docs/errors.md"
    )


if __name__ == "__main__":
    import ultra_ext  # noqa: F401  (activates, as the startup hook would)

    sys.stdout.write(markdown())


@pytest.mark.slow
def test_stock_cli_ends_with_the_same_single_line(tmp_path):
    """Through the stock ``yolo`` command (fresh interpreter, startup hook) the output ends with the catalogue's
    message: the user reads one line naming the layer, not a chain of re-raised errors."""
    from ultralytics.utils import YAML


    case = next(c for c in CATALOGUE if c.id == "string-for-int")
    d = load(case.yaml)
    case.edit(d)
    d.pop("yaml_file", None)
    bad = tmp_path / "yolov12n-typo.yaml"
    YAML.save(bad, d)
    proc = run([str(YOLO_CLI), "train", f"model={bad}", "data=coco8.yaml", "epochs=1"], cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ultra_ext.integration.protocol.LayerError: model YAML layer 6 (ultra_ext.A2C2f"), describe(proc)
    assert "area='four'" in last and proc.stderr.count("LayerError") == 1, describe(proc)
