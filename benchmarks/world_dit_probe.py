"""What a built-in-world DiT has learned, measured with real context (teacher forcing).

Held-out simulator clips are encoded by the model's own VAE; the last block of each 9-latent-frame
window is noised to each of the sampler's noise levels while the 6 frames before it stay clean
(what the cache holds), and the DiT's one-step x0 prediction of that block is compared with the
truth (mean squared error on unit-variance latents). Conditioning is then spoiled to see what
the model uses: actions replaced by "none" or by another clip's, the prompt by another scene's.
Two baselines bound the numbers: predicting zeros (the latents' mean square) and copying the last
context frame.

    .venv/bin/python benchmarks/world_dit_probe.py --model out/world [--clips 16] [--json]
"""

from __future__ import annotations

import argparse
import json

import torch

from worldcast.diffusion.flow_match import FlowMatchSchedule
from worldcast.models.attention import DenseKV, block_causal_mask
from worldcast.world.model import WorldModelSpec, load_world_model, spec_for
from worldcast.world.sim import Scene
from worldcast.world.text import load_minilm
from worldcast.world.train import HELD_OUT_SEEDS, clip_batch, group_actions, pad_prompt, prompt_embeddings


def held_out_windows(spec: WorldModelSpec, vae, clips: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(B, C, L, h, w) latents, (B, L, per_frame) actions, prompts of windows one block into a clip
    (no first-frame latent: what every later window of a rollout looks like)."""
    lead = spec.frames_per_block
    latent_frames = spec.clip_latent_frames + lead
    pixels, ids, scenes = clip_batch(spec, [HELD_OUT_SEEDS + 500 + i for i in range(clips)],
                                     1 + (latent_frames - 1) * spec.temporal_stride)
    latents = vae.encode(pixels)[:, :, lead:]
    actions = group_actions(ids, latent_frames, spec.dit.actions_per_frame)[:, lead:]
    return latents, actions, [scene.prompt for scene in scenes]


@torch.no_grad()
def probe(directory: str, clips: int, seed: int = 0) -> dict:
    spec = spec_for(directory)
    dit, vae = load_world_model(directory, dtype=torch.float32)
    x0, actions, prompts = held_out_windows(spec, vae, clips)
    table = prompt_embeddings(load_minilm(spec.dit.text_len))
    other_scene = {s.prompt: Scene.all()[(i + 7) % len(Scene.all())].prompt for i, s in enumerate(Scene.all())}
    schedule = FlowMatchSchedule(spec.schedule)
    L, f = x0.shape[2], spec.frames_per_block
    mask = block_causal_mask([f] * (L // f), spec.latent_size ** 2 // (spec.dit.patch_size[1] * spec.dit.patch_size[2]))
    generator = torch.Generator().manual_seed(seed)
    shuffled = actions[torch.randperm(clips, generator=generator)]
    target = x0[:, :, -f:]

    def text(ps: list[str]) -> torch.Tensor:
        return dit.encode_text(torch.stack([pad_prompt(table[p], spec.dit.text_len) for p in ps]))

    variants = {"conditioned": (text(prompts), actions), "actions none": (text(prompts), torch.zeros_like(actions)),
                "actions of another clip": (text(prompts), shuffled),
                "another scene's prompt": (text([other_scene[p] for p in prompts]), actions)}
    rows = []
    for t in schedule.timesteps.tolist():
        sigma = schedule.sigma(t)
        noise = torch.randn(target.shape, generator=generator)
        x = torch.cat([x0[:, :, :-f], (1 - sigma) * target + sigma * noise], dim=2)
        steps = torch.tensor([0.0] * (L - f) + [t] * f).repeat(clips, 1)
        row = {"timestep": t, "sigma": sigma}
        for name, (context, acts) in variants.items():
            # a camera-following model's positions come from the same actions: a variant with
            # other actions is another camera path, not just another action embedding
            camera = dit.camera_path(acts) if spec.dit.action_camera else None
            flow = dit(x, steps, context, DenseKV(mask), frame_offset=0, actions=acts, camera=camera)[:, :, -f:]
            row[name] = (x[:, :, -f:] - sigma * flow - target).pow(2).mean().item()
        rows.append(row)
    copy_last = (x0[:, :, -f - 1:-f].expand_as(target) - target).pow(2).mean().item()
    return {"model": directory, "clips": clips, "rows": rows,
            "baselines": {"zeros": target.pow(2).mean().item(), "copy last context frame": copy_last}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a 'worldcast train' directory")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = probe(args.model, args.clips)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    names = [k for k in result["rows"][0] if k not in ("timestep", "sigma")]
    print(f"x0 error of the last block (MSE, unit-variance latents) with 6 clean context frames, {args.clips} clips")
    print("sigma  " + "  ".join(f"{n:>24}" for n in names))
    for row in result["rows"]:
        print(f"{row['sigma']:.2f}   " + "  ".join(f"{row[n]:>24.3f}" for n in names))
    print("baselines: " + ", ".join(f"{k} {v:.3f}" for k, v in result["baselines"].items()))


if __name__ == "__main__":
    main()
