#!/bin/bash
# The recipe with the CLI, timed, fresh inductor cache. Camera at 4 px/frame, camera-following
# RoPE. Phase 0 (single frames: independent of the camera speed) is the fifth run's checkpoint
# (out/world7, 469 s), copied here; the other three stages run now.
cd /work/main
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_world8
rm -rf $TORCHINDUCTOR_CACHE_DIR
start=$(date +%s)
for stage in vae vae-long dit; do
  s=$(date +%s)
  .venv/bin/worldcast train $stage --out out/world8 --quiet || exit 1
  echo "STAGE $stage $(( $(date +%s) - s )) s"
done
echo "TOTAL $(( $(date +%s) - start )) s"
