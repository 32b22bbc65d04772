"""DiT forward throughput as a fraction of this machine's bf16 matmul peak (measured in this run).

One forward = one denoising step of one block: ``--block-frames`` latent frames attending to
``--context-frames`` cached frames plus themselves, through the engine's paged KV cache.

    .venv/bin/python benchmarks/dit_throughput.py                    # Wan2.1-1.3B shape, 240x416
    .venv/bin/python benchmarks/dit_throughput.py --context-frames 3 6 9 --no-compile
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from worldcast.cache import KVCacheSpec, PagedKVStorage
from worldcast.cache.view import PagedKV
from worldcast.config import EngineConfig
from worldcast.models.registry import preset, random_model
from worldcast.profiling.flops import dit_forward_flops
from worldcast.profiling.peak import matmul_peak


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="wan2.1-t2v-1.3b")
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=416)
    p.add_argument("--block-frames", type=int, default=3)
    p.add_argument("--context-frames", type=int, nargs="+", default=[3, 6, 9])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--json", help="also write the results here")
    return p.parse_args()


def time_forward(model, storage, text, x, context: int, repeats: int) -> list[float]:
    f = x.shape[2]
    kv = PagedKV(storage, list(range(context)), list(range(context, context + f)))
    timesteps = torch.full((1, f), 500.0)
    times = []
    with torch.inference_mode():
        model(x, timesteps, text, kv, frame_offset=context)  # warm-up (and compile)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x, timesteps, text, kv, frame_offset=context)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    config = EngineConfig(model=preset(args.model), height=args.height, width=args.width)
    model = random_model(config.model, dtype=torch.bfloat16)
    if args.compile:
        model.compile_blocks()
    spec = KVCacheSpec.from_engine_config(config)
    storage = PagedKVStorage(spec, max(args.context_frames) + args.block_frames, "cpu")
    for keys, values in zip(storage.keys, storage.values):
        keys.normal_()
        values.normal_()
    text = model.encode_text(torch.randn(1, 64, config.model.text_dim))
    x = torch.randn(1, config.model.in_dim, args.block_frames, config.latent_height, config.latent_width,
                    dtype=torch.bfloat16)
    S = config.tokens_per_frame
    print(f"model {args.model} bf16, {args.width}x{args.height} px -> {S} tokens/frame, "
          f"block {args.block_frames} frames, compile={args.compile}, threads={torch.get_num_threads()}")
    peak_before = matmul_peak()
    rows = []
    for context in args.context_frames:
        times = time_forward(model, storage, text, x, context, args.repeats)
        flops = dit_forward_flops(config.model, args.block_frames * S, (context + args.block_frames) * S)
        rows.append({"context_frames": context, "gflop": flops.total / 1e9,
                     "attention_share": (flops.self_attention + flops.cross_attention) / flops.total,
                     "median_s": statistics.median(times), "times_s": times})
    peak = max(peak_before, matmul_peak())
    print(f"bf16 matmul peak (best of large GEMMs, before and after): {peak:.2f} TFLOP/s")
    print(f"{'context':>8} {'GFLOP':>8} {'attn %':>7} {'median s':>9} {'TFLOP/s':>8} {'% peak':>7}")
    for row in rows:
        row["tflops"] = row["gflop"] / 1e3 / row["median_s"]
        row["fraction_of_peak"] = row["tflops"] / peak
        print(f"{row['context_frames']:>8} {row['gflop']:>8.0f} {100 * row['attention_share']:>6.1f}% "
              f"{row['median_s']:>9.3f} {row['tflops']:>8.2f} {100 * row['fraction_of_peak']:>6.1f}%")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "peak_tflops": peak, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
