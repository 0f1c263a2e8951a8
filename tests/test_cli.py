"""The ``ultra-ext`` console script (installed next to the interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ULTRA_EXT = Path(sys.executable).parent / "ultra-ext"


def _run(*args, cwd):
    if not ULTRA_EXT.is_file():
        pytest.skip("ultra-ext console script not installed next to this interpreter")
    return subprocess.run([str(ULTRA_EXT), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_models_lists_every_shipped_yaml(tmp_path):
    proc = _run("models", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("yolov12n.yaml", "yolov12n-turbo.yaml", "yolov12n-seg.yaml", "yolov12n-cls.yaml", "gyolo-seg-n.yaml"):
        assert f" {name} … " in proc.stdout, name  # first scale … last scale
    v12 = next(line for line in proc.stdout.splitlines() if " yolov12n.yaml … yolov12x.yaml " in line)
    assert v12.split()[:2] == ["YOLOv12", "detect"] and "n=2.60 / s=9.28" in v12
    generalist = next(line for line in proc.stdout.splitlines() if "gyolo-generalist-n.yaml" in line)
    assert "generalist" in generalist.split() and "l=26.47" in generalist
    assert "Gold-YOLO: Wang et al." in proc.stdout and "(WACV 2025" in proc.stdout


def test_cost_prints_both_conventions(tmp_path):
    proc = _run("cost", "yolov12n.yaml", "--imgsz", "640", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("yolov12n.yaml"))
    # params, fused params, conv GFLOPs unfused/fused, +attention unfused/fused (spec §9: 2,590,824 / 6.49 / 7.63)
    assert row.split()[1:] == ["640", "2,602,288", "2,590,824", "6.65", "6.49", "7.63", "7.47"]


def test_backends_reports_flash_state(tmp_path):
    proc = _run("backends", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "process default: sdpa" in proc.stdout and "flash:" in proc.stdout


def test_yolo_passthrough_runs_stock_cli_with_ultra_ext(tmp_path):
    """`ultra-ext yolo ...` works where the startup hook is off (e.g. editable installs)."""
    import os

    env = {**os.environ, "ULTRA_EXT_DISABLE": "1"}
    proc = subprocess.run(
        [str(ULTRA_EXT), "yolo", "export", "model=yolov12n.yaml", "format=torchscript", "imgsz=64"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(tmp_path.glob("**/*.torchscript")), proc.stdout


@pytest.mark.parametrize("tool", ["bench", "coco"])
def test_sub_tools_have_their_own_help(tmp_path, tool):
    proc = _run(tool, "-h", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"usage: ultra-ext {tool}" in proc.stdout


def test_each_subcommand_is_the_main_of_one_module(capsys):
    """Every command dispatches to ``<module>.main`` and that module's parser calls itself by the command's name."""
    import importlib

    from ultra_ext.cli import COMMANDS, main

    modules = [module for module, _ in COMMANDS.values()]
    assert len(set(modules)) == len(modules)  # one module per command, no module serving two
    for name, (module, _) in COMMANDS.items():
        assert callable(importlib.import_module(module).main), module
        if name == "yolo":  # the stock CLI's own help: `yolo help`
            continue
        with pytest.raises(SystemExit) as exit_info:
            main([name, "-h"])
        assert exit_info.value.code == 0
        assert f"usage: ultra-ext {name}" in capsys.readouterr().out, name


def test_unknown_subcommand_suggests_the_closest(capsys):
    from ultra_ext.cli import main

    assert main(["model"]) == 2
    assert "unknown command 'model' (did you mean 'models'?)" in capsys.readouterr().err
    assert main([]) == 2 and "commands:" in capsys.readouterr().out
