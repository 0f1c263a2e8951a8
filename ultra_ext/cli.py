"""``ultra-ext`` command line: helpers around the stock ``yolo`` command.

    ultra-ext yolo train model=yolov12n.yaml data=...   the stock CLI with ultra_ext imported first (use this
                                                        where the startup hook is not installed, e.g. editable
                                                        installs or ULTRA_EXT_DISABLE=1 environments)
    ultra-ext install-hook [--uninstall]                write the startup hook into this environment's site-packages
    ultra-ext cost yolov12n.yaml yolo12n.yaml [--imgsz 640]   parameters and GFLOPs, both conventions
    ultra-ext upgrade yolo12n.pt yolo12n-ultra.pt       swap stock YOLO12 attention for ours in a checkpoint
    ultra-ext convert-goldyolo Gold_n_dist.pt -o goldyolo-n-coco.pt [--scale n] [--dfl]
                                                        official Gold-YOLO checkpoint → Ultralytics checkpoint
    ultra-ext convert-pst yolo11n-pst.pt -o yolov12n-pst-coco.pt [--scale n] [--gate learned]
                                                        published PST checkpoint → Ultralytics checkpoint
                                                        (--gate learned reproduces the published k=8 numbers)
    ultra-ext bench yolo11n.yaml gyolo-n.yaml [--csv out.csv --plot-dir plots --train data.yaml]
                                                        params, GFLOPs, PyTorch/ORT latency, training-step
                                                        memory (and mAP) side by side; CSV and PNG plots
    ultra-ext coco convert data.yaml --split val -o val.json | coco eval val.json predictions.json
                                                        COCO JSON from a YOLO dataset; pycocotools mAP
    ultra-ext models                                    the model YAMLs ultra_ext ships: family, task, names
                                                        per scale, params per scale, the paper
    ultra-ext backends                                  which attention backends can run here
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
from pathlib import Path

_HOOK_FILES = ("ultra_ext_hook.pth", "ultra_ext_bootstrap.py")


def _yolo(argv: list[str]) -> int:
    import ultra_ext  # noqa: F401  (activates before the stock entrypoint parses anything)
    from ultralytics.cfg import entrypoint

    sys.argv[:] = ["yolo", *argv]  # in place: Ultralytics bound its ARGV to this very list at import
    entrypoint()
    return 0


def _install_hook(uninstall: bool) -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    src = Path(__file__).resolve().parents[1]  # the source tree of an editable install
    for name in _HOOK_FILES:
        target = site / name
        if uninstall:
            target.unlink(missing_ok=True)
            print(f"removed {target}")
        elif not target.exists():
            origin = src / name
            if not origin.exists():
                print(f"error: {origin} not found; reinstall ultra-ext from a wheel instead", file=sys.stderr)
                return 1
            target.write_text(origin.read_text())
            print(f"wrote {target}")
        else:
            print(f"exists {target}")
    return 0


def _cost(models: list[str], imgsz: int) -> int:
    import ultra_ext  # noqa: F401
    from ultralytics import YOLO

    from .utils.cost import format_costs, model_cost

    rows = [model_cost(YOLO(m).model, imgsz, name=Path(m).name) for m in models]
    print(format_costs(rows))
    print("conv: convolutions only (the papers' convention); +attn: including attention matmuls; fused: Conv+BN folded")
    return 0


def _upgrade(src: str, dst: str) -> int:
    import ultra_ext  # noqa: F401

    from .utils.convert import upgrade_yolo12_checkpoint

    print(f"upgraded {upgrade_yolo12_checkpoint(src, dst)} modules: {src} → {dst}")
    return 0


def _convert_goldyolo(src: str, dst: str, scale: str | None, prefer_dfl: bool) -> int:
    import ultra_ext  # noqa: F401

    from .utils.goldyolo_weights import load_official_checkpoint, official_to_ultra_ext, save_ultralytics_checkpoint

    try:
        model = official_to_ultra_ext(load_official_checkpoint(src), scale, prefer_dfl=prefer_dfl)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    save_ultralytics_checkpoint(model, dst, source=Path(src).name)
    cfg = model.yaml
    print(f"converted {src} → {dst} (Gold-YOLO-{cfg['scale'].upper()}, nc={cfg['nc']}, reg_max={cfg['reg_max']})")
    return 0


def _convert_pst(src: str, dst: str, scale: str | None, gate: str) -> int:
    import ultra_ext  # noqa: F401

    from .utils.goldyolo_weights import save_ultralytics_checkpoint
    from .utils.pst_weights import load_pst_checkpoint, pst_to_ultra_ext

    try:
        sd, info = load_pst_checkpoint(src)
        model = pst_to_ultra_ext(sd, scale, names=info.get("names"), gate=gate)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    save_ultralytics_checkpoint(model, dst, names=info.get("names"), source=Path(src).name)
    cfg = model.yaml
    print(f"converted {src} → {dst} (yolov12{cfg['scale']}-pst, nc={cfg['nc']}, gate={gate})")
    return 0


def _models() -> int:
    from .utils.catalog import catalog, format_catalog

    print(format_catalog(catalog()))
    return 0


def _backends() -> int:
    import torch

    from .nn import attention, get_attn_backend

    print(f"process default: {get_attn_backend()}  (ULTRA_EXT_ATTN=sdpa|math|flash)")
    print("sdpa : available (torch.nn.functional.scaled_dot_product_attention)")
    print("math : available (explicit softmax(q k^T) v; used for export)")
    if attention.flash_attn_func is None:
        print("flash: not installed (pip install 'ultra-ext[flash]' on a CUDA machine)")
    elif not torch.cuda.is_available():
        print("flash: installed, but no CUDA device")
    else:
        cap = torch.cuda.get_device_capability()
        print(f"flash: installed; GPU capability {cap[0]}.{cap[1]} ({'usable' if cap[0] >= 8 else 'needs >= 8.0'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["yolo"]:  # everything after `yolo` belongs to the stock CLI
        return _yolo(argv[1:])
    if argv[:1] == ["bench"]:  # sub-tools with their own argument parsers
        from .bench import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] == ["coco"]:
        from .utils.coco import main as coco_main

        return coco_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="ultra-ext", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("yolo", help="run the stock yolo CLI with ultra_ext active")
    sub.add_parser("bench", help="benchmark models side by side (ultra-ext bench -h)")
    sub.add_parser("coco", help="YOLO dataset → COCO JSON; pycocotools evaluation (ultra-ext coco -h)")
    hook = sub.add_parser("install-hook", help="install the startup hook into this environment")
    hook.add_argument("--uninstall", action="store_true")
    cost = sub.add_parser("cost", help="parameters and GFLOPs of model YAMLs or checkpoints")
    cost.add_argument("models", nargs="+")
    cost.add_argument("--imgsz", type=int, default=640)
    up = sub.add_parser("upgrade", help="upgrade a stock YOLO12 checkpoint to ultra_ext attention")
    up.add_argument("src")
    up.add_argument("dst")
    gold = sub.add_parser("convert-goldyolo", help="convert an official Gold-YOLO checkpoint to an Ultralytics one")
    gold.add_argument("checkpoint")
    gold.add_argument("-o", "--output", required=True, help="Ultralytics checkpoint to write (.pt)")
    gold.add_argument("--scale", choices=("n", "s", "m", "l"), help="default: read from the checkpoint")
    gold.add_argument("--dfl", action="store_true", help="distilled N/S: convert the auxiliary DFL box branch")
    pst = sub.add_parser(
        "convert-pst",
        help="convert a published PST checkpoint (Ultralytics 8.3.105 fork) to an Ultralytics one",
        description="Convert a published PST checkpoint to our yolov12-pst model, saved for YOLO(path). The published "
        "gate was never trained (coarse-only training), so the default gate policy 'auto' blends coarse and fine "
        "outputs 0.5 when the fine stage is on (topk 8 at inference); '--gate learned' uses the stored gate and "
        "reproduces the published k=8 numbers.",
    )
    pst.add_argument("checkpoint")
    pst.add_argument("-o", "--output", required=True, help="Ultralytics checkpoint to write (.pt)")
    pst.add_argument("--scale", choices=("n", "s", "m", "l", "x"), help="default: read from the checkpoint")
    pst.add_argument(
        "--gate",
        choices=("auto", "learned", "fixed"),
        default="auto",
        help="fine-stage gate policy saved with the model: auto (default; untrained gate → fixed 0.5 blend), "
        "learned (the stored, never-trained gate: reproduces the published k=8 numbers), fixed (always 0.5)",
    )
    sub.add_parser("models", help="shipped model YAMLs: family, task, scales, params, paper")
    sub.add_parser("backends", help="attention backends available here")
    args = parser.parse_args(argv)
    if args.command == "install-hook":
        return _install_hook(args.uninstall)
    if args.command == "cost":
        return _cost(args.models, args.imgsz)
    if args.command == "upgrade":
        return _upgrade(args.src, args.dst)
    if args.command == "convert-goldyolo":
        return _convert_goldyolo(args.checkpoint, args.output, args.scale, args.dfl)
    if args.command == "convert-pst":
        return _convert_pst(args.checkpoint, args.output, args.scale, args.gate)
    if args.command == "models":
        return _models()
    return _backends()


if __name__ == "__main__":
    sys.exit(main())
