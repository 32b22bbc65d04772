"""Generation speed of the built-in world model vs. real time (16 fps playback).

Frames per second = pixel frames delivered (VAE decode included) per wall-clock second of
``Engine.stream``, each frame counted once, after one warm-up video; the median of ``--repeats``
runs is reported. Uses the shipped weights unless --model names another 'worldcast train'
directory; --random uses random weights of the same shapes (speed does not depend on weights).

    .venv/bin/python benchmarks/world_speed.py
    .venv/bin/python benchmarks/world_speed.py --frames 965 --guidance 3 --json docs/bench/world_speed.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from worldcast.profiling.peak import matmul_peak
from worldcast.world.runtime import WorldModel, WorldSettings
from worldcast.world.sim import FPS, random_actions
from worldcast.world.train import save_random_world


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a directory written by 'worldcast train' (default: shipped)")
    p.add_argument("--random", action="store_true", help="random weights of the same architecture")
    p.add_argument("--frames", type=int, default=83, help="pixel frames per video (whole blocks: 5 + 6k)")
    p.add_argument("--window", type=int, default=None, help="latent frames of context (default: trained context)")
    p.add_argument("--vae-dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: the model's)")
    p.add_argument("--compile", action="store_true", help="torch.compile the DiT blocks (compiled in the warm-up)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    import numpy as np

    settings = WorldSettings(vae_dtype=args.vae_dtype, guidance=args.guidance, compile=args.compile)
    if args.window is not None:
        settings = dataclasses.replace(settings, window=args.window or None)
    world = WorldModel(save_random_world(Path(tempfile.mkdtemp())) if args.random else args.model, settings)
    actions = random_actions(np.random.default_rng(0), args.frames)
    prompt = "a top-down view of a forest at day"

    def run() -> tuple[int, float, float]:
        frames, decode, start = 0, 0.0, time.perf_counter()
        for block in world.stream(prompt, actions, args.frames):
            frames += len(block.frames)
            decode += block.timings["decode"]
        return frames, time.perf_counter() - start, decode

    peak = matmul_peak() * 1e12  # TFLOP/s -> FLOP/s
    run()  # warm-up
    runs = [run() for _ in range(args.repeats)]
    frames = runs[0][0]
    seconds = statistics.median(r[1] for r in runs)
    decode = statistics.median(r[2] for r in runs)
    fps = frames / seconds
    result = {"weights": "random" if args.random else str(world.directory), "frames": frames,
              "size": world.spec.size, "window": settings.window, "vae_dtype": args.vae_dtype,
              "guidance_scale": world.config.schedule.guidance_scale, "compile": args.compile,
              "threads": torch.get_num_threads(), "seconds": seconds, "vae_decode_seconds": decode,
              "frames_per_second": fps, "real_time_factor": fps / FPS,
              "frames_per_second_without_decode": frames / (seconds - decode),
              "bf16_matmul_peak_tflops": peak / 1e12}
    print(f"world model ({result['weights']}), {world.spec.size}x{world.spec.size}, window {settings.window}, "
          f"guidance {result['guidance_scale']:g}, compile {args.compile}, VAE {args.vae_dtype}, "
          f"threads={result['threads']}, bf16 matmul peak now {peak / 1e12:.2f} TFLOP/s")
    print(f"{frames} frames in {seconds:.2f} s (median of {args.repeats}) = {fps:.1f} frames/s = "
          f"{fps / FPS:.2f}x real time at {FPS} fps (VAE decode {decode:.2f} s of it; "
          f"{result['frames_per_second_without_decode']:.1f} frames/s without it)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
