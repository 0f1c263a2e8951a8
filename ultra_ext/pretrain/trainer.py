"""``ultra-ext pretrain``: SparK-style masked image modelling for the backbone of any model YAML.

    ultra-ext pretrain model=goldyolo-n.yaml data=<image folder | data YAML> epochs=100 imgsz=224
    yolo train model=goldyolo-n.yaml data=... pretrained=runs/pretrain/goldyolo-n/weights/backbone.pt

Per step: sample a patch mask (``mask_ratio`` of the ``patch``×``patch`` patches hidden, ``patch`` = the backbone's
deepest stride), zero the hidden patches, run the backbone rows as a sparse network (:mod:`.masking`), densify and
decode the multi-scale features (:mod:`.decoder`), and regress per-patch normalised pixels on the hidden patches.
Labels are never read: a folder of images is enough.

Outputs under ``<project>/<name>/``: ``weights/last.pt`` (every epoch; ``resume=`` continues from it),
``weights/backbone.pt`` (the result: backbone only, for ``pretrained=``) and ``results.csv`` (epoch, loss, lr, s).
"""

from __future__ import annotations

import csv
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from .backbone import BackboneError, PretrainedBackbone, build_backbone
from .decoder import LightDecoder, masked_patch_loss
from .masking import SparseMasking, mask_at, sample_patch_mask

__all__ = ["PretrainArgs", "PretrainError", "MaskedImagePretrainer", "list_images", "main"]


class PretrainError(ValueError):
    """Bad ``ultra-ext pretrain`` input: the message names the argument and what was wrong."""


@dataclass
class PretrainArgs:
    """Arguments of ``ultra-ext pretrain`` (``key=value`` on the command line)."""

    model: str = ""  # model YAML whose `backbone:` rows are pre-trained (ours, stock, or a user's file)
    data: str = ""  # a folder of images (searched recursively), or a data YAML (its train split; labels unused)
    epochs: int = 100
    imgsz: int = 224  # SparK's ImageNet size; a multiple of the backbone's deepest stride
    batch: int = 16
    mask_ratio: float = 0.6  # share of patches hidden (SparK, Gold-YOLO: 60 %)
    lr0: float = 0.001  # AdamW peak learning rate
    lrf: float = 0.01  # final learning rate = lr0 * lrf (cosine)
    weight_decay: float = 0.04
    warmup_epochs: float = 1.0
    workers: int = 2
    device: str = ""  # '' = cuda:0 if available, else cpu
    seed: int = 0
    project: str = "runs/pretrain"
    name: str = ""  # default: the model YAML's stem
    exist_ok: bool = False
    resume: str = ""  # path to a last.pt to continue, or True for the newest under project


def _parse_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_args(argv: list[str]) -> PretrainArgs:
    """``key=value`` pairs → :class:`PretrainArgs`, with a clear error for an unknown key or a bad value."""
    known = {f.name: f for f in fields(PretrainArgs)}
    values: dict = {}
    for item in argv:
        if "=" not in item:
            raise PretrainError(f"argument {item!r}: expected key=value (keys: {', '.join(known)})")
        key, text = item.split("=", 1)
        key = key.lstrip("-")
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PretrainError(f"unknown argument {key!r}{hint}; arguments: {', '.join(known)}")
        value = _parse_value(text)
        default = known[key].default
        if key == "resume":
            values[key] = "True" if value is True else ("" if value is False else str(text))
            continue
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise PretrainError(f"{key}={text!r}: expected True or False")
        elif isinstance(default, int):
            if not isinstance(value, int):
                raise PretrainError(f"{key}={text!r}: expected an integer")
        elif isinstance(default, float):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise PretrainError(f"{key}={text!r}: expected a number")
            value = float(value)
        else:
            value = str(text)
        values[key] = value
    return PretrainArgs(**values)


def check_args(args: PretrainArgs) -> None:
    if not args.resume:
        if not args.model:
            raise PretrainError(
                "model= is required: the model YAML whose backbone to pre-train, e.g. model=goldyolo-n.yaml"
            )
        if not args.data:
            raise PretrainError("data= is required: a folder of images or a data YAML (its train images are used)")
    for key in ("epochs", "imgsz", "batch"):
        if getattr(args, key) < 1:
            raise PretrainError(f"{key}={getattr(args, key)}: must be at least 1")
    if not 0.0 < args.mask_ratio < 1.0:
        raise PretrainError(f"mask_ratio={args.mask_ratio}: must be between 0 and 1 (SparK uses 0.6)")
    if args.lr0 <= 0 or not 0 < args.lrf <= 1:
        raise PretrainError(f"lr0={args.lr0}, lrf={args.lrf}: need lr0 > 0 and 0 < lrf <= 1")


def list_images(data: str) -> list[Path]:
    """Every image of ``data``: a folder (recursive), or the train split of a data YAML (shipped names included).

    Raises:
        PretrainError: nothing there, or no image in it.
    """
    from ultralytics.data.utils import IMG_FORMATS

    def images_in(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)

    path = Path(data)
    if path.is_dir():
        where, files = [path], images_in(path)
    elif str(data).endswith((".yaml", ".yml")) or not path.suffix:
        from ultralytics.data.utils import check_det_dataset

        from ..integration import register_loaded

        register_loaded()  # serve shipped dataset names (raccoon-mini.yaml) now that Ultralytics' data module is loaded
        try:
            info = check_det_dataset(str(data), autodownload=False)
        except Exception as e:
            raise PretrainError(f"data={data}: not a folder of images, and not a data YAML Ultralytics can read: {e}")
        train = info["train"] if isinstance(info["train"], list) else [info["train"]]
        where, files = [Path(t) for t in train], []
        for t in where:
            if t.is_dir():
                files += images_in(t)
            elif t.suffix == ".txt" and t.is_file():  # Ultralytics' list-of-images form
                files += [Path(line.strip()) for line in t.read_text().splitlines() if line.strip()]
    else:
        raise PretrainError(f"data={data}: no such folder, and not a data YAML")
    if not files:
        shown = ", ".join(str(w) for w in where)
        raise PretrainError(f"data={data}: no images ({', '.join(sorted(IMG_FORMATS))}) in {shown}")
    return files


class ImageFolderCrops(torch.utils.data.Dataset):
    """Images as (3, imgsz, imgsz) float in [0, 1] (Ultralytics' input range), each a random resized crop (area
    0.67-1, aspect 3/4-4/3, SparK's) flipped left-right half of the time."""

    def __init__(self, files: list[Path], imgsz: int):
        self.files, self.imgsz = files, imgsz

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        import cv2

        img = cv2.imread(str(self.files[i]))
        if img is None:
            raise PretrainError(f"cannot read image {self.files[i]}")
        h, w = img.shape[:2]
        for _ in range(10):
            area = h * w * random.uniform(0.67, 1.0)
            aspect = math.exp(random.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                x0, y0 = random.randint(0, w - cw), random.randint(0, h - ch)
                img = img[y0 : y0 + ch, x0 : x0 + cw]
                break
        img = cv2.resize(img, (self.imgsz, self.imgsz), interpolation=cv2.INTER_LINEAR)
        if random.random() < 0.5:
            img = img[:, ::-1]
        img = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))  # BGR→RGB, HWC→CHW
        return torch.from_numpy(img).float() / 255.0


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class MaskedImagePretrainer:
    """One pre-training run. ``MaskedImagePretrainer(args).train()`` returns the path of ``backbone.pt``."""

    def __init__(self, args: PretrainArgs, explicit: frozenset = frozenset()):
        """``explicit``: the argument names the user gave; on resume only ``epochs`` among them overrides the run's
        saved arguments (to extend it)."""
        check_args(args)
        self.start_epoch, self.history = 0, []
        resume_ckpt = None
        if args.resume:
            from ultralytics.nn.tasks import torch_safe_load  # integrity check; ULTRALYTICS_SAFE_LOAD honoured

            path = self._find_resume(args)
            resume_ckpt, _ = torch_safe_load(path)
            if "optimizer" not in resume_ckpt or "args" not in resume_ckpt:
                raise PretrainError(f"resume={path}: not a pre-training last.pt (a backbone.pt cannot be resumed)")
            saved = PretrainArgs(**resume_ckpt["args"])
            saved.epochs = args.epochs if "epochs" in explicit else saved.epochs
            saved.resume, args = str(path), saved
            self.start_epoch, self.history = resume_ckpt["epoch"] + 1, list(resume_ckpt["history"])
        self.args = args
        self.device = self._select_device(args.device)
        self.files = list_images(args.data)
        self.model, self.view = build_backbone(args.model, args.imgsz)
        self.decoder = LightDecoder(self.view.channels, self.view.strides)
        if resume_ckpt is not None:
            self.view.layers.load_state_dict(resume_ckpt["model"].model.state_dict())
            self.decoder.load_state_dict(resume_ckpt["decoder"])
        self.view.to(self.device).train()
        self.decoder.to(self.device).train()
        self.optimizer = self._build_optimizer()
        if resume_ckpt is not None:
            self.optimizer.load_state_dict(resume_ckpt["optimizer"])
        self.save_dir = Path(resume_ckpt["save_dir"]) if resume_ckpt is not None else self._save_dir()

    @staticmethod
    def _select_device(device: str) -> torch.device:
        if device in ("", None):
            return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
        device = str(device)
        return torch.device(f"cuda:{device}" if device.isdigit() else device)

    @staticmethod
    def _find_resume(args: PretrainArgs) -> Path:
        if args.resume == "True":
            found = sorted(Path(args.project).glob("*/weights/last.pt"), key=lambda p: p.stat().st_mtime)
            if not found:
                raise PretrainError(f"resume=True: no */weights/last.pt under {args.project}")
            return found[-1]
        path = Path(args.resume)
        if not path.is_file():
            raise PretrainError(f"resume={args.resume}: no such file (give the run's weights/last.pt)")
        return path

    def _save_dir(self) -> Path:
        from ultralytics.utils.files import increment_path

        name = self.args.name or Path(self.args.model).stem
        return increment_path(Path(self.args.project) / name, exist_ok=self.args.exist_ok)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for module in (self.view, self.decoder):
            for name, p in module.named_parameters():
                (no_decay if p.ndim <= 1 or "mask_tokens" in name else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.args.lr0, betas=(0.9, 0.95))

    def _lr_at(self, step: float, total: float, warmup: float) -> float:
        a = self.args
        if step < warmup:
            return a.lr0 * (step + 1) / warmup
        t = (step - warmup) / max(1.0, total - warmup)
        return a.lr0 * (a.lrf + (1 - a.lrf) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))

    def loss_on(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The reconstruction loss of one batch (B, 3, H, W) under a freshly sampled mask (needs an active
        :class:`SparseMasking` over ``self.view.layers``, see :meth:`train`)."""
        b, _, h, w = images.shape
        patch = self.view.patch
        mask = sample_patch_mask(b, (h // patch, w // patch), self.args.mask_ratio, generator, images.device)
        self._sparse.set_mask(mask)
        outputs = self.view(images * mask_at(mask, h, w).to(images.dtype))
        pred = self.decoder([outputs[i] for i in self.view.levels], mask)
        return masked_patch_loss(pred, images, mask, patch)

    def __enter__(self):
        self._sparse = SparseMasking(list(self.view.layers)).__enter__()
        return self

    def __exit__(self, *exc):
        self._sparse.__exit__(*exc)

    def train(self) -> Path:
        from ultralytics.utils import LOGGER, TQDM, colorstr

        a = self.args
        torch.manual_seed(a.seed + self.start_epoch)
        random.seed(a.seed + self.start_epoch)
        np.random.seed(a.seed + self.start_epoch)
        loader = torch.utils.data.DataLoader(
            ImageFolderCrops(self.files, a.imgsz), batch_size=min(a.batch, len(self.files)), shuffle=True,
            num_workers=a.workers, drop_last=len(self.files) >= a.batch, worker_init_fn=_seed_worker,
            generator=torch.Generator().manual_seed(a.seed + self.start_epoch),
        )
        mask_rng = torch.Generator().manual_seed(a.seed + 1 + self.start_epoch)
        weights = self.save_dir / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        n_back = len(self.view.layers.state_dict())
        LOGGER.info(
            f"{colorstr('pretrain:')} {a.model} backbone ({len(self.view.layers)} layers, {n_back} tensors), "
            f"SparK masked image modelling on {len(self.files)} images, {a.imgsz}px, {a.mask_ratio:.0%} of "
            f"{self.view.patch}×{self.view.patch} patches hidden, decoder levels at strides {self.view.strides}; "
            f"results to {self.save_dir}"
        )
        steps_per_epoch = len(loader)
        total, warmup = a.epochs * steps_per_epoch, max(1.0, a.warmup_epochs * steps_per_epoch)
        for epoch in range(self.start_epoch, a.epochs):
            t0, running, seen = time.time(), 0.0, 0
            self.view.train()
            self.decoder.train()
            bar = TQDM(loader, total=steps_per_epoch, desc=f"{epoch + 1}/{a.epochs}")
            with self:
                for i, images in enumerate(bar):
                    lr = self._lr_at(epoch * steps_per_epoch + i, total, warmup)
                    for g in self.optimizer.param_groups:
                        g["lr"] = lr
                    loss = self.loss_on(images.to(self.device, non_blocking=True), mask_rng)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"pre-training loss is {loss.item()} at epoch {epoch + 1}, step {i}")
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], 5.0)
                    self.optimizer.step()
                    running, seen = running + loss.item(), seen + 1
                    bar.set_description(f"{epoch + 1}/{a.epochs} loss {running / seen:.4f} lr {lr:.2e}")
            self.history.append({"epoch": epoch + 1, "loss": running / max(seen, 1), "lr": lr,
                                 "seconds": round(time.time() - t0, 2)})
            self._save(weights / "last.pt", epoch, full=True)
            self._write_csv()
        LOGGER.info(f"{colorstr('pretrain:')} final loss {self.history[-1]['loss']:.4f}")
        out = self._save(weights / "backbone.pt", a.epochs - 1, full=False)
        LOGGER.info(
            f"{colorstr('pretrain:')} backbone weights ({n_back} tensors) saved to {out}\n"
            f"Fine-tune with: yolo train model={a.model} data=<your data> pretrained={out}"
        )
        return out

    def record(self) -> dict:
        a = self.args
        return {
            "method": "SparK masked image modelling (ultra-ext pretrain)",
            "task": getattr(self.model, "task", "detect"),
            "model": a.model, "data": str(a.data), "images": len(self.files), "imgsz": a.imgsz, "epochs": a.epochs,
            "mask_ratio": a.mask_ratio, "patch": self.view.patch, "levels": list(self.view.levels),
            "final_loss": self.history[-1]["loss"] if self.history else None,
        }

    def _save(self, path: Path, epoch: int, full: bool) -> Path:
        from ultralytics import __version__

        self.view.eval()
        ckpt = {
            "model": PretrainedBackbone(self.view.layers, self.view.yaml, self.record(), stride=self.view.patch or 32),
            "date": datetime.now().isoformat(),
            "version": __version__,
            "epoch": epoch,
            "history": list(self.history),
        }
        if full:  # what resume needs; backbone.pt leaves it out
            ckpt.update(
                decoder=self.decoder.state_dict(),
                optimizer=self.optimizer.state_dict(),
                args=asdict(self.args),
                save_dir=str(self.save_dir),
            )
        torch.save(ckpt, path)
        self.view.train()
        return path

    def _write_csv(self) -> None:
        with open(self.save_dir / "results.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["epoch", "loss", "lr", "seconds"])
            writer.writeheader()
            writer.writerows(self.history)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        usage = "usage: ultra-ext pretrain model=<yaml> data=<image folder | data YAML> [key=value ...]"
        if not argv:
            print(f"{usage}\n(ultra-ext pretrain -h lists every argument)", file=sys.stderr)
            return 2
        print(f"{usage}\n\n{__doc__}\narguments (key=value, defaults shown):")
        for f in fields(PretrainArgs):
            print(f"  {f.name}={f.default!r}")
        raise SystemExit(0)  # as argparse's -h does in the other commands
    try:
        args = parse_args(argv)
        explicit = frozenset(a.split("=", 1)[0].lstrip("-") for a in argv)
        MaskedImagePretrainer(args, explicit).train()
    except (PretrainError, BackboneError) as e:
        print(f"ultra-ext pretrain: {e}", file=sys.stderr)
        return 2
    return 0

