#!/bin/bash
# The recipe with the CLI, timed end to end with a fresh inductor cache: the frame-wise VAE with
# time packing, then the DiT. bf16 matmul peak read before and after (the machine's load).
cd /work/main
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_world9
rm -rf $TORCHINDUCTOR_CACHE_DIR
peak() { .venv/bin/python -c "from worldcast.profiling.peak import matmul_peak; print('PEAK', round(matmul_peak(), 2), 'TFLOP/s')"; }
peak
start=$(date +%s)
for stage in vae dit; do
  s=$(date +%s)
  .venv/bin/worldcast train $stage --out out/world9 --quiet || exit 1
  echo "STAGE $stage $(( $(date +%s) - s )) s"
done
echo "TOTAL $(( $(date +%s) - start )) s"
peak
