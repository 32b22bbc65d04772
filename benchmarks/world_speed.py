"""Generation speed of the built-in world model's architecture vs. real time (16 fps playback).

Frames per second = pixel frames delivered (VAE decode included) per wall-clock second of
``Engine.stream``, each frame counted once, after one warm-up video. Uses a trained world-model
directory when given (--model DIR), else random weights of the same shapes (speed does not
depend on the weights).

    .venv/bin/python benchmarks/world_speed.py
    .venv/bin/python benchmarks/world_speed.py --model out/world --frames 161 --window 12
"""

from __future__ import annotations

import argparse
import time

import torch

from worldcast import CacheConfig, Engine, EngineConfig, GenerationRequest
from worldcast.models.registry import random_model
from worldcast.models.wan.vae import VAEFrameDecoder, WanVAE
from worldcast.world.model import WorldModelSpec, load_world_model
from worldcast.world.sim import ACTIONS, FPS
from worldcast.world.train import world_vae_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a directory written by 'worldcast train'")
    p.add_argument("--frames", type=int, default=81, help="pixel frames per video (1 + 4k)")
    p.add_argument("--window", type=int, default=None, help="sliding-window cache, latent frames")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = p.parse_args()
    spec = WorldModelSpec()
    dtype = getattr(torch, args.dtype)
    if args.model:
        dit, vae = load_world_model(args.model, dtype)
    else:
        dit, vae = random_model(spec.dit, dtype=dtype), WanVAE(world_vae_config(spec)).eval()
    config = EngineConfig(model=dit.config, schedule=spec.schedule, height=spec.size, width=spec.size,
                          vae_stride=(spec.temporal_stride, spec.spatial_stride, spec.spatial_stride),
                          frames_per_block=spec.frames_per_block, dtype=args.dtype,
                          cache=CacheConfig(window_frames=args.window))
    engine = Engine(config, dit, decoder=VAEFrameDecoder(vae))
    latent_frames = 1 + (args.frames - 1) // spec.temporal_stride
    embeds = torch.randn(12, spec.dit.text_dim)
    actions = [i // 16 % len(ACTIONS) for i in range(args.frames)]

    def run() -> tuple[int, float, list[float]]:
        request = GenerationRequest(latent_frames, prompt_embeds=embeds, seed=0, actions=actions)
        frames, start, decode = 0, time.perf_counter(), []
        for block in engine.stream(request):
            frames += len(block.frames)
            decode.append(block.timings["decode"])
        return frames, time.perf_counter() - start, decode

    run()  # warm-up
    frames, seconds, decode = run()
    fps = frames / seconds
    print(f"world model ({'trained' if args.model else 'random weights'}), {spec.size}x{spec.size}, {args.dtype}, "
          f"{latent_frames} latent frames, threads={torch.get_num_threads()}")
    print(f"{frames} frames in {seconds:.2f} s = {fps:.1f} frames/s = {fps / FPS:.2f}x real time at {FPS} fps "
          f"(VAE decode {sum(decode):.2f} s of it)")


if __name__ == "__main__":
    main()
