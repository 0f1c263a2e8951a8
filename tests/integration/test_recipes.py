"""The papers' training recipes as named Ultralytics argument files (``cfg=yolov12-n-recipe.yaml``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ultralytics.cfg import DEFAULT_CFG_DICT, check_dict_alignment, get_cfg
from ultralytics.utils import YAML, checks

import ultra_ext  # noqa: F401  (installs the lookup)
from ultra_ext.integration import recipes
from ultra_ext.integration.yaml_lookup import find_model_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import YOLO_CLI, describe, make_tiny_dataset, run  # noqa: E402

RECIPES = recipes.recipe_names()

# Per-scale settings as the papers/READMEs state them (specs: yolov12.md §9, goldyolo.md §12, pst.md §6).
YOLOV12 = {
    "n": (0.5, 0.0, 0.1), "s": (0.9, 0.05, 0.15), "m": (0.9, 0.15, 0.4), "l": (0.9, 0.15, 0.5), "x": (0.9, 0.2, 0.6)
}  # fmt: skip
GOLDYOLO = {"n": (0.02, 0.5, 0.0), "s": (0.01, 0.5, 0.0), "m": (0.01, 0.9, 0.1), "l": (0.01, 0.9, 0.1)}


def _load(name: str) -> dict:
    return YAML.load(checks.check_yaml(name))


def test_every_family_has_its_recipes():
    expected = {f"yolov12-{s}-recipe.yaml" for s in "nsmlx"} | {f"goldyolo-{s}-recipe.yaml" for s in "nsml"}
    expected |= {f"pst-{s}-recipe.yaml" for s in "nsm"} | {"pst-cls-recipe.yaml", "gyolo-recipe.yaml"}
    assert set(RECIPES) == expected


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_resolves_by_name_from_anywhere_and_every_key_is_an_ultralytics_argument(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spelling in (name, name.removesuffix(".yaml")):
        assert Path(checks.check_yaml(spelling)) == recipes.RECIPE_DIR / name
    args = _load(name)
    check_dict_alignment(DEFAULT_CFG_DICT, args)  # raises SyntaxError naming any unknown key
    cfg = get_cfg(overrides=args)  # type and range checks of every value
    assert cfg.epochs == args["epochs"] and cfg.lr0 == args["lr0"]
    assert "batch" not in args and "device" not in args  # hardware choices stay the user's


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_cites_its_source_and_names_a_model_that_resolves(name):
    text = (recipes.RECIPE_DIR / name).read_text()
    assert any(src in text.splitlines()[0] for src in ("arXiv 2502.12524", "arXiv 2505.12772", "arXiv 2309.11331",
                                                       "WACV 2025")), text.splitlines()[0]
    use = next(line for line in text.splitlines() if "Use: yolo" in line)
    model = next(w.removeprefix("model=") for w in use.split() if w.startswith("model="))
    assert find_model_yaml(model) is not None, model


@pytest.mark.parametrize("scale", list(YOLOV12))
def test_yolov12_per_scale_settings(scale):
    args = _load(f"yolov12-{scale}-recipe.yaml")
    assert (args["scale"], args["mixup"], args["copy_paste"]) == YOLOV12[scale]
    assert (args["epochs"], args["optimizer"], args["lr0"], args["warmup_bias_lr"]) == (600, "SGD", 0.01, 0.0)
    if scale in "nsm":  # PST trains with the YOLOv12 recipe at its three scales
        pst = _load(f"pst-{scale}-recipe.yaml")
        assert (pst["scale"], pst["mixup"], pst["copy_paste"], pst["epochs"]) == (*YOLOV12[scale], 600)


@pytest.mark.parametrize("scale", list(GOLDYOLO))
def test_goldyolo_per_scale_settings(scale):
    args = _load(f"goldyolo-{scale}-recipe.yaml")
    assert (args["lr0"], args["scale"], args["mixup"]) == GOLDYOLO[scale]
    assert (args["epochs"], args["close_mosaic"], args["cos_lr"]) == (300, 15, True)


def test_generalist_recipe_is_hyp_scratch_cap():
    args = _load("gyolo-recipe.yaml")
    assert (args["optimizer"], args["lr0"], args["lrf"], args["weight_decay"], args["warmup_epochs"]) == (
        "AdamW", 0.004, 0.125, 0.005, 0.6)
    assert (args["epochs"], args["close_mosaic"], args["overlap_mask"]) == (60, 2, False)


def test_a_misspelt_recipe_names_the_nearest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(recipes.RecipeNotFoundError, match=r"yolov12-q-recipe\.yaml.*Nearest: yolov12-"):
        checks.check_yaml("yolov12-q-recipe.yaml")


def test_a_users_own_file_of_the_same_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "yolov12-n-recipe.yaml").write_text("epochs: 7\n")
    assert _load("yolov12-n-recipe.yaml") == {"epochs": 7}


def test_stock_cli_trains_with_a_recipe_and_command_line_arguments_win(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    proc = run(
        [str(YOLO_CLI), "train", "cfg=yolov12-n-recipe.yaml", "model=yolov12n.yaml", f"data={data}", "epochs=1",
         "imgsz=64", "batch=4", "workers=0", "device=cpu", "plots=False", f"project={tmp_path / 'runs'}", "name=r"],
        cwd=tmp_path, timeout=600,
    )
    assert proc.returncode == 0, describe(proc)
    used = YAML.load(tmp_path / "runs" / "r" / "args.yaml")
    assert (used["epochs"], used["imgsz"]) == (1, 64)  # the command line wins over the recipe
    assert (used["optimizer"], used["warmup_bias_lr"], used["copy_paste"], used["scale"]) == ("SGD", 0.0, 0.1, 0.5)
    assert used["model"] == "yolov12n.yaml"
