"""Per-block latency of cached generation vs. the no-cache baseline that recomputes the past.

Both run the same model, schedule, seed and prompt embeddings through ``Engine.stream``; the
baseline (``EngineConfig.attention="recompute"``) re-runs every earlier frame under a
block-causal mask at each denoising step, which is what a causal video DiT without a KV cache
must do. Latency is wall-clock from the previous block's yield to this one's (denoising steps,
commit pass; no decoder).

    .venv/bin/python benchmarks/cache_vs_recompute.py                  # 1.3B shape, 128x224, 16 blocks
    .venv/bin/python benchmarks/cache_vs_recompute.py --layers 8 --blocks 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from worldcast import Engine, EngineConfig, GenerationRequest
from worldcast.models.registry import SCHEDULES, preset, random_model


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="wan2.1-t2v-1.3b")
    p.add_argument("--layers", type=int, default=None, help="override the layer count (fewer = faster run)")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=224)
    p.add_argument("--blocks", type=int, default=16)
    p.add_argument("--report", type=int, nargs="+", default=[1, 4, 8, 16], help="block numbers to report")
    p.add_argument("--json", help="also write the results here")
    return p.parse_args()


def block_latencies(config: EngineConfig, model, request: GenerationRequest) -> list[float]:
    engine = Engine(config, model)
    latencies, last = [], time.perf_counter()
    for _ in engine.stream(request):
        now = time.perf_counter()
        latencies.append(now - last)
        last = now
    return latencies


def main() -> None:
    args = parse_args()
    model_config = preset(args.model)
    if args.layers:
        model_config = dataclasses.replace(model_config, num_layers=args.layers)
    base = EngineConfig(model=model_config, schedule=SCHEDULES["self_forcing"], height=args.height,
                        width=args.width, dtype="bfloat16")
    model = random_model(model_config, dtype=torch.bfloat16)
    frames = args.blocks * base.frames_per_block
    embeds = torch.randn(32, model_config.text_dim, generator=torch.Generator().manual_seed(0))
    request = GenerationRequest(frames, prompt_embeds=embeds, seed=0, decode=False)
    print(f"{args.model} ({model_config.num_layers} layers) bf16, {args.width}x{args.height} px, "
          f"{base.tokens_per_frame} tokens/frame, {args.blocks} blocks of {base.frames_per_block} frames, "
          f"{len(base.schedule.denoising_steps)} steps, threads={torch.get_num_threads()}")
    results = {}
    for mode in ("cache", "recompute"):
        config = dataclasses.replace(base, attention=mode)
        block_latencies(config, model, dataclasses.replace(request, num_latent_frames=base.frames_per_block))
        results[mode] = block_latencies(config, model, request)  # after a 1-block warm-up
    print(f"{'block':>6} {'cached s':>9} {'recompute s':>12} {'speed-up':>9} {'cached total s':>15} "
          f"{'recompute total s':>18}")
    for n in (n for n in args.report if n <= args.blocks):
        c, r = results["cache"][n - 1], results["recompute"][n - 1]
        print(f"{n:>6} {c:>9.3f} {r:>12.3f} {r / c:>8.1f}x {sum(results['cache'][:n]):>15.2f} "
              f"{sum(results['recompute'][:n]):>18.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "latency_s": results}, fh, indent=2)


if __name__ == "__main__":
    main()
