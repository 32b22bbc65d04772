"""The ceiling a world model's VAE puts on its evaluation: the evaluation's own measures applied
to the VAE's reconstructions of held-out simulator clips (what a perfect DiT would score).

    .venv/bin/python benchmarks/world_vae_bound.py --model out/world [--clips 30] [--frames 33] [--json]

Reports PSNR, prompt adherence (the evaluation's scene classifier) and action following per
frame (the evaluation's motion estimator) on the reconstructions, and the same two measures on
the simulator's frames themselves (100% when the measures are sound).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from worldcast.world.classifier import SceneClassifier
from worldcast.world.evaluate import action_accuracy
from worldcast.world.model import load_world_vae
from worldcast.world.sim import SPEED, sample_clip
from worldcast.world.train import HELD_OUT_SEEDS

CLIP_SEEDS = HELD_OUT_SEEDS + 700  # apart from the probe's and the VAE statistics' held-out clips


def bound(directory: str, clips: int, frames: int) -> dict:
    vae = load_world_vae(directory)
    classifier = SceneClassifier.fit()  # trains: outside no_grad
    rows = []
    for i in range(clips):
        clip = sample_clip(CLIP_SEEDS + i, num_frames=frames)
        x = torch.from_numpy(clip.frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (1, 3, T, H, W)
        with torch.no_grad():
            y = vae.decode(vae.encode(x))
        recon = ((y[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()  # (T, H, W, 3)
        rows.append({"psnr_db": 10 * np.log10(4 / (y - x).pow(2).mean().item()),
                     "prompt": classifier.accuracy(recon, clip.scene),
                     "motion": action_accuracy(recon, clip.actions, speed_pixels=SPEED),
                     "prompt_sim": classifier.accuracy(clip.frames, clip.scene),
                     "motion_sim": action_accuracy(clip.frames, clip.actions, speed_pixels=SPEED)})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return {"model": directory, "clips": clips, "frames": frames, **mean}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a 'worldcast train' directory")
    p.add_argument("--clips", type=int, default=30)
    p.add_argument("--frames", type=int, default=33, help="pixel frames per clip (1 + 4k)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = bound(args.model, args.clips, args.frames)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"VAE reconstructions of {args.clips} held-out {args.frames}-frame clips: "
              f"PSNR {result['psnr_db']:.2f} dB, prompt adherence {result['prompt']:.1%} "
              f"(simulator {result['prompt_sim']:.1%}), action following per frame {result['motion']:.1%} "
              f"(simulator {result['motion_sim']:.1%})")


if __name__ == "__main__":
    main()
