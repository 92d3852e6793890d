#!/usr/bin/env bash
# The recipe of the packaged small model (faceage-small.tflite), on 2 CPU cores, after the
# default model's recipe (training/make_default_model.sh) has trained its warm restart:
#   1. the teacher: the default's polish step with AAF's faces weighted twice
#      (configs/ablations/default_polish_aaf_weight2.json at serving_zoom 1.05, 6 epochs), then
#      its serving batch-norm statistics. Against the default's 14-epoch float ensemble as the
#      teacher it gave the student +0.4 points of gender on validation (inside the noise) and
#      +1.0 on test (docs/experiments.md, "The small model: how it was chosen"),
#   2. train one attentional network of width 32 with its last stage capped at 4x
#      (configs/small.json: 40 epochs, AAF's faces weighted twice) on the default run's split,
#      distilled from that teacher (its probabilities and age distribution, with flip, as soft
#      targets beside the labels). Against 28 epochs unweighted it gave 0.24 years less age error
#      on AAF's validation faces, the rest unchanged (docs/experiments.md, "The small model: how
#      it was chosen"),
#   3. re-estimate its batch-norm statistics on the served crops, fine-tune it with
#      quantisation-aware training (configs/default_qat.json), and re-estimate them again: QAT
#      ends with statistics of the last augmented batches, which alone cost a small model up to
#      1.6 points of age group and 0.28 years (measured),
#   4. export it without built-in flip, measure it on the test split, and publish the int8 QAT
#      model into faceage_tf/assets/ (refused if it falls behind its float model beyond the
#      parity limits, read from a paired bootstrap on validation and test).
# About 75 minutes here. Resumable like the default recipe: run it again after an interruption.
#   nohup training/make_small_model.sh runs/small runs/default > runs/small.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/small}
DEFAULT=${2:-runs/default}
source training/recipe_steps.sh

train "$OUT/teacher" --config configs/ablations/default_polish_aaf_weight2.json --serving-zoom 1.05 \
  --init-from "$DEFAULT/finetune"
serving_bn "$OUT/teacher"
train "$OUT/float" --config configs/small.json --teacher "$OUT/teacher"
serving_bn "$OUT/float"
train "$OUT/qat" --config configs/default_qat.json --init-from "$OUT/float"
serving_bn "$OUT/qat"
"$PY" export/export_tflite.py --run "$OUT/float" --qat-run "$OUT/qat" --out "$OUT/export" --name faceage-small \
  --variants float32,int8-ptq,int8-qat --card-extra configs/small_card.json --publish faceage_tf/assets/faceage-small.tflite
