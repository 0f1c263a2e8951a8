"""Property-based fuzzing (hypothesis) of the Generalist YOLO modules (``generalist.py``): the GELAN encoder blocks
and the four heads, called directly with generated arguments and inputs.

Properties (each a ``@given`` test; the ``ci`` profile runs 110 examples per test, 440 for this family,
``ULTRA_EXT_FUZZ_PROFILE=nightly`` 1100 per test):

1. GELAN blocks (ScaledRepNCSPELAN4, RepNCSPELAN4B, ScaledSPPELAN) with valid arguments, in train and eval mode:
   output ``(B, c2, H, W)``, finite; the alternative entry point ``forward_split`` gives the same output.
2. The same blocks with random BatchNorm statistics: the deploy form that ``DetectionModel.fuse()`` makes (RepConv
   branches merged, every BN folded) gives the training form's output in eval mode.
3. Heads (GeneralistDetect, GeneralistSegment, GeneralistHead with and without the one-to-one branch, and
   GeneralistSemanticSegment) on tiny pyramids: the documented training dicts (boxes ``(B, 4·reg_max, A)``, scores
   ``(B, nc, A)``, mask coefficients ``(B, nm, A)``, prototypes ``(B, nm, H4, W4)``, semantic ``(B, nc + sem_nc,
   H4, W4)``), the inference outputs (``(B, 4 + nc [+ nm], A)`` decoded, or ``(B, min(max_det, A), 6 [+ nm])``
   NMS-free), the semantic head's logits ``(B, nc, h, w)`` and export outputs (``uint8``/``int32`` class map
   ``(B, h·stride, w·stride)`` for ONNX, upsampled logits for TorchScript); all values finite.
4. Invalid constructor arguments: one argument replaced by a wrong type (str, float, bool, None, list where an int
   belongs; a non-bool ``end2end``; a non-list or a list with non-int entries for ``ch``) or an out-of-range value
   (widths, depth, nc, nm, sem_nc, reg_max < 1; ``c3`` odd or < 2; ``c4`` < 2; RepNCSPELAN4B ``c2`` odd; pool
   kernel even or < 1; semantic stride not 1, 2, 4 or 8; ``ch`` too short for the head's inputs or with entries
   < 1). Only ``ValueError``/``TypeError`` may be raised, and the message must name the argument and its value.

Valid ranges (every example tiny; the file takes about 12 s on one idle core, 37 s measured on a busy 2-core host):

* GELAN: ``c1``, ``c2`` 1-64 (RepNCSPELAN4B: ``c2`` even), ``c3`` even 2-32, ``c4`` 2-32, ``n`` 1-2; SPPELAN ``c3``
  1-32, pool kernel odd 1-9; maps 1-16 px per side;
* batch 1-3, in train mode 2-3 (BatchNorm needs more than one value per channel);
* heads: 1-3 pyramid levels at strides 8, 16, 32 with exact ×2 ratios (coarsest 1-2 px), 1-32 channels each; the
  stride-4 semantic and prototype features twice the finest level; nc 1-8, nm 1-8, sem_nc 1-3, reg_max 1-16,
  end2end on/off (one-to-one inference on/off when built with it); the semantic head: nc 1-8 or 255-258 (the
  class map's dtype switch), stride 1, 2, 4 or 8, a 1-8 px feature.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from hypothesis import example, given
from hypothesis import strategies as st

from ultra_ext.nn.generalist import (
    GeneralistDetect,
    GeneralistHead,
    GeneralistSegment,
    GeneralistSemanticSegment,
    RepNCSPELAN4B,
    ScaledRepNCSPELAN4,
    ScaledSPPELAN,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds helpers.py, fuzzing.py (no package)
from fuzzing import (  # noqa: E402
    assert_finite,
    assert_fused_matches,
    assert_refused,
    bad_channel_list,
    bad_int,
    build,
    mode_and_batch,
    random_inputs,
    with_examples,
)

MODULES = {
    cls.__name__: cls
    for cls in (
        ScaledRepNCSPELAN4,
        RepNCSPELAN4B,
        ScaledSPPELAN,
        GeneralistDetect,
        GeneralistSegment,
        GeneralistHead,
        GeneralistSemanticSegment,
    )
}
BLOCKS = ("ScaledRepNCSPELAN4", "RepNCSPELAN4B", "ScaledSPPELAN")
HEADS = ("GeneralistDetect", "GeneralistSegment", "GeneralistHead", "GeneralistSemanticSegment")
N_DENSE = {"GeneralistDetect": 0, "GeneralistSegment": 1, "GeneralistHead": 2}  # stride-4 inputs after the pyramid

# ------------------------------------------------------------------------------------------ valid arguments
CH = st.integers(1, 64)
SMALL_CH = st.integers(1, 32)
SIDE = st.integers(1, 16)
ODD_K = st.sampled_from([1, 3, 5, 7, 9])


@st.composite
def block_args(draw, kind: str) -> dict:
    if kind == "ScaledSPPELAN":
        return dict(c1=draw(CH), c2=draw(CH), c3=draw(SMALL_CH), k=draw(ODD_K))
    c2 = 2 * draw(st.integers(1, 32)) if kind == "RepNCSPELAN4B" else draw(CH)  # two halves
    return dict(
        c1=draw(CH), c2=c2, c3=2 * draw(st.integers(1, 16)), c4=draw(st.integers(2, 32)), n=draw(st.integers(1, 2))
    )


@st.composite
def head_args(draw, kind: str) -> dict:
    if kind == "GeneralistSemanticSegment":
        nc = draw(st.one_of(st.integers(1, 8), st.integers(255, 258)))
        return dict(nc=nc, stride=draw(st.sampled_from([1, 2, 4, 8])), ch=[draw(SMALL_CH)])
    ch = draw(st.lists(SMALL_CH, min_size=1 + N_DENSE[kind], max_size=3 + N_DENSE[kind]))
    kwargs = dict(nc=draw(st.integers(1, 8)))
    if kind != "GeneralistDetect":
        kwargs["nm"] = draw(st.integers(1, 8))
    if kind == "GeneralistHead":
        kwargs["sem_nc"] = draw(st.integers(1, 3))
    return dict(kwargs, reg_max=draw(st.integers(1, 16)), end2end=draw(st.booleans()), ch=ch)


@st.composite
def block_cases(draw, train_modes: tuple[bool, ...] = (False, True)):
    """``(kind, kwargs, input shape, train)``."""
    kind = draw(st.sampled_from(BLOCKS))
    kwargs = draw(block_args(kind))
    train, batch = draw(mode_and_batch())
    return kind, kwargs, (batch, kwargs["c1"], draw(SIDE), draw(SIDE)), train and True in train_modes


@st.composite
def head_cases(draw):
    """``(kind, kwargs, input shapes, mode)``; mode: ``train``, ``eval``, ``one2one`` (NMS-free inference of an
    end2end head), or for the semantic head ``export-onnx`` / ``export-torchscript``."""
    kind = draw(st.sampled_from(HEADS))
    kwargs = draw(head_args(kind))
    train, b = draw(mode_and_batch())
    if kind == "GeneralistSemanticSegment":
        mode = "train" if train else draw(st.sampled_from(["eval", "export-onnx", "export-torchscript"]))
        return kind, kwargs, [(b, kwargs["ch"][0], draw(st.integers(1, 8)), draw(st.integers(1, 8)))], mode
    n_dense = N_DENSE[kind]
    pyramid, dense = kwargs["ch"][: len(kwargs["ch"]) - n_dense], kwargs["ch"][len(kwargs["ch"]) - n_dense :]
    h, w, nl = draw(st.integers(1, 2)), draw(st.integers(1, 2)), len(pyramid)
    shapes = [(b, c, h * 2 ** (nl - 1 - i), w * 2 ** (nl - 1 - i)) for i, c in enumerate(pyramid)]
    shapes += [(b, c, 2 * shapes[0][2], 2 * shapes[0][3]) for c in dense]  # stride 4: twice the stride-8 level
    mode = "train" if train else draw(st.sampled_from(["eval", "one2one"] if kwargs["end2end"] else ["eval"]))
    return kind, kwargs, shapes, mode


# ------------------------------------------------------------------------------------------ valid: blocks
@given(case=block_cases())
@example(case=("ScaledRepNCSPELAN4", dict(c1=1, c2=1, c3=2, c4=2, n=1), (2, 1, 1, 1), True))  # smallest widths
@example(case=("ScaledSPPELAN", dict(c1=3, c2=5, c3=1, k=9), (1, 3, 2, 3), False))  # pool kernel > map
def test_gelan_blocks_valid_shape_and_finite(case):
    kind, kwargs, shape, train = case
    module = build(MODULES[kind], kwargs).train(train)
    x = random_inputs([shape])[0]
    with torch.no_grad():
        out = module(x)
        if kind != "ScaledSPPELAN":  # the stock block's split() entry point, used by some exporters
            split = module.forward_split(x)
    assert out.shape == (shape[0], kwargs["c2"], *shape[2:])
    assert_finite(out)
    if kind != "ScaledSPPELAN" and not train:  # (train-mode BN updates its statistics between the two calls)
        assert torch.allclose(split, out, atol=1e-6)


@given(case=block_cases(train_modes=(False,)))
def test_gelan_blocks_fused_equal_training_form(case):
    kind, kwargs, shape, _ = case
    assert_fused_matches(build(MODULES[kind], kwargs), random_inputs([shape])[0])


# ------------------------------------------------------------------------------------------- valid: heads
def check_branch(raw: dict, kind: str, kwargs: dict, b: int, n_anchors: int, dense_size) -> None:
    """One raw prediction dict (one-to-many or one-to-one) against the documented shapes."""
    assert raw["boxes"].shape == (b, 4 * kwargs["reg_max"], n_anchors)
    assert raw["scores"].shape == (b, kwargs["nc"], n_anchors)
    if kind != "GeneralistDetect":
        assert raw["mask_coefficient"].shape == (b, kwargs["nm"], n_anchors)
        assert raw["proto"].shape == (b, kwargs["nm"], *dense_size)


@given(case=head_cases())
@example(case=("GeneralistHead", dict(nc=1, nm=1, sem_nc=1, reg_max=1, end2end=True, ch=[1, 1, 1]),
               [(1, 1, 1, 1), (1, 1, 2, 2), (1, 1, 2, 2)], "one2one"))  # fmt: skip  # one level, one anchor
@example(case=("GeneralistSemanticSegment", dict(nc=257, stride=8, ch=[3]), [(1, 3, 2, 1)], "export-onnx"))
def test_heads_valid_shapes_and_finite(case):
    kind, kwargs, shapes, mode = case
    head = build(MODULES[kind], kwargs).train(mode == "train")
    xs = random_inputs(shapes)
    b = shapes[0][0]
    if kind == "GeneralistSemanticSegment":
        if mode.startswith("export"):
            head.export, head.format = True, mode.removeprefix("export-")
        with torch.no_grad():
            out = head(xs)
        h, w, s = shapes[0][2], shapes[0][3], kwargs["stride"]
        if mode == "export-onnx":  # the class map at the input resolution
            assert out.shape == (b, h * s, w * s) and out.dtype == (torch.uint8 if kwargs["nc"] <= 256 else torch.int32)
            assert out.max().item() < kwargs["nc"] or kwargs["nc"] == 1
        elif mode == "export-torchscript":  # upsampled logits
            assert out.shape == (b, kwargs["nc"], h * s, w * s)
        else:
            assert out.shape == (b, kwargs["nc"], h, w)
        assert_finite(out)
        return

    n_dense = N_DENSE[kind]
    nl = len(shapes) - n_dense
    head.stride = torch.tensor([8.0 * 2**i for i in range(nl)])
    if mode == "one2one":
        head.end2end = True  # what the validator / exporter select with nms=False
    with torch.no_grad():
        out = head(xs)
    n_anchors = sum(s[2] * s[3] for s in shapes[:nl])
    dense_size = shapes[-1][2:] if n_dense else None
    raw = out if mode == "train" else out[1]
    branches = [raw["one2many"], raw["one2one"]] if kwargs["end2end"] else [raw]
    for branch in branches:
        check_branch(branch, kind, kwargs, b, n_anchors, dense_size)
    if kind == "GeneralistHead":
        assert raw["semantic"].shape == (b, kwargs["nc"] + kwargs["sem_nc"], *shapes[nl][2:])
    if mode != "train":
        y = out[0] if kind == "GeneralistDetect" else out[0][0]
        extra = kwargs.get("nm", 0)
        if mode == "one2one":  # [x1, y1, x2, y2, score, class, mask coefficients]
            assert y.shape == (b, min(head.max_det, n_anchors), 6 + extra)
        else:  # decoded xywh boxes, class scores, mask coefficients per anchor
            assert y.shape == (b, 4 + kwargs["nc"] + extra, n_anchors)
        if kind != "GeneralistDetect":
            assert out[0][1].shape == (b, kwargs["nm"], *dense_size)
        if kind == "GeneralistHead":
            assert out[0][2].shape == (b, kwargs["nc"] + kwargs["sem_nc"], *shapes[nl][2:])
    assert_finite(out)


# ------------------------------------------------------------------------------------ invalid arguments
# Bad values per rule (fuzzing.bad_int, bad_channel_list). None is drawn where a *valid* value exists.
BAD = {
    "int>=1": bad_int(1),
    "int>=2": bad_int(2),
    "even>=2": st.one_of(bad_int(2), st.integers(1, 16).map(lambda v: 2 * v + 1)),
    "even>=1": st.one_of(bad_int(1), st.integers(0, 16).map(lambda v: 2 * v + 1)),
    "odd": st.one_of(bad_int(1), st.integers(1, 8).map(lambda v: 2 * v)),
    "bool": st.one_of(st.integers(0, 2), st.text(max_size=3), st.none(), st.floats(0, 1)),
    "stride": st.one_of(bad_int(1), st.integers(1, 64).filter(lambda v: v not in (1, 2, 4, 8))),
    "ch": bad_channel_list(1),
    "ch2": bad_channel_list(2),
    "ch3": bad_channel_list(3),
}
_ELAN = dict(c1="int>=1", c3="even>=2", c4="int>=2", n="int>=1")
RULES = {  # constructor argument -> rule of its valid values
    "ScaledRepNCSPELAN4": dict(_ELAN, c2="int>=1"),
    "RepNCSPELAN4B": dict(_ELAN, c2="even>=1"),
    "ScaledSPPELAN": dict(c1="int>=1", c2="int>=1", c3="int>=1", k="odd"),
    "GeneralistDetect": dict(nc="int>=1", reg_max="int>=1", end2end="bool", ch="ch"),
    "GeneralistSegment": dict(nc="int>=1", nm="int>=1", reg_max="int>=1", end2end="bool", ch="ch2"),
    "GeneralistHead": dict(nc="int>=1", nm="int>=1", sem_nc="int>=1", reg_max="int>=1", end2end="bool", ch="ch3"),
    "GeneralistSemanticSegment": dict(nc="int>=1", stride="stride", ch="ch"),
}


@st.composite
def invalid_constructor_cases(draw):
    """``(kind, kwargs, names)``: valid arguments with one replaced by a value its rule refuses."""
    kind = draw(st.sampled_from(list(RULES)))
    kwargs = draw(block_args(kind) if kind in BLOCKS else head_args(kind))
    name = draw(st.sampled_from(list(RULES[kind])))
    return kind, {**kwargs, name: draw(BAD[RULES[kind][name]])}, (name,)


REGRESSIONS = [  # found by this test before the constructors checked their arguments
    ("ScaledRepNCSPELAN4", dict(c1=8, c2=8, c3=7, c4=4, n=1), ("c3",)),  # accepted; forward_split: RuntimeError
    ("ScaledRepNCSPELAN4", dict(c1=8, c2=8, c3=8, c4=1, n=1), ("c4",)),  # zero-width RepCSP convs
    ("ScaledRepNCSPELAN4", dict(c1=8, c2=8, c3=8, c4=4, n=0), ("n",)),  # accepted: no bottlenecks
    ("RepNCSPELAN4B", dict(c1=8, c2=0, c3=8, c4=4, n=1), ("c2",)),  # accepted: zero output channels
    ("ScaledSPPELAN", dict(c1=8, c2=8, c3=4, k=4), ("k",)),  # RuntimeError at forward (concat of 8×8 and 9×9)
    ("ScaledSPPELAN", dict(c1=8, c2=8, c3=0, k=5), ("c3",)),  # accepted
    ("GeneralistDetect", dict(nc=0, reg_max=16, end2end=False, ch=[8, 8, 8]), ("nc",)),  # accepted
    ("GeneralistDetect", dict(nc=2, reg_max=0, end2end=False, ch=[8, 8, 8]), ("reg_max",)),  # accepted
    ("GeneralistDetect", dict(nc=2, reg_max=16, end2end=False, ch=[]), ("ch",)),  # IndexError
    ("GeneralistSegment", dict(nc=2, nm=4, reg_max=16, end2end=False, ch=[]), ("ch",)),  # unpacking, unnamed
    ("GeneralistHead", dict(nc=2, nm=4, sem_nc=0, reg_max=16, end2end=False, ch=[8] * 5), ("sem_nc",)),  # accepted
    ("GeneralistSemanticSegment", dict(nc=2, stride=3, ch=[8]), ("stride",)),  # accepted
    ("GeneralistSemanticSegment", dict(nc=2, stride=4, ch=[]), ("ch",)),  # IndexError
]


@given(case=invalid_constructor_cases())
@with_examples(REGRESSIONS)
def test_invalid_arguments_raise_value_or_type_error(case):
    """Only ValueError/TypeError, whose message names the argument and its value."""
    kind, kwargs, names = case
    assert_refused(MODULES[kind], kwargs, names)
