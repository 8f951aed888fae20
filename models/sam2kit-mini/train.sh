#!/usr/bin/env bash
# Rebuilds sam2kit-mini from scratch with `sam2kit train`: synthetic data (seed 1), then the phases
# below. CPU, 2 threads (OMP_WAIT_POLICY=PASSIVE keeps a second process on the machine from stalling
# torch's threads). Status and figures: README.md beside this file.
set -euo pipefail
WORK=${WORK:-/tmp/sam2kit-mini}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
if [ ! -d "$WORK/data/images" ]; then
python - <<PY
from sam2kit.synthetic import write_synthetic_dataset
write_synthetic_dataset("$WORK/data", num_images=3000, num_clips=400, frames=8, size=256, seed=1)
PY
fi
IMAGE_OPTS=(--data "$WORK/data" --data-format images --train all --batch-size 8 --lr 1e-3 --encoder-lr 1e-3
            --layer-decay 1.0 --weight-decay 0.05 --clip 1.0 --drop-path 0 --corrections 2 --seed 1
            --eval-every 100 --val-max 50 --save-every 50)
# phase 1: every weight from random, on still images (a click or a box, then 2 correction rounds)
[ -f "$WORK/phase1/model.pt" ] || [ -f "$WORK/phase2/model.pt" ] || sam2kit train --config sam2kit-mini --steps 700 "${IMAGE_OPTS[@]}" \
    --out "$WORK/phase1" $([ -f "$WORK/phase1/last.ckpt" ] && echo --resume)
# phase 2: the same, longer, from phase 1's weights (a new warm-up + cosine schedule)
[ -f "$WORK/phase2/model.pt" ] || sam2kit train --checkpoint "$WORK/phase1/model.pt" --config sam2kit-mini \
    --steps 4000 --warmup 50 "${IMAGE_OPTS[@]}" --out "$WORK/phase2" $([ -f "$WORK/phase2/last.ckpt" ] && echo --resume)
# phase 3 (video): the memory and the heads on 8-frame clips, encoder frozen (cached features)
[ -f "$WORK/phase3/model.pt" ] || sam2kit train --checkpoint "$WORK/phase2/model.pt" --config sam2kit-mini \
    --data "$WORK/data" --data-format video --train memory --num-frames 8 --steps 1500 --batch-size 2 \
    --lr 5e-4 --weight-decay 0.05 --clip 1.0 --corrections 2 --seed 1 --eval-every 250 --val-max 10 \
    --save-every 25 --out "$WORK/phase3" $([ -f "$WORK/phase3/last.ckpt" ] && echo --resume)
