#!/usr/bin/env bash
# The papers' training recipes on the shipped mini-dataset, through the stock `yolo` CLI (docs/training.md):
#   1. masked-image pre-training of Gold-YOLO-N's backbone on the training images (labels unused);
#   2. fine-tuning from it with the Gold-YOLO-N recipe (`cfg=goldyolo-n-recipe.yaml`) and Gold-YOLO's own loss;
#   3. Gold-YOLO's step 2: self-distillation from step 2's model with channel-wise distillation (CWD).
#   bash examples/train_recipes.sh                     # 30 pre-training + 2 × 30 detector epochs at 320 px
#   EPOCHS=3 PRETRAIN_EPOCHS=2 bash examples/train_recipes.sh
set -euo pipefail
export YOLO_OFFLINE="${YOLO_OFFLINE:-1}" YOLO_AUTOINSTALL="${YOLO_AUTOINSTALL:-0}"  # no network, no run-time pip
PROJECT="${PROJECT:-runs/examples}"
EPOCHS="${EPOCHS:-30}" IMGSZ="${IMGSZ:-320}"
COMMON=(data=raccoon-mini.yaml "epochs=$EPOCHS" "imgsz=$IMGSZ" batch=8 workers=0 "project=$PROJECT" exist_ok=True)

ultra-ext pretrain model=goldyolo-n.yaml data=raccoon-mini.yaml "epochs=${PRETRAIN_EPOCHS:-30}" \
  "imgsz=${PRETRAIN_IMGSZ:-224}" batch=8 workers=0 "project=$PROJECT" name=pretrain exist_ok=True
yolo train cfg=goldyolo-n-recipe.yaml model=goldyolo-n.yaml "pretrained=$PROJECT/pretrain/weights/backbone.pt" \
  det_loss=goldyolo box=2.5 cls=1.0 dfl=0.5 "${COMMON[@]}" name=step1
yolo train cfg=goldyolo-n-recipe.yaml model=goldyolo-n.yaml "distill_model=$PROJECT/step1/weights/best.pt" \
  distill_loss=cwd det_loss=goldyolo box=2.5 cls=1.0 dfl=0.5 "${COMMON[@]}" name=step2
