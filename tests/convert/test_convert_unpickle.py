"""Restricted reading of foreign checkpoints: only vetted classes resolve; nothing a file names can run."""

from __future__ import annotations

import pickle

import pytest

from ultra_ext.convert.unpickle import OfficialStub, StubPickle, vetted_global


def _call_pickle(module: str, name: str, *args: str) -> bytes:
    """Protocol-2 pickle bytes that call ``module.name(*args)`` when unpickled (what a crafted checkpoint does)."""
    out = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n("
    for a in args:
        data = a.encode()
        out += b"X" + len(data).to_bytes(4, "little") + data
    return out + b"tR."


@pytest.mark.parametrize(
    "module, name",
    [
        ("os", "system"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("torch", "load"),
        # subprocess.Popen re-exported inside torch: a package prefix is not enough to trust a name
        ("torch.distributed.elastic.multiprocessing.subprocess_handler.subprocess_handler", "Popen"),
        ("ultralytics.utils", "LOGGER"),
    ],
)
def test_nothing_outside_the_vetted_set_resolves_or_runs(module, name, tmp_path):
    with pytest.raises((AttributeError, ImportError)):
        vetted_global(module, name)
    marker = tmp_path / "ran"
    stubs = StubPickle(restricted=True)
    obj = stubs.loads(_call_pickle(module, name, "touch", str(marker)))
    assert isinstance(obj, OfficialStub) and not marker.exists()
    assert stubs.stubbed == [f"{module}.{name}"]


def test_vetted_classes_resolve_for_real():
    from torch.nn import Conv2d
    from ultralytics.nn.modules.block import AAttn
    from ultralytics.utils import IterableSimpleNamespace

    from ultra_ext.nn.yolov12 import A2C2f

    assert vetted_global("torch.nn.modules.conv", "Conv2d") is Conv2d
    assert vetted_global("ultralytics.nn.modules.block", "AAttn") is AAttn
    assert vetted_global("ultralytics.utils", "IterableSimpleNamespace") is IterableSimpleNamespace
    assert vetted_global("ultra_ext.nn.yolov12", "A2C2f") is A2C2f
    assert vetted_global("collections", "OrderedDict").__name__ == "OrderedDict"  # torch's weights_only list
    assert vetted_global("__builtin__", "set") is set  # protocol 2's Python 2 name
    assert vetted_global("torchvision.transforms.transforms", "Compose").__name__ == "Compose"  # cls model.transforms
    with pytest.raises(AttributeError):
        vetted_global("ultralytics.nn.modules", "AAttn")  # a re-export: pickle names the defining module


def test_unrestricted_mode_still_resolves_normally():
    assert pickle.loads(_call_pickle("builtins", "str", "x")) == "x"  # the crafted bytes work as a pickle
    assert StubPickle().loads(_call_pickle("builtins", "str", "x")) == "x"  # full unpickling (trusted files)
