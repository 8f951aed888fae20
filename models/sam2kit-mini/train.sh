#!/usr/bin/env bash
# Rebuilds sam2kit-mini from scratch with `sam2kit train`: synthetic data (seed 1), then the phases
# below (what ran, in order; README.md beside this file has the figures). CPU, 2 threads
# (OMP_WAIT_POLICY=PASSIVE keeps a second process on the machine from stalling torch's threads).
# Interrupted phases are reproduced with --stop-after at the step where they were stopped.
set -euo pipefail
WORK=${WORK:-/tmp/sam2kit-mini}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# synthetic DIR IMAGES CLIPS FRAMES SEED: writes the 256-px scenes into $WORK/DIR unless they are there
synthetic() {
    [ -e "$WORK/$1/images" ] || [ -e "$WORK/$1/JPEGImages" ] || python - "$WORK/$1" "$2" "$3" "$4" "$5" <<'PY'
import sys
from sam2kit.synthetic import write_synthetic_dataset
out, images, clips, frames, seed = sys.argv[1], *map(int, sys.argv[2:])
write_synthetic_dataset(out, num_images=images, num_clips=clips, frames=frames, size=256, seed=seed)
PY
}
synthetic data 3000 400 8 1
resume() { [ -f "$1/last.ckpt" ] && echo --resume || true; }
# The weights of a stopped run: its last.ckpt's model, in the official layout.
weights_of() { python -c "import torch,sys; s=torch.load(sys.argv[1],weights_only=True); torch.save({'model': s['model']}, sys.argv[2])" "$1/last.ckpt" "$2"; }
IMAGE_OPTS=(--data "$WORK/data" --data-format images --train all --batch-size 8 --lr 1e-3 --encoder-lr 1e-3
            --layer-decay 1.0 --weight-decay 0.05 --clip 1.0 --drop-path 0 --corrections 2
            --eval-every 250 --val-max 50 --save-every 50)
# phase 1: every weight from random, on still images (a click or a box, then 2 correction rounds)
[ -f "$WORK/phase1/model.pt" ] || [ -f "$WORK/phase2/model.pt" ] || sam2kit train --config sam2kit-mini --steps 700 \
    "${IMAGE_OPTS[@]}" --seed 1 --eval-every 100 --out "$WORK/phase1" $(resume "$WORK/phase1")
# phase 2: the same, longer, from phase 1's weights (a new warm-up + cosine schedule)
[ -f "$WORK/phase2/model.pt" ] || sam2kit train --checkpoint "$WORK/phase1/model.pt" --config sam2kit-mini \
    --steps 4000 --warmup 50 "${IMAGE_OPTS[@]}" --seed 1 --eval-every 100 --out "$WORK/phase2" $(resume "$WORK/phase2")
# phase 3 (video; ran with the preset's memory-attention dropout then at 0.1): the memory and the
# heads on 8-frame clips, encoder frozen (cached features); stopped at step 584
[ -f "$WORK/phase3.pt" ] || { sam2kit train --checkpoint "$WORK/phase2/model.pt" --config sam2kit-mini \
    --data "$WORK/data" --data-format video --train memory --num-frames 8 --steps 1500 --batch-size 2 \
    --lr 5e-4 --weight-decay 0.05 --clip 1.0 --corrections 2 --seed 1 --eval-every 250 --val-max 10 \
    --save-every 25 --stop-after 584 --out "$WORK/phase3" $(resume "$WORK/phase3") && weights_of "$WORK/phase3" "$WORK/phase3.pt"; }
# phase 2b: more still-image training from phase 2 (an 8,000-step schedule, stopped at step 787) ...
[ -f "$WORK/phase2b.pt" ] || { sam2kit train --checkpoint "$WORK/phase2/model.pt" --config sam2kit-mini \
    --steps 8000 --warmup 50 "${IMAGE_OPTS[@]}" --seed 2 --stop-after 787 --out "$WORK/phase2b" $(resume "$WORK/phase2b") \
    && weights_of "$WORK/phase2b" "$WORK/phase2b.pt"; }
# ... 2c: then a short schedule that anneals it (1,500 steps, no warm-up)
[ -f "$WORK/phase2c/model.pt" ] || sam2kit train --checkpoint "$WORK/phase2b.pt" --config sam2kit-mini \
    --steps 1500 --warmup 0 "${IMAGE_OPTS[@]}" --seed 3 --out "$WORK/phase2c" $(resume "$WORK/phase2c")
# phase 4: still-image weights of 2c with phase 3's memory modules, then images and clips mixed
[ -f "$WORK/phase4_start.pt" ] || python - "$WORK" <<'PY'
import sys, torch
from sam2kit.train.parts import MEMORY_PREFIXES
work = sys.argv[1]
image = torch.load(f"{work}/phase2c/model.pt", weights_only=True)["model"]
memory = torch.load(f"{work}/phase3.pt", weights_only=True)["model"]
# no_mem_embed / no_mem_pos_enc also serve still images: they stay with the image weights
take = lambda k: k.startswith(MEMORY_PREFIXES) and not k.startswith(("no_mem_embed", "no_mem_pos_enc"))
torch.save({"model": {k: memory[k] if take(k) else v for k, v in image.items()}}, f"{work}/phase4_start.pt")
PY
[ -f "$WORK/phase4/model.pt" ] || sam2kit train --checkpoint "$WORK/phase4_start.pt" --config sam2kit-mini \
    --data "$WORK/data" --data-format video --image-data "$WORK/data" --image-share 0.5 --image-batch-size 8 \
    --train memory --num-frames 8 --batch-size 2 --lr 3e-4 --weight-decay 0.05 --clip 1.0 --corrections 2 \
    --seed 4 --steps 2000 --warmup 50 --eval-every 250 --val-max 10 --save-every 25 --out "$WORK/phase4" $(resume "$WORK/phase4")
# phases 5 and 6: everything (image encoder included) on longer clips, with still images mixed in
# (half of the steps); the options they share:
LONG_CLIP_OPTS=(--data-format video --image-data "$WORK/data" --image-share 0.5 --image-batch-size 8 --train all
                --batch-size 2 --layer-decay 1.0 --drop-path 0 --weight-decay 0.05 --clip 1.0 --corrections 2)
# phase 5: 16-frame clips (300 clips, seed 3), from phase 4's weights (the model shipped before it)
synthetic data16 0 300 16 3
[ -f "$WORK/phase5/model.pt" ] || sam2kit train --checkpoint "$WORK/phase4/model.pt" --config sam2kit-mini \
    --data "$WORK/data16" "${LONG_CLIP_OPTS[@]}" --num-frames 16 --lr 2e-4 --encoder-lr 2e-4 --seed 5 --steps 1000 \
    --warmup 30 --eval-every 250 --val-max 10 --save-every 25 --out "$WORK/phase5" $(resume "$WORK/phase5")
# phase 6: 24-frame clips (300 clips, seed 4), a short annealing schedule from phase 5
synthetic data24 0 300 24 4
[ -f "$WORK/phase6/model.pt" ] || sam2kit train --checkpoint "$WORK/phase5/model.pt" --config sam2kit-mini \
    --data "$WORK/data24" "${LONG_CLIP_OPTS[@]}" --num-frames 24 --lr 1e-4 --encoder-lr 1e-4 --seed 6 --steps 280 \
    --warmup 10 --eval-every 280 --val-max 5 --save-every 20 --out "$WORK/phase6" $(resume "$WORK/phase6")
# phases 7, 9, 10, 11, 14, 16: 24-frame clips, with the first prompt on frame 0 alone (--init-frames 1), a
# click or box more often than the true mask (--point-prob 0.7) and the object-score loss weighed 3
# (objects that leave or hide were followed onto other shapes); two processes of one thread each
# (gloo), 1.3x the samples/s of one two-thread process on this CPU, the same weights as one process
# with the doubled batch.
# two_procs OUT PORT OPTION...: `sam2kit train OPTION... --out $WORK/OUT` in two processes of one
# thread each (torchrun's rendezvous on PORT), unless OUT/model.pt is there
two_procs() {
    local out=$1 port=$2
    shift 2
    [ -f "$WORK/$out/model.pt" ] || OMP_NUM_THREADS=1 python -m torch.distributed.run --nproc_per_node 2 \
        --master_addr 127.0.0.1 --master_port "$port" -m sam2kit train "$@" --out "$WORK/$out" $(resume "$WORK/$out")
}
# clip_phase OUT FROM DATA PORT OPTION...: trains $WORK/OUT from $WORK/FROM/model.pt on $WORK/DATA
clip_phase() {
    local out=$1 from=$2 data=$3 port=$4
    shift 4
    two_procs "$out" "$port" --checkpoint "$WORK/$from/model.pt" --config sam2kit-mini --data "$WORK/$data" \
        "${LONG_CLIP_OPTS[@]}" --batch-size 1 --image-batch-size 4 --num-frames 24 --point-prob 0.7 --init-frames 1 \
        --correct-frames 2 --loss-weights 20,1,1,3 --warmup 20 --val-max 5 --save-every 25 "$@"
}
# phase 7: on phase 6's clips, from its weights
clip_phase phase7 phase6 data24 29655 --lr 2e-4 --encoder-lr 2e-4 --seed 7 --steps 1100 --eval-every 275
# phase 9: on 600 new clips (seed 6), from phase 7's weights: phase 7 had gone 8 times over its 300
# clips and scored higher on them than on unseen clips
synthetic data24b 0 600 24 6
clip_phase phase9 phase7 data24b 29657 --lr 2e-4 --encoder-lr 2e-4 --seed 9 --steps 1400 --eval-every 700
# phase 10: on another 600 new clips (seed 7), from phase 9's weights, half the rate, 700 steps
synthetic data24c 0 600 24 7
clip_phase phase10 phase9 data24c 29658 --lr 1e-4 --encoder-lr 1e-4 --seed 10 --steps 700 --eval-every 700
# phase 11: from phase 10's weights on 1,200 new clips (seed 8); half of the first clicks land on
# the object's most interior pixel, where people click (--center-click-prob 0.5)
synthetic data24d 0 1200 24 8
clip_phase phase11 phase10 data24d 29659 --center-click-prob 0.5 --lr 1.5e-4 --encoder-lr 1.5e-4 --seed 11 \
    --steps 1400 --eval-every 700
# decoder_phase OUT FROM PORT SEED: the prompt encoder and mask decoder alone (cached image features)
# from $WORK/FROM/model.pt on the still images, three first clicks in four on the object's most
# interior pixel, so that the IoU head learns which of a click's three candidates is meant there
# (two processes of 4 images each, 400 steps)
decoder_phase() {
    two_procs "$1" "$3" --checkpoint "$WORK/$2/model.pt" --config sam2kit-mini --data "$WORK/data" \
        --data-format images --train decoder --batch-size 4 --steps 400 --lr 5e-5 --warmup 10 --weight-decay 0.05 \
        --clip 1.0 --corrections 2 --center-click-prob 0.75 --box-prob 0.3 --seed "$4" --eval-every 400 \
        --val-max 20 --save-every 50
}
# phase 12: a decoder phase from phase 11's weights
decoder_phase phase12 phase11 29660 12
# phase 14: phase 11's options from phase 12's weights on 1,000 new clips (seed 10), 1,000 steps
synthetic data24f 0 1000 24 10
clip_phase phase14 phase12 data24f 29671 --center-click-prob 0.5 --lr 1.5e-4 --encoder-lr 1.5e-4 --seed 14 \
    --steps 1000 --eval-every 1000
# phase 15: a decoder phase from phase 14's weights
decoder_phase phase15 phase14 29672 15
# phase 16: the same from phase 15's weights on 800 new clips (seed 11), 650 steps
synthetic data24g 0 800 24 11
clip_phase phase16 phase15 data24g 29673 --center-click-prob 0.5 --lr 1.5e-4 --encoder-lr 1.5e-4 --seed 16 \
    --steps 650 --eval-every 650
# phase 17: a decoder phase from phase 16's weights
decoder_phase phase17 phase16 29674 17
# phase 18: the same from phase 17's weights on 600 new clips (seed 14), 650 steps
synthetic data24j 0 600 24 14
clip_phase phase18 phase17 data24j 29681 --center-click-prob 0.5 --lr 1.5e-4 --encoder-lr 1.5e-4 --seed 18 \
    --steps 650 --eval-every 650
# phase 19: a decoder phase from phase 18's weights
decoder_phase phase19 phase18 29682 19
# the shipped weights: phase 19's model.pt (src/sam2kit/weights/sam2kit_mini.pt)
