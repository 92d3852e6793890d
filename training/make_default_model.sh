#!/usr/bin/env bash
# The recipe of the packaged default model, start to end, on 2 CPU cores:
#   0. cut the training faces with the serving path (BlazeFace + alignment) into the crop cache,
#   1. train the float ensemble for 14 epochs on UTKFace and AAF (configs/serving_crops.json; the
#      held-out photos are those of configs/splits/default.json, the packaged model's split),
#   2. train it 8 epochs more from a warm restart of the learning rate, with the gender loss
#      weighted twice (configs/default_finetune.json),
#   3. train it 8 epochs more from a second warm restart, the same config with another seed
#      (measured: AAF photos -0.14 years [-0.25, -0.04] on validation, paired with the run without),
#   4. polish it 6 epochs at a low learning rate with milder framing augmentation (zoom 0.9-1.2,
#      turns up to 6 degrees, shifts 4%; configs/default_polish.json), served from then on at the
#      centre of those zooms, 1.05 template sides (serving_zoom: validation, export, the card),
#   5. fine-tune that with quantisation-aware training (configs/default_qat.json); after the
#      polish and after QAT, re-estimate the batch-norm statistics on the training faces cut as
#      the runtime cuts them, without augmentation (training/serving_batch_norm.py),
#   6. export every TFLite variant with test-time flip built in, measure them on the test split,
#      publish the int8 QAT model into faceage_tf/assets/ (refused if it falls behind float
#      beyond the parity limits, read from a paired bootstrap on validation and test),
#   7. evaluate the float model and each network alone on the test split.
# The seeds are those of the run published as the packaged model (v7).
# Run it in the background; if it is interrupted, run it again: finished steps are skipped and an
# interrupted training step resumes from its last epoch.
#   nohup training/make_default_model.sh runs/default > runs/default.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/default}
START=$(date +%s)
source training/recipe_steps.sh

if [ ! -f "$OUT/float/final_weights.h5" ]; then  # crops are cached: a second run reuses them
  "$PY" -m faceage_tf.prepare --source utkface:../shared/data/utkface --source aaf:../shared/data/aaf \
    --out "$HOME/.cache/faceage_tf/crops"
fi
train "$OUT/float" --config configs/serving_crops.json --seed 10
train "$OUT/finetune" --config configs/default_finetune.json --seed 11 --init-from "$OUT/float"
train "$OUT/finetune2" --config configs/default_finetune.json --seed 14 --init-from "$OUT/finetune"
train "$OUT/polish" --config configs/default_polish.json --seed 15 --init-from "$OUT/finetune2"
serving_bn "$OUT/polish"
train "$OUT/qat" --config configs/default_qat.json --init-from "$OUT/polish"
serving_bn "$OUT/qat"
"$PY" export/export_tflite.py --run "$OUT/polish" --qat-run "$OUT/qat" --out "$OUT/export" --flip-tta \
  --card-extra configs/default_card.json --publish faceage_tf/assets/faceage.tflite
"$PY" training/evaluate.py --run "$OUT/polish" --members --tflite faceage_tf/assets/faceage.tflite --out "$OUT/eval"
echo "== recipe wall time: $(( ($(date +%s) - START) / 60 )) minutes"
