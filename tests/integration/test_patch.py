"""The guarded parse_model patch (ultra_ext/integration/patch.py and activate/deactivate).

(a) every stock model YAML shipped with Ultralytics builds the same layers with and without ultra_ext;
(b) the guard refuses a parse_model it does not recognise, naming the installed Ultralytics version;
(c) deactivate() restores every original and activate() is idempotent;
(d) the re-compiled function keeps Ultralytics' filename and line numbers;
(e) a protocol module (multi-input, channel-changing) defined here builds inside a YOLO11 layout.

Runtime on the 2-core CI box: about 35 s, nearly all in (a) (69 stock builds, each done twice, shapes only).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import linecache
import re
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import ultralytics
import ultralytics.nn as ul_nn
import ultralytics.nn.tasks as tasks
import ultralytics.utils.checks as ul_checks
from ultralytics.nn.modules.block import A2C2f as StockA2C2f
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import YAML
from ultralytics.utils.callbacks.base import default_callbacks

import ultra_ext
from ultra_ext.integration import LayerError, UltralyticsIncompatibleError, ddp_anchor
from ultra_ext.integration.patch import HOOK_NAME, build_patched_parse_model, patch_source

# Ultralytics' own check_yaml: the recipes wrapper (ultra_ext.integration.recipes) keeps it when it replaces
# ul_checks.check_yaml, and this module may be imported after activation.
stock_check_yaml = getattr(ul_checks.check_yaml, "ultra_ext_stock", ul_checks.check_yaml)
STOCK_MODELS = Path(ultralytics.__file__).parent / "cfg" / "models"
STOCK_YAMLS = sorted(STOCK_MODELS.rglob("*.yaml"))
# Besides each file's first scale: scales whose stock parser branches differ (A2C2f residual + mlp_ratio at l/x,
# C3k2 c3k at m/l/x, max_channels 512 from m up).
EXTRA_SCALES = {"12/yolo12.yaml": "sl", "11/yolo11.yaml": "m"}


@pytest.fixture(autouse=True)
def _active_after():
    """Every test leaves ultra_ext active, whatever it toggled."""
    yield
    ultra_ext.activate()


def _original_parse_model():
    return inspect.unwrap(tasks.parse_model)


# ------------------------------------------------------------------------------------------------ (a) stock parity
def _cases() -> list[tuple[str, str]]:
    cases = []
    for path in STOCK_YAMLS:
        rel = path.relative_to(STOCK_MODELS).as_posix()
        scales = list(YAML.load(path).get("scales") or {})
        cases += [(rel, s) for s in (scales[:1] or [""]) + list(EXTRA_SCALES.get(rel, ""))]
    return cases


CASES = _cases()


def _model_dict(rel: str, scale: str) -> dict:
    d = YAML.load(STOCK_MODELS / rel)
    d["scale"] = scale
    for row in d.get("backbone", []) + d.get("head", []):
        if row[2] == "TorchVision" and len(row[3]) > 2:
            row[3][2] = None  # weights: the stock row downloads pretrained ImageNet weights; the layout is the same
    return d


@contextlib.contextmanager
def _shapes_only():
    """Build on the meta device with torch's weight initialisers switched off: the sweep compares shapes and
    counts only, and this makes ~75 builds x 2 affordable on a 2-core CPU."""
    classes = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.Embedding)
    saved = {cls: vars(cls).get("reset_parameters") for cls in classes}
    for cls in classes:
        cls.reset_parameters = lambda self: None
    try:
        with torch.device("meta"):
            yield
    finally:
        for cls, fn in saved.items():
            if fn is None:
                del cls.reset_parameters
            else:
                cls.reset_parameters = fn


def _signature(rel: str, scale: str):
    """What parse_model builds, layer by layer: index, from, class, type string, params, every tensor's shape."""
    d = _model_dict(rel, scale)
    try:
        with _shapes_only():
            model, save = tasks.parse_model(copy.deepcopy(d), d.get("channels", 3), verbose=False)
    except Exception as e:  # a stock YAML that does not build must fail identically both ways
        return ("error", type(e).__name__, str(e))
    layers = [
        (
            m.i,
            m.f,
            f"{type(m).__module__}.{type(m).__qualname__}",
            m.type,
            m.np,
            tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()),
        )
        for m in model
    ]
    return layers, save


@pytest.fixture(scope="module")
def stock_signatures():
    """Every case built once with ultra_ext deactivated (one deactivate window for the whole module)."""
    ultra_ext.deactivate()
    try:
        assert not getattr(tasks.parse_model, "ultra_ext_patched", False)
        return {case: _signature(*case) for case in CASES}
    finally:
        ultra_ext.activate()


def test_stock_yaml_coverage():
    """The sweep below really covers Ultralytics' model zoo (66 files in 8.4.190), not a handful."""
    n_files = len({rel for rel, _ in CASES})
    print(f"\nstock model YAMLs covered: {n_files} files, {len(CASES)} (file, scale) builds")
    assert n_files == len(STOCK_YAMLS) >= 50
    files = {r for r, _ in CASES}
    assert {"12/yolo12.yaml", "11/yolo11.yaml", "rt-detr/rtdetr-l.yaml", "v8/yolov8-worldv2.yaml"} <= files


@pytest.mark.parametrize("rel,scale", CASES, ids=[f"{r}-{s or 'noscale'}" for r, s in CASES])
def test_stock_yaml_builds_identically(rel, scale, stock_signatures):
    assert getattr(tasks.parse_model, "ultra_ext_patched", False)
    ours = _signature(rel, scale)
    stock = stock_signatures[(rel, scale)]
    assert stock[0] != "error", f"stock parse_model failed on {rel}: {stock}"
    assert ours == stock
    assert sum(layer[4] for layer in ours[0]) > 0


# ------------------------------------------------------------------------------------------------ (b) the guard
@pytest.fixture(scope="module")
def original_source():
    fn = _original_parse_model()
    assert fn.__code__.co_filename == tasks.__file__
    lines, first = inspect.getsourcelines(fn)
    src = "".join(lines)
    assert src.count("if m in base_modules:") == 1
    return src, first, fn.__code__.co_filename


def _nested_parse_model_code(module_code):
    return next(c for c in module_code.co_consts if isinstance(c, types.CodeType) and c.co_name == "parse_model")


def test_patch_source_accepts_the_real_source(original_source):
    src, first, filename = original_source
    code = _nested_parse_model_code(patch_source(src, first, filename))
    assert HOOK_NAME in code.co_names  # the protocol branch went in
    assert code.co_filename == filename and code.co_firstlineno == first


def _anchor_removed(src):
    return src.replace("if m in base_modules:", "if base_modules.__contains__(m):")


def _anchor_duplicated(src):
    return src.rstrip() + "\n    if m in base_modules:\n        pass\n"


def _renamed(local):
    return lambda src: re.sub(rf"\b{local}\b", f"{local}_renamed", src)


VARIANTS = {
    "anchor-removed": (_anchor_removed, "found 0"),
    "anchor-duplicated": (_anchor_duplicated, "found 2"),
    "args-renamed": (_renamed("args"), "'args'"),
    "c2-renamed": (_renamed("c2"), "'c2'"),
    "ch-renamed": (_renamed("ch"), "'ch'"),
    "lambda": (lambda src: "parse_model = lambda d, ch, verbose=True: None\n", "not a plain function"),
    "class": (lambda src: "class parse_model:\n    pass\n", "not a plain function"),
    "other-name": (lambda src: src.replace("def parse_model(", "def parse_model_v2(", 1), "not a plain function"),
    "empty": (lambda src: "", "not a plain function"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_guard_refuses_altered_source(variant, original_source):
    src, first, filename = original_source
    edit, reason = VARIANTS[variant]
    altered = edit(src)
    assert altered != src
    compile(altered, "<check>", "exec")  # each variant is still valid Python: only the guard can reject it
    with pytest.raises(UltralyticsIncompatibleError) as e:
        patch_source(altered, first, filename)
    msg = str(e.value)
    assert f"ultralytics {ultralytics.__version__}" in msg
    assert reason in msg
    assert "ULTRA_EXT_DISABLE" in msg
    assert "ultralytics<8.5,>=8.4.164" in msg  # the supported range, read from the installed distribution


def _sourceless_module():
    fake = types.ModuleType("fake_tasks")
    fake.__file__ = "/nonexistent/fake_tasks.py"
    exec(compile("def parse_model(d, ch, verbose=True):\n    return None\n", "<generated>", "exec"), fake.__dict__)
    return fake


def test_guard_refuses_unreadable_source():
    with pytest.raises(UltralyticsIncompatibleError, match=re.escape(f"ultralytics {ultralytics.__version__}")) as e:
        build_patched_parse_model(_sourceless_module(), lambda d: None)
    assert "source cannot be read" in str(e.value)


# ---------------------------------------------------------------- (b2) fingerprint and self-check of the semantics
def _compiled_variant(src: str, first: int, filename: str):
    """``src`` (an edited parse_model) patched and compiled with tasks' globals, as activate() would install it."""
    from ultra_ext.integration.selfcheck import fingerprint

    namespace: dict = {}
    exec(patch_source(src, first, filename), tasks.__dict__, namespace)  # tasks holds HOOK_NAME while active
    fn = namespace["parse_model"]
    fn.ultra_ext_fingerprint = fingerprint(src)
    return fn


SEMANTIC_VARIANTS = {  # each keeps the anchor and every local the guard checks, but builds something else
    "channels-recorded-doubled": ("        ch.append(c2)", "        ch.append(c2 * 2)"),
    "repeats-not-scaled": ("max(round(n * depth), 1) if n > 1 else n", "1"),
    "save-list-dropped": ("        save.extend(", "        [].extend("),
}


def test_known_source_skips_the_probe_and_the_probe_matches_it(original_source):
    from ultra_ext.integration.selfcheck import KNOWN_FINGERPRINTS, fingerprint, run_self_check

    src, first, filename = original_source
    assert fingerprint(src) in KNOWN_FINGERPRINTS  # this Ultralytics: tested, no probe at start-up
    assert tasks.parse_model.ultra_ext_fingerprint == fingerprint(src)
    # cosmetic edits (docstring, comments, blank lines) keep the fingerprint
    cosmetic = src.replace('"""Parse a YOLO', '"""Reworded: parse a YOLO', 1).replace("  # depth gain", "\n\n")
    assert cosmetic != src and fingerprint(cosmetic) == fingerprint(src)
    assert run_self_check(tasks.parse_model) == []  # the pinned probe numbers are today's


@pytest.mark.parametrize("variant", list(SEMANTIC_VARIANTS))
def test_self_check_refuses_an_untested_source_that_builds_differently(variant, original_source):
    from ultra_ext.integration.patch import check_semantics

    src, first, filename = original_source
    old, new = SEMANTIC_VARIANTS[variant]
    assert src.count(old) == 1
    fn = _compiled_variant(src.replace(old, new), first, filename)
    with pytest.raises(UltralyticsIncompatibleError) as e:
        check_semantics(fn)
    msg = str(e.value)
    assert f"ultralytics {ultralytics.__version__}" in msg and "self-check" in msg and "ULTRA_EXT_DISABLE" in msg


def test_self_check_accepts_an_untested_source_that_builds_the_same(original_source):
    """A harmless new statement changes the fingerprint; the probe then runs and passes: no false alarm."""
    from ultra_ext.integration.patch import check_semantics
    from ultra_ext.integration.selfcheck import KNOWN_FINGERPRINTS

    src, first, filename = original_source
    old = "        ch.append(c2)"
    fn = _compiled_variant(src.replace(old, old + "\n        _unused = len(ch)"), first, filename)
    assert fn.ultra_ext_fingerprint not in KNOWN_FINGERPRINTS
    check_semantics(fn)


def test_failed_activation_rolls_back():
    """activate() on an unpatchable parse_model raises and leaves tasks exactly as it found it."""
    ultra_ext.deactivate()
    stock = tasks.parse_model
    before = dict(tasks.__dict__)
    tasks.parse_model = _sourceless_module().parse_model
    try:
        with pytest.raises(UltralyticsIncompatibleError):
            ultra_ext.activate()
        assert not ultra_ext.is_active()
        assert not [k for k in tasks.__dict__ if k.startswith("ultra_ext.") or k in ("A2C2fTurbo", HOOK_NAME)]
        assert ddp_anchor not in default_callbacks["on_pretrain_routine_start"]
    finally:
        tasks.parse_model = stock
    assert tasks.__dict__ == before
    ultra_ext.activate()
    assert ultra_ext.is_active() and tasks.parse_model.ultra_ext_patched


# ------------------------------------------------------------------------------------------------ (c) deactivate
def _assert_stock_state():
    assert not ultra_ext.is_active()
    assert tasks.parse_model is _original_parse_model()
    assert tasks.parse_model.__module__ == "ultralytics.nn.tasks"
    assert not hasattr(tasks.parse_model, "ultra_ext_patched")
    assert tasks.check_yaml is stock_check_yaml
    assert ul_checks.check_yaml is stock_check_yaml  # cfg= lookups (recipes) restored too
    assert tasks.guess_model_scale.__module__ == "ultralytics.nn.tasks"
    assert not hasattr(tasks.guess_model_scale, "__wrapped__")
    assert ul_nn.parse_model is tasks.parse_model
    assert ul_nn.guess_model_scale is tasks.guess_model_scale
    # (dunders excluded: tasks.__loader__ is the bootstrap's loader wrapper, which stays by design)
    ours = [
        k
        for k, v in tasks.__dict__.items()
        if k == HOOK_NAME or (not k.startswith("__") and str(getattr(v, "__module__", "")).startswith("ultra_ext."))
    ]
    assert ours == []
    assert tasks.A2C2f is StockA2C2f
    assert ddp_anchor not in default_callbacks["on_pretrain_routine_start"]


def _assert_active_state():
    assert ultra_ext.is_active()
    assert tasks.parse_model.ultra_ext_patched
    assert inspect.unwrap(tasks.parse_model).__module__ == "ultralytics.nn.tasks"
    assert tasks.check_yaml.__wrapped__ is stock_check_yaml
    assert ul_checks.check_yaml.ultra_ext_stock is stock_check_yaml
    assert tasks.guess_model_scale.__wrapped__.__module__ == "ultralytics.nn.tasks"
    assert ul_nn.parse_model is tasks.parse_model
    assert tasks.__dict__[HOOK_NAME].__module__ == "ultra_ext.integration.patch"
    assert tasks.__dict__["ultra_ext.A2C2f"].__module__ == "ultra_ext.nn.yolov12"
    assert tasks.A2C2f is StockA2C2f
    assert default_callbacks["on_pretrain_routine_start"].count(ddp_anchor) == 1


def test_deactivate_restores_and_activate_is_idempotent():
    _assert_active_state()
    original = _original_parse_model()
    ultra_ext.deactivate()
    _assert_stock_state()
    assert tasks.parse_model is original  # the very function object Ultralytics defined
    with pytest.raises(FileNotFoundError):  # our YAMLs are gone with it
        tasks.yaml_model_load("yolov12n.yaml")
    ultra_ext.deactivate()  # second call: no-op
    _assert_stock_state()

    ultra_ext.activate()
    _assert_active_state()
    snapshot = (tasks.parse_model, tasks.check_yaml, tasks.guess_model_scale, dict(tasks.__dict__))
    callbacks = list(default_callbacks["on_pretrain_routine_start"])
    ultra_ext.activate()  # second call: no-op, nothing re-wrapped
    assert (tasks.parse_model, tasks.check_yaml, tasks.guess_model_scale, dict(tasks.__dict__)) == snapshot
    assert default_callbacks["on_pretrain_routine_start"] == callbacks
    assert tasks.yaml_model_load("yolov12n.yaml")["scale"] == "n"


# ------------------------------------------------------------------------------------------------ (d) line numbers
def _bad_conv_dict() -> dict:
    """A row that fails inside the stock base_modules branch: ``min("abc", max_channels)`` raises TypeError."""
    return {"nc": 2, "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", ["abc", 3, 2]]], "head": []}


def _tasks_frames(exc: BaseException):
    """(filename, lineno, co_firstlineno, source line) of every frame of exc's traceback in Ultralytics' tasks.py."""
    out, tb = [], exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == tasks.__file__:
            line = linecache.getline(code.co_filename, tb.tb_lineno).strip()
            out.append((code.co_name, tb.tb_lineno, code.co_firstlineno, line))
        tb = tb.tb_next
    return out


def test_traceback_in_stock_branch_points_to_the_same_line():
    with pytest.raises(TypeError) as patched:
        tasks.parse_model(_bad_conv_dict(), 3, verbose=False)
    ultra_ext.deactivate()
    with pytest.raises(TypeError) as stock:
        tasks.parse_model(_bad_conv_dict(), 3, verbose=False)
    ultra_ext.activate()
    frames = _tasks_frames(patched.value)
    assert frames == _tasks_frames(stock.value)
    assert len(frames) == 1
    name, lineno, first, line = frames[0]
    assert (name, first) == ("parse_model", _original_parse_model().__code__.co_firstlineno)
    assert "min(c2, max_channels)" in line


def test_protocol_branch_borrows_the_anchor_line():
    """An error raised from the inserted branch is reported at the ``if m in base_modules:`` line, so every
    later line of the function keeps its number."""
    d = {"nc": 2, "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "ultra_ext.A2C2f", [-8]]], "head": []}
    with pytest.raises(LayerError) as e:
        tasks.parse_model(d, 3, verbose=False)
    frames = [f for f in _tasks_frames(e.value) if f[0] == "parse_model"]
    assert len(frames) == 1 and frames[0][3] == "if m in base_modules:"
    assert frames[0][2] == _original_parse_model().__code__.co_firstlineno


# ------------------------------------------------------------------------------------------------ (e) protocol
class Gather4(nn.Module):
    """Test module: pools four feature maps to the grid of the last one and mixes them with a 1×1 conv.

    Input: list of 4 tensors (B, c_k, H_k, W_k). Output: (B, c2, H_3, W_3)."""

    def __init__(self, c1: int, c2: int):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, 1)

    def forward(self, xs):
        size = xs[-1].shape[-2:]
        return self.conv(torch.cat([F.adaptive_avg_pool2d(x, size) for x in xs], 1))

    @classmethod
    def ul_parse(cls, ctx):
        c_in = ctx.c_in_list()
        if len(c_in) != 4:
            raise ctx.error(f"needs 4 inputs, got {len(c_in)}")
        c2 = ctx.width(ctx.arg(0, "c2", int))
        return {"args": [sum(c_in), c2], "c2": c2, "n": 1}


def _gather_dict(module: str = "Gather4") -> dict:
    """YOLO11 backbone (layers 0-10) + a 4-input gather head; n scale = [0.50, 0.25, 1024]."""
    d = YAML.load(STOCK_MODELS / "11" / "yolo11.yaml")
    d.update(nc=3, scale="n")
    d["head"] = [
        [[2, 4, 6, 10], 1, module, [256]],  # 11: P2..P5 → stride 32, 256 * 0.25 = 64 channels
        [-1, 1, "Conv", [128, 3, 1]],  # 12: must receive 64 channels
        [[4, 6, 12], 1, "Detect", ["nc"]],  # 13: P3, P4, P5
    ]
    return d


def test_protocol_module_builds_with_multi_input_and_new_width(monkeypatch):
    monkeypatch.setitem(tasks.__dict__, "Gather4", Gather4)
    model = DetectionModel(_gather_dict(), ch=3, nc=3, verbose=False)
    gather, conv, detect = model.model[11], model.model[12], model.model[13]
    assert type(gather) is Gather4 and gather.f == [2, 4, 6, 10] and gather.i == 11
    assert {2, 4, 6, 10} <= set(model.save)
    assert gather.conv.out_channels == 64  # make_divisible(min(256, 1024) * 0.25, 8)
    assert conv.conv.in_channels == 64  # the next layer saw the protocol's c2, not ch[f]
    assert detect.cv2[2][0].conv.in_channels == 32  # Conv 128 * 0.25
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    assert gather.np == sum(p.numel() for p in gather.parameters())

    seen = {}
    gather.register_forward_hook(lambda mod, inp, out: seen.update(c_in=[x.shape[1] for x in inp[0]], out=out.shape))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    assert gather.conv.in_channels == sum(seen["c_in"])  # ul_parse read the real channels of all 4 inputs
    assert len(seen["c_in"]) == 4 and tuple(seen["out"]) == (1, 64, 2, 2)


def test_protocol_module_needs_the_patch(monkeypatch):
    """Control: the same YAML through stock parse_model fails (list 'from' at the fallback branch)."""
    monkeypatch.setitem(tasks.__dict__, "Gather4", Gather4)
    ultra_ext.deactivate()
    with pytest.raises(TypeError, match="list indices"):
        tasks.parse_model(_gather_dict(), 3, verbose=False)


class _Bad(nn.Module):
    result = None

    def __init__(self, *args):
        super().__init__()

    @classmethod
    def ul_parse(cls, ctx):
        if isinstance(cls.result, Exception):
            raise cls.result
        return cls.result


@pytest.mark.parametrize(
    "result,detail",
    [
        (None, "must return a dict with 'args' and 'c2'"),
        ([1, 2], "must return a dict with 'args' and 'c2'"),
        ({"args": [8]}, "must return a dict with 'args' and 'c2'"),
        ({"c2": 8}, "must return a dict with 'args' and 'c2'"),
        ({"args": [8], "c2": 8, "n": 0}, "repeats must be an integer >= 1"),
        ({"args": [8], "c2": 8, "n": "2"}, "repeats must be an integer >= 1"),
        (KeyError("boom"), "KeyError: 'boom'"),
    ],
    ids=["none", "list", "no-c2", "no-args", "n0", "n-str", "raises"],
)
def test_garbage_from_ul_parse_names_the_layer(monkeypatch, result, detail):
    bad = type("Bad", (_Bad,), {"result": result})
    monkeypatch.setitem(tasks.__dict__, "Bad", bad)
    with pytest.raises(LayerError) as e:
        DetectionModel(_gather_dict("Bad"), ch=3, nc=3, verbose=False)
    msg = str(e.value)
    assert msg.startswith("model YAML layer 11 (Bad, from=[2, 4, 6, 10]):")
    assert detail in msg
