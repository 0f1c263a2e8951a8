"""Masked image pre-training (``ultra-ext pretrain``): sparsity through every backbone, the loss, the checkpoint the
stock trainer consumes, resume, and the errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import ultra_ext  # noqa: F401
from ultra_ext.pretrain import BackboneError, MaskedImagePretrainer, PretrainArgs, PretrainError, build_backbone
from ultra_ext.pretrain.decoder import masked_patch_loss
from ultra_ext.pretrain.masking import SparseMasking, mask_at, sample_patch_mask, sparse_batch_norm
from ultra_ext.pretrain.trainer import list_images, main, parse_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import YOLO_CLI, describe, make_tiny_dataset, run  # noqa: E402

FAMILIES = [
    "goldyolo-n.yaml", "yolov12n.yaml", "yolov12n-pst.yaml", "gyolo-n.yaml", "yolo11n.yaml", "yolov12n-cls.yaml"
]  # fmt: skip


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A YOLO data YAML of 8 + 4 generated 64-px images (labels are ignored by pre-training)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("pretrain_data"))


@pytest.mark.parametrize("yaml_name", FAMILIES)
def test_masked_positions_stay_empty_through_every_backbone_layer(yaml_name):
    _, view = build_backbone(yaml_name, 64)
    view.train()  # batch statistics: the visible-only BN path
    g = torch.Generator().manual_seed(1)
    mask = sample_patch_mask(4, (2, 2), 0.5, generator=g)
    image = torch.rand(4, 3, 64, 64, generator=g)
    with SparseMasking(list(view.layers)) as sparse:
        sparse.set_mask(mask)
        outputs = view(image * mask_at(mask, 64, 64))
    for i, out in enumerate(outputs):
        visible = mask_at(mask, *out.shape[-2:]).expand_as(out)
        assert out[~visible].abs().max() == 0, f"layer {i} wrote into masked positions"
        assert (out[visible] != 0).float().mean() > 0.3, f"layer {i} is empty at visible positions too"
    with torch.no_grad():  # hooks and BN patches are gone afterwards: the dense network again
        dense = view(image)
    assert all((d != 0).float().mean() > 0.3 for d in dense)
    assert not any("forward" in vars(m) for m in view.modules())


def test_sparse_batch_norm_normalises_with_visible_statistics_only():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(5).train()
    x = torch.randn(2, 5, 8, 8) * 3 + 1
    visible = mask_at(sample_patch_mask(2, (4, 4), 0.6), 8, 8)
    out = sparse_batch_norm(bn, x, visible)
    tokens = x.permute(0, 2, 3, 1)[visible[:, 0]]
    expected = (tokens - tokens.mean(0)) / (tokens.var(0, unbiased=False) + bn.eps).sqrt()
    torch.testing.assert_close(out.permute(0, 2, 3, 1)[visible[:, 0]], expected, atol=1e-5, rtol=1e-5)
    assert out.permute(0, 2, 3, 1)[~visible[:, 0]].abs().max() == 0
    torch.testing.assert_close(bn.running_mean, 0.1 * tokens.mean(0))  # momentum 0.1 from zero
    dense_mean = 0.1 * x.mean((0, 2, 3))
    assert not torch.allclose(bn.running_mean, dense_mean, atol=1e-3)  # masked zeros would have pulled it


def test_loss_is_computed_on_masked_patches_only():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64)
    mask = sample_patch_mask(2, (2, 2), 0.5)
    pred = torch.randn(2, 3, 64, 64)
    base = masked_patch_loss(pred, image, mask, 32)
    changed = pred.clone()
    changed[mask_at(mask, 64, 64).expand_as(pred)] += 5.0  # visible patches: not part of the loss
    assert masked_patch_loss(changed, image, mask, 32) == base
    changed[~mask_at(mask, 64, 64).expand_as(pred)] += 0.01  # masked patches: are
    assert masked_patch_loss(changed, image, mask, 32) != base


def smooth_images(n: int = 4, size: int = 64, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) sinusoidal gratings in [0, 1]: structure a decoder can reconstruct from the visible patches
    (per-patch normalised noise cannot fall below a loss of 1)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    freq = torch.rand(n, 3, 2, generator=g) * 6 + 1
    phase = torch.rand(n, 3, 1, 1, generator=g) * 6.28
    return 0.5 + 0.5 * torch.sin(6.28 * (freq[..., 0, None, None] * xx + freq[..., 1, None, None] * yy) + phase)


@pytest.mark.parametrize("yaml_name", ["goldyolo-n.yaml", "yolov12n.yaml"])
def test_loss_falls_over_a_few_steps_on_a_fixed_batch(yaml_name, images):
    torch.manual_seed(0)
    trainer = MaskedImagePretrainer(PretrainArgs(model=yaml_name, data=str(images), imgsz=64, lr0=0.003,
                                                 project=str(images.parent / "runs")))
    start = {k: v.clone() for k, v in trainer.view.state_dict().items()}
    batch = smooth_images()
    losses = []
    with trainer:
        for _ in range(40):
            loss = trainer.loss_on(batch, torch.Generator().manual_seed(5))  # the same mask every step
            trainer.optimizer.zero_grad()
            loss.backward()
            trainer.optimizer.step()
            losses.append(loss.item())
    assert losses[0] > 0.9 and losses[-1] < 0.8 * losses[0], losses
    moved = [k for k, v in trainer.view.state_dict().items() if k.endswith("weight") and not torch.equal(v, start[k])]
    assert any(k.startswith("layers.0.") for k in moved), moved[:5]  # the gradient reaches the stem


def test_backbone_checkpoint_transfers_exactly_the_backbone_tensors(images, tmp_path):
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    out = MaskedImagePretrainer(PretrainArgs(model="goldyolo-n.yaml", data=str(images), epochs=1, imgsz=64,
                                             batch=4, workers=0, project=str(tmp_path), name="pt")).train()
    weights, ckpt = load_checkpoint(out)
    backbone = weights.model.state_dict()
    assert len(backbone) == 340 and "optimizer" not in ckpt  # 10 backbone rows of Gold-YOLO-N
    assert weights.pretrain["final_loss"] > 0 and weights.pretrain["mask_ratio"] == 0.6

    torch.manual_seed(3)
    model = DetectionModel("goldyolo-n.yaml", nc=1, verbose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.load(weights)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    transferred = {f"model.{k}" for k in backbone}  # the saved rows are named 0.…, 1.…; in the model model.0.…
    assert transferred <= set(after) and changed <= transferred  # nothing outside the backbone moved
    for k, v in backbone.items():
        assert torch.equal(after[f"model.{k}"], v), k
    n_backbone_layers = len(model.yaml["backbone"])
    assert all(int(k.split(".")[1]) < n_backbone_layers for k in transferred)


def test_resume_continues_the_run(images, tmp_path):
    args = dict(model="yolov12n.yaml", data=str(images), imgsz=64, batch=4, workers=0, project=str(tmp_path), name="r")
    MaskedImagePretrainer(PretrainArgs(epochs=1, **args)).train()
    last = tmp_path / "r" / "weights" / "last.pt"
    first = torch.load(last, weights_only=False)
    assert first["epoch"] == 0 and len(first["history"]) == 1
    assert main([f"resume={last}", "epochs=2"]) == 0  # epochs given again: the run is extended to 2
    second = torch.load(last, weights_only=False)
    assert second["epoch"] == 1 and [h["epoch"] for h in second["history"]] == [1, 2]
    assert not (tmp_path / "r2").exists()  # the same run folder
    w1, w2 = first["model"].model.state_dict(), second["model"].model.state_dict()
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)


def test_a_backbone_that_cannot_be_masked_names_the_layer(tmp_path):
    yaml = tmp_path / "pooled-n.yaml"
    yaml.write_text(
        "nc: 1\nscales:\n  n: [1.0, 1.0, 64]\nbackbone:\n"
        "  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, Conv, [32, 3, 2]]\n  - [-1, 1, nn.AdaptiveAvgPool2d, [1]]\n"
        "head:\n  - [-1, 1, Classify, [1]]\n"
    )
    message = r"backbone layer 2 \(.*AdaptiveAvgPool2d\) maps a 128×128 image to 1×1 and a 256×256 image to 1×1"
    with pytest.raises(BackboneError, match=message):
        build_backbone(str(yaml), 64)


def test_bad_inputs_get_clear_errors(tmp_path, images):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PretrainError, match=r"data=.*empty: no images \(.*jpg.*\) in"):
        list_images(str(tmp_path / "empty"))
    with pytest.raises(BackboneError, match=r"imgsz=100: .*multiple of 32.*e.g. imgsz=96"):
        build_backbone("goldyolo-n.yaml", 100)
    with pytest.raises(PretrainError, match=r"unknown argument 'mask_ration' \(did you mean 'mask_ratio'\?\)"):
        parse_args(["mask_ration=0.5"])
    with pytest.raises(PretrainError, match=r"mask_ratio=1.5: must be between 0 and 1"):
        MaskedImagePretrainer(PretrainArgs(model="goldyolo-n.yaml", data=str(images), mask_ratio=1.5))
    assert main(["model=goldyolo-n.yaml", f"data={tmp_path / 'empty'}"]) == 2


def test_backbone_file_is_not_a_detector(images, tmp_path):
    from ultralytics import YOLO

    out = MaskedImagePretrainer(PretrainArgs(model="yolov12n.yaml", data=str(images), epochs=1, imgsz=64, batch=4,
                                             workers=0, project=str(tmp_path), name="p")).train()
    with pytest.raises(TypeError, match="pre-trained backbone weights only.*pretrained="):
        YOLO(out).predict(torch.zeros(1, 3, 64, 64))


def test_cli_pretrain_then_stock_train_reports_the_transfer(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    cli = Path(sys.executable).parent / "ultra-ext"
    proc = run([str(cli), "pretrain", "model=yolov12n.yaml", f"data={data.parent / 'images' / 'train'}", "epochs=1",
                "imgsz=64", "batch=4", "workers=0", f"project={tmp_path / 'pt'}", "name=v12"], cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    backbone = tmp_path / "pt" / "v12" / "weights" / "backbone.pt"
    assert "backbone weights (342 tensors)" in proc.stdout + proc.stderr
    proc = run([str(YOLO_CLI), "train", "model=yolov12n.yaml", f"pretrained={backbone}", f"data={data}", "epochs=1",
                "imgsz=64", "batch=4", "workers=0", "plots=False", f"project={tmp_path / 'ft'}", "name=a"],
               cwd=tmp_path, env={"ULTRALYTICS_SAFE_LOAD": "1"}, timeout=600)
    assert proc.returncode == 0, describe(proc)
    assert "Transferred 342/" in proc.stdout + proc.stderr, describe(proc)
