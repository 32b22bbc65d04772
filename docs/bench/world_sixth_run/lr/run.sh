#!/bin/bash
# The DiT stage of the recipe at peak LR 1.2e-3 on the fifth run's VAE and encoded clips, timed
# with a fresh inductor cache (the encoding is reused: dit_data.pt from out/world7).
cd /work/main
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_world8lr
rm -rf $TORCHINDUCTOR_CACHE_DIR
s=$(date +%s)
.venv/bin/worldcast train dit --out out/world8lr --lr 1.2e-3 --quiet || exit 1
echo "STAGE dit $(( $(date +%s) - s )) s"
