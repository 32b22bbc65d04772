"""What KV-cache quantization costs in memory and in the picture, on a built-in-world model.

The same long generation (prompt, actions, seed) runs with the unquantized cache and with each
quantized format; every decoded frame of a quantized run is compared with the same frame of the
unquantized run (PSNR over the whole video and per 10-second chunk), and bytes per latent frame
of the cache are compared with bf16's.

    .venv/bin/python benchmarks/kv_quant_quality.py --model out/world [--seconds 60] [--json]

Without --model it uses random weights of the built-in world's architecture (the bytes are the
same; the picture deviation of random weights says little).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from worldcast.cache.spec import KVCacheSpec
from worldcast.engine.engine import Engine
from worldcast.profiling.bench import psnr
from worldcast.world.report import long_frames
from worldcast.world.runtime import WorldModel, WorldSettings
from worldcast.world.sim import FPS, parse_actions
from worldcast.world.train import save_random_world


def run(world: WorldModel, quantization: str | None, prompt: str, actions: list[str], frames: int,
        seed: int) -> tuple[torch.Tensor, float, KVCacheSpec]:
    cache = dataclasses.replace(world.config.cache, quantization=quantization)
    config = dataclasses.replace(world.config, cache=cache)
    engine = Engine(config, world.dit, world.text_encoder, world.engine.decoder)
    start = time.perf_counter()
    video = torch.cat([b.frames for b in engine.stream(world.request(prompt, actions, frames, seed))])
    return video, time.perf_counter() - start, engine.spec


def measure(directory: Path, seconds: float, prompt: str, actions: str, seed: int, guidance: float | None = None,
            formats: tuple[str, ...] = ("int8", "fp8")) -> dict:
    world = WorldModel(directory, WorldSettings(guidance=guidance))
    frames = long_frames(world, seconds)
    moves = (parse_actions(actions) * frames)[:frames]
    reference, ref_seconds, ref_spec = run(world, None, prompt, moves, frames, seed)
    bf16 = dataclasses.replace(ref_spec, dtype=torch.bfloat16, quantization=None).bytes_per_page
    chunk = int(10 * FPS)
    rows = [{"format": "unquantized", "bytes_per_latent_frame": ref_spec.bytes_per_page,
             "ratio_to_bf16": ref_spec.bytes_per_page / bf16, "seconds": ref_seconds}]
    for fmt in formats:
        video, secs, spec = run(world, fmt, prompt, moves, frames, seed)
        rows.append({"format": fmt, "bytes_per_latent_frame": spec.bytes_per_page,
                     "ratio_to_bf16": spec.bytes_per_page / bf16, "seconds": secs,
                     "psnr_db": psnr(video, reference),
                     "psnr_db_per_10s": [psnr(video[i:i + chunk], reference[i:i + chunk])
                                         for i in range(0, frames, chunk)]})
    return {"model": str(directory), "frames": frames, "seconds_of_video": frames / FPS, "prompt": prompt,
            "actions": actions, "seed": seed, "window": world.config.cache.window_frames, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--prompt", default="a top-down view of a forest at day")
    p.add_argument("--actions", default="right*40,up*24,left*40,down*24,none*16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, default=None, help="default: the model's (runs before 2026-11-26: 1)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    directory = args.model or save_random_world(Path(tempfile.mkdtemp(prefix="worldcast-kvq-")))
    result = measure(directory, args.seconds, args.prompt, args.actions, args.seed, guidance=args.guidance)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['frames']} frames ({result['seconds_of_video']:.1f} s of video), window "
          f"{result['window']} latent frames, model {result['model']}")
    for row in result["rows"]:
        quality = f", PSNR vs unquantized {row['psnr_db']:.1f} dB" if "psnr_db" in row else ""
        print(f"  {row['format']:>11}: {row['bytes_per_latent_frame']:,} B per latent frame "
              f"({row['ratio_to_bf16']:.3f}x bf16), {row['seconds']:.1f} s{quality}")


if __name__ == "__main__":
    main()
