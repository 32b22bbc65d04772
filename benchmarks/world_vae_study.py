"""How fast a built-in-world VAE variant learns: train it briefly, then measure its
reconstructions of held-out clips — PSNR and the camera motion read from them (phase
correlation; 100% on the simulator's own frames). The table in docs/world.md comes from this.

    .venv/bin/python benchmarks/world_vae_study.py                       # the recipe's VAE, 250 steps
    .venv/bin/python benchmarks/world_vae_study.py --deterministic --lr 3e-3
    .venv/bin/python benchmarks/world_vae_study.py --temporal-downsample none
    .venv/bin/python benchmarks/world_vae_study.py --dim-mult 1,2 --temporal-downsample 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from worldcast.models.wan.vae import WanVAE
from worldcast.world.evaluate import action_accuracy
from worldcast.world.model import WorldModelSpec
from worldcast.world.sim import SPEED, sample_clip
from worldcast.world.train import HELD_OUT_SEEDS, VAE_SEEDS, TrainConfig, clip_batch, learning_rate, world_vae_config


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--clip-frames", type=int, default=9)
    p.add_argument("--crop", type=int, default=64, help="train on random square crops of this size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--z-dim", type=int, default=8)
    p.add_argument("--dim-mult", type=_ints, default=(1, 2, 4))
    p.add_argument("--temporal-downsample", default="all",
                   help="which down-sampling stages also halve time: all, none, or stage numbers like 1")
    p.add_argument("--deterministic", action="store_true", help="decode the posterior mean (plain autoencoder)")
    p.add_argument("--diff-loss", type=float, default=0.0, help="weight of an L1 loss on frame differences")
    p.add_argument("--eval-clips", type=int, default=6)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    stages = len(args.dim_mult) - 1
    chosen = {"all": set(range(stages)), "none": set()}.get(args.temporal_downsample)
    if chosen is None:
        chosen = {int(v) - 1 for v in args.temporal_downsample.split(",")}
    downsample = tuple(i in chosen for i in range(stages))
    base = WorldModelSpec()  # a Wan-style VAE (3-frame kernels, no time packing); a DiT to match it
    dit = dataclasses.replace(base.dit, in_dim=args.z_dim, out_dim=args.z_dim, actions_per_frame=2 ** sum(downsample))
    spec = dataclasses.replace(base, z_dim=args.z_dim, vae_dim_mult=args.dim_mult, vae_temporal_downsample=downsample,
                               vae_temporal_kernel=3, vae_time_pack=1, dit=dit)
    torch.manual_seed(0)
    vae = WanVAE(world_vae_config(spec)).to_channels_last()
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    start = time.perf_counter()
    for step in range(args.steps):
        torch.manual_seed(step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        pixels = clip_batch(spec, [VAE_SEEDS + step * args.batch_size + i for i in range(args.batch_size)],
                            args.clip_frames)[0]
        if args.crop < spec.size:
            x, y = torch.randint(0, spec.size - args.crop + 1, (2,)).tolist()
            pixels = pixels[..., y:y + args.crop, x:x + args.crop].contiguous()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mu, log_var = vae.encode_distribution(pixels)
            z = mu if args.deterministic else mu + torch.randn_like(mu) * (0.5 * log_var.clamp(-30, 20)).exp()
            recon = vae.decode_raw(z).float()
            loss = F.l1_loss(recon, pixels) + F.mse_loss(recon, pixels)
            if args.diff_loss:
                loss = loss + args.diff_loss * F.l1_loss(recon.diff(dim=2), pixels.diff(dim=2))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
    seconds = time.perf_counter() - start

    psnr, motion = [], []
    vae.eval()
    for i in range(args.eval_clips):
        clip = sample_clip(HELD_OUT_SEEDS + 200 + i, num_frames=args.clip_frames)
        x = torch.from_numpy(clip.frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        with torch.no_grad():
            y = vae.decode_raw(vae.encode_distribution(x)[0]).clamp(-1, 1)
        psnr.append(10 * np.log10(4 / (y - x).pow(2).mean().item()))
        frames = ((y[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
        motion.append(action_accuracy(frames, clip.actions, speed_pixels=SPEED))
    result = {**{k: v for k, v in vars(args).items() if k != "json"}, "seconds": seconds,
              "seconds_per_step": seconds / args.steps, "psnr_db": float(np.mean(psnr)),
              "motion_accuracy": float(np.mean(motion))}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.steps} steps in {seconds:.0f} s ({seconds / args.steps:.2f} s/step): held-out PSNR "
              f"{result['psnr_db']:.2f} dB, motion read right in {result['motion_accuracy']:.1%} of transitions")


if __name__ == "__main__":
    main()
