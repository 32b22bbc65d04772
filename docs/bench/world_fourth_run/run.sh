#!/bin/bash
# The recipe end to end with the CLI, timed; a fresh inductor cache so compile time counts.
cd /work/main
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_world6
rm -rf $TORCHINDUCTOR_CACHE_DIR
start=$(date +%s)
for stage in vae-frames vae vae-long dit; do
  s=$(date +%s)
  .venv/bin/worldcast train $stage --out out/world6 || exit 1
  echo "STAGE $stage $(( $(date +%s) - s )) s" 
done
echo "TOTAL $(( $(date +%s) - start )) s"
