"""Does a world remember a place it left? Go right, come back, compare the two views.

The camera of a built-in-world model goes right for ``--out-frames`` frames and then left as
far; every frame on the way back that shows a place seen on the way out (same camera position)
is compared with that earlier frame of the same video (PSNR). Only pairs further apart than the
window can see are counted: there, a plain sliding window has forgotten the place, and
block-sparse retrieval may bring it back. Settings: the window alone, the window plus retrieval
of k pages per layer, and the full cache (everything kept and attended).

    .venv/bin/python benchmarks/revisit.py --model out/world [--out-frames 48] [--k 3] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from worldcast.config import CacheConfig
from worldcast.engine.engine import Engine
from worldcast.profiling.bench import psnr
from worldcast.world.runtime import WorldModel, WorldSettings


def measure(directory: Path, out_frames: int, k: int, prompt: str, seeds: tuple[int, ...],
            guidance: float | None = None) -> dict:
    world = WorldModel(directory, WorldSettings(guidance=guidance))
    step = world.spec.temporal_stride * world.spec.frames_per_block
    first = step - world.spec.temporal_stride + 1  # pixel frames of the first block
    frames = first + step * -(-max(0, 2 * out_frames + 1 - first) // step)  # whole blocks covering out and back
    actions = ["right"] * out_frames + ["left"] * (frames - out_frames)
    window = world.config.cache.window_frames
    reach = world.spec.temporal_stride * (window + world.spec.frames_per_block)  # pixel frames a block can see back
    pairs = [(t, 2 * out_frames - t) for t in range(out_frames, min(frames, 2 * out_frames + 1))
             if t - (2 * out_frames - t) > reach]
    settings = {"window": CacheConfig(window_frames=window),
                f"window + retrieval of {k}": CacheConfig(window_frames=window, retrieval_pages=k),
                "full cache": CacheConfig()}
    rows = []
    for name, cache in settings.items():
        engine = Engine(dataclasses.replace(world.config, cache=cache), world.dit, world.text_encoder,
                        world.engine.decoder)
        scores = []
        for seed in seeds:
            video = engine.generate(world.request(prompt, actions, frames, seed)).frames
            scores += [psnr(video[t], video[t0]) for t, t0 in pairs]
        rows.append({"setting": name, "revisit_psnr_db": float(np.mean(scores)), "pairs": len(scores)})
    return {"model": str(directory), "frames": frames, "out_frames": out_frames, "window": window,
            "pairs_per_video": len(pairs), "seeds": list(seeds), "prompt": prompt, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--out-frames", type=int, default=48)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--prompt", default="a top-down view of a city at day")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--guidance", type=float, default=None, help="default: the model's (runs before 2026-11-26: 1)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = measure(args.model, args.out_frames, args.k, args.prompt, tuple(range(args.seeds)), args.guidance)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['frames']} frames, right {args.out_frames} then back; {result['pairs_per_video']} revisited "
          f"frames per video beyond the {result['window']}-frame window, {args.seeds} seeds")
    for row in result["rows"]:
        print(f"  {row['setting']:>24}: revisited view against the first view, "
              f"PSNR {row['revisit_psnr_db']:.2f} dB")


if __name__ == "__main__":
    main()
