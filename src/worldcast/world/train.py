"""Training the built-in world model on the procedural world: the VAE, then the causal DiT.

Both loops draw clips from the simulator by seed (so every run sees the same data), log their
loss to a CSV, checkpoint atomically every ``checkpoint_every`` steps and resume from the last
checkpoint when restarted.

DiT objective (diffusion forcing): a clip's latent frames are cut into the engine's blocks; each
block gets its own timestep — clean (t = 0) with probability ``clean_prob``, else uniform on the
flow-matching table — and the model predicts the flow of every noisy block through a
block-causal mask, conditioned on the MiniLM prompt and the camera actions. Clean blocks are
exactly what the engine's cache holds at inference; noisy earlier blocks teach robustness. Each
batch starts at a random RoPE frame offset, so positions far beyond the clip length are seen.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from worldcast import progress
from worldcast.diffusion.flow_match import FlowMatchSchedule
from worldcast.models.attention import BlockCausalKV
from worldcast.models.wan.dit import NULL_ACTION, CausalWanDiT
from worldcast.models.wan.vae import VAEConfig, WanVAE
from worldcast.world.model import WorldModelSpec
from worldcast.world.sim import ACTIONS, Scene, sample_clip

log = logging.getLogger(__name__)

# Disjoint clip-seed ranges: what the VAE trains on, what the DiT trains on, what is held out
# for statistics and evaluation.
VAE_SEEDS, DIT_SEEDS, HELD_OUT_SEEDS = 0, 1_000_000_000, 2_000_000_000


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int = 4
    lr: float = 3e-4
    seed: int = 0
    checkpoint_every: int = 100
    warmup_steps: int = 50  # linear warm-up, then cosine decay to ``min_lr_ratio`` x lr
    min_lr_ratio: float = 0.1
    bf16: bool = True  # autocast matmuls/convs to bfloat16 (CPU: AMX; ~1.4x for the VAE)
    kl_weight: float = 1e-6  # VAE only: weight of the KL term
    sample_latents: bool = True  # VAE only: decode a posterior sample (False: its mean, a plain autoencoder)
    clean_prob: float = 0.3  # DiT only: chance that a block is clean context
    data_clips: int = 256  # DiT only: simulator clips rendered and encoded once, before training
    data_windows: int = 6  # DiT only: block-aligned training windows per encoded clip
    compile: bool = False  # DiT only: torch.compile the transformer blocks
    # DiT only: chance that a window's prompt is replaced by the empty one, and (independently)
    # its actions by NULL_ACTION, so the model also learns the unconditional flow that
    # classifier-free guidance pushes away from (ScheduleConfig.guidance_scale)
    text_drop: float = 0.0
    action_drop: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name}: must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr: must be positive, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps: must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        if self.data_clips <= 0:
            raise ValueError(f"TrainConfig.data_clips: must be positive, got {self.data_clips}")
        if self.data_windows < 2:
            raise ValueError(f"TrainConfig.data_windows: must be >= 2 (the first window and later ones), "
                             f"got {self.data_windows}")
        if not 0 <= self.clean_prob < 1:
            raise ValueError(f"TrainConfig.clean_prob: must be in [0, 1), got {self.clean_prob}")
        for name in ("text_drop", "action_drop"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}: must be in [0, 1), got {getattr(self, name)}")


# The built-in world's recipe (``worldcast train vae|dit`` with no flags runs these), sized so
# that both stages together take under an hour on a 2-core CPU (docs/world.md). The VAE is a
# plain (deterministic) frame-wise autoencoder; the hour goes mostly to the DiT.
VAE_RECIPE = TrainConfig(steps=2000, batch_size=8, lr=2e-3, sample_latents=False, kl_weight=0.0)
DIT_RECIPE = TrainConfig(steps=6500, batch_size=4, lr=6e-4, clean_prob=0.4, data_clips=1200, compile=True,
                         text_drop=0.1, action_drop=0.1)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def clip_batch(spec: WorldModelSpec, seeds: list[int], frames: int) -> tuple[torch.Tensor, torch.Tensor, list[Scene]]:
    """Pixels (B, 3, T, H, W) in [-1, 1], action ids (B, T), scenes."""
    clips = [sample_clip(s, num_frames=frames, size=spec.size) for s in seeds]
    pixels = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    actions = torch.tensor([[ACTIONS.index(a) for a in c.actions] for c in clips])
    return pixels, actions, [c.scene for c in clips]


def group_actions(actions: torch.Tensor, latent_frames: int, per_frame: int) -> torch.Tensor:
    """(B, T) per-pixel-frame ids -> (B, L, per_frame): latent frame j gets the actions between
    latent frames j - 1 and j; latent frame 0 gets 'none' (id 0). Same rule as the engine."""
    B = actions.shape[0]
    moves = actions[:, : per_frame * (latent_frames - 1)].reshape(B, latent_frames - 1, per_frame)
    return torch.cat([torch.zeros(B, 1, per_frame, dtype=torch.long), moves], dim=1)


# ---------------------------------------------------------------------------------------------
# Checkpoints and logs
# ---------------------------------------------------------------------------------------------

def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _resume(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, float]:
    """(step, training seconds so far) from the checkpoint, or (0, 0.0) when there is none."""
    if not path.exists():
        return 0, 0.0
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    log.info("resumed %s at step %d", path, state["step"])
    return int(state["step"]), float(state.get("seconds", 0.0))


class LossLog:
    """CSV of step, loss and wall-clock training seconds (summed over resumed runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        new = not path.exists()
        self._fh = path.open("a", newline="")
        self._writer = csv.writer(self._fh)
        if new:
            self._writer.writerow(["step", "loss", "seconds"])

    def write(self, step: int, loss: float, seconds: float) -> None:
        self._writer.writerow([step, f"{loss:.6f}", f"{seconds:.1f}"])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr`` at the
    last step. A pure function of the step, so a resumed run follows the same schedule."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _loop(name: str, out_dir: Path, model: torch.nn.Module, cfg: TrainConfig, loss_fn) -> None:
    """The shared training loop: resume, step, log, checkpoint."""
    out_dir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    checkpoint = out_dir / f"{name}_checkpoint.pt"
    start, seconds_before = _resume(checkpoint, model, optimizer)
    losses = LossLog(out_dir / f"{name}_loss.csv")
    began = time.perf_counter()
    skipped = 0
    model.train()
    with progress.bar(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"train {name}") as bar:
        for step in bar:
            torch.manual_seed(cfg.seed * 1_000_003 + step)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = loss_fn(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if torch.isfinite(norm):
                optimizer.step()
            else:  # one overflowing batch must not poison the weights; its loss is still logged
                skipped += 1
                log.warning("train %s: step %d has a non-finite gradient; skipped (%d so far)", name, step + 1, skipped)
            seconds = seconds_before + time.perf_counter() - began
            losses.write(step + 1, loss.item(), seconds)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "step": step + 1, "seconds": seconds, "config": asdict(cfg)}, checkpoint)
    losses.close()
    model.eval()


# ---------------------------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------------------------

def world_vae_config(spec: WorldModelSpec) -> VAEConfig:
    return VAEConfig(dim=spec.vae_dim, z_dim=spec.z_dim, dim_mult=spec.vae_dim_mult,
                     temporal_downsample=spec.vae_temporal_downsample, temporal_kernel=spec.vae_temporal_kernel,
                     time_pack=spec.vae_time_pack,
                     latent_mean=(0.0,) * spec.z_dim, latent_std=(1.0,) * spec.z_dim)


def _vae_loss(vae: WanVAE, pixels: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    mu, log_var = vae.encode_distribution(pixels)
    z = mu + torch.randn_like(mu) * (0.5 * log_var.clamp(-30, 20)).exp() if cfg.sample_latents else mu
    recon = vae.decode_raw(z)
    loss = F.l1_loss(recon, pixels) + F.mse_loss(recon, pixels)
    if cfg.kl_weight:
        loss = loss + cfg.kl_weight * 0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).mean()
    return loss


def train_vae(spec: WorldModelSpec, cfg: TrainConfig, out_dir: Path) -> WanVAE:
    """Reconstruction (L1 + MSE, plus ``kl_weight`` x KL) of single simulator frames. The world's
    VAE is frame-wise, so a frame is all it ever sees: clips would give the same loss at a
    multiple of the cost. Returns the VAE with per-channel latent statistics measured on
    held-out clips (the DiT then sees unit-variance latents)."""
    vae_config = world_vae_config(spec)
    if not vae_config.frame_wise:
        raise ValueError("train vae: trains frame-wise VAEs (WorldModelSpec.vae_temporal_kernel=1, no temporal "
                         "downsampling); the curriculum for VAEs that compress time is in docs/world.md's history")
    torch.manual_seed(cfg.seed)
    vae = WanVAE(vae_config).to_channels_last()

    def loss_fn(step: int) -> torch.Tensor:
        seeds = [VAE_SEEDS + cfg.seed * 10_000_000 + 7_000_000 + step * cfg.batch_size + i
                 for i in range(cfg.batch_size)]
        return _vae_loss(vae, clip_batch(spec, seeds, 1)[0], cfg)

    _loop("vae", out_dir, vae, cfg, loss_fn)
    return with_latent_stats(vae, spec)


@torch.no_grad()
def with_latent_stats(vae: WanVAE, spec: WorldModelSpec, num_clips: int = 16) -> WanVAE:
    pixels, _, _ = clip_batch(spec, [HELD_OUT_SEEDS + i for i in range(num_clips)], 17)
    mu, _ = vae.encode_distribution(pixels)
    mean = mu.mean(dim=(0, 2, 3, 4)).tolist()
    std = mu.std(dim=(0, 2, 3, 4)).clamp_min(1e-3).tolist()
    config = VAEConfig(**{**vae.config.__dict__, "latent_mean": tuple(mean), "latent_std": tuple(std)})
    trained = WanVAE(config)
    trained.load_state_dict(vae.state_dict())
    return trained.eval()


# ---------------------------------------------------------------------------------------------
# DiT
# ---------------------------------------------------------------------------------------------

def block_timesteps(schedule: FlowMatchSchedule, num_blocks: int, batch: int, clean_prob: float) -> torch.Tensor:
    """(B, num_blocks) timesteps: 0 (clean context) with probability ``clean_prob``; otherwise
    one of the sampler's own steps (what the engine will run) half the time, a random table
    entry the other half (so nearby noise levels are covered too)."""
    table = schedule.table_timesteps.float()
    steps = schedule.timesteps.float()
    from_table = table[torch.randint(len(table), (batch, num_blocks))]
    from_steps = steps[torch.randint(len(steps), (batch, num_blocks))]
    t = torch.where(torch.rand(batch, num_blocks) < 0.5, from_steps, from_table)
    return torch.where(torch.rand(batch, num_blocks) < clean_prob, torch.zeros_like(t), t)


def pad_prompt(embedding: torch.Tensor, length: int) -> torch.Tensor:
    """(L, D) -> (length, D), zero-padded (what ``encode_text`` would do) so prompts stack."""
    return F.pad(embedding[:length], (0, 0, 0, length - min(len(embedding), length)))


@dataclass(frozen=True)
class LatentClips:
    """Simulator clips encoded once by the VAE; the DiT trains on windows cut from them."""
    latents: torch.Tensor  # (N, C, L, h, w) normalised latents, bfloat16
    actions: torch.Tensor  # (N, L, actions_per_frame) action ids grouped per latent frame
    prompts: list[str]  # (N,)


def _fingerprint(module: torch.nn.Module) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def encode_latent_clips(spec: WorldModelSpec, cfg: TrainConfig, vae: WanVAE, cache: Path | None = None,
                        batch: int = 4) -> LatentClips:
    """``cfg.data_clips`` clips long enough for ``cfg.data_windows`` block-aligned training windows,
    encoded once (rendering and encoding cost more than a DiT step). ``cache`` keeps them across
    resumes; it is reused only when the clips, their length and the VAE are the same."""
    latent_frames = spec.clip_latent_frames + (cfg.data_windows - 1) * spec.frames_per_block
    frames = 1 + (latent_frames - 1) * spec.temporal_stride
    key = {"clips": cfg.data_clips, "frames": frames, "seed": cfg.seed, "vae": _fingerprint(vae)}
    if cache is not None and cache.exists():
        stored = torch.load(cache, map_location="cpu", weights_only=False)
        if stored["key"] == key:
            return stored["data"]
        log.info("re-encoding the DiT's clips: %s was made for other clips or another VAE", cache)
    latents, actions, prompts = [], [], []
    for first in progress.bar(range(0, cfg.data_clips, batch), desc="encode dit clips"):
        seeds = [DIT_SEEDS + cfg.seed * 10_000_000 + i for i in range(first, min(first + batch, cfg.data_clips))]
        pixels, ids, scenes = clip_batch(spec, seeds, frames)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            latents.append(vae.encode(pixels).to(torch.bfloat16))  # (b, C, L, h, w)
        actions.append(group_actions(ids, latent_frames, spec.dit.actions_per_frame))
        prompts += [scene.prompt for scene in scenes]
    data = LatentClips(torch.cat(latents), torch.cat(actions), prompts)
    if cache is not None:
        _save_atomic({"key": key, "data": data}, cache)
    return data


def sample_windows(data: LatentClips, spec: WorldModelSpec, batch: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(B, C, L, h, w) latents, (B, L, per_frame) actions and prompts of ``batch`` training windows:
    half start at a clip's first frame (a 1-frame first latent, as when generation starts), half
    one or more blocks later (as every later window of a long rollout looks)."""
    length = spec.clip_latent_frames
    windows = (data.latents.shape[2] - length) // spec.frames_per_block + 1
    clips = torch.randint(0, len(data.prompts), (batch,)).tolist()
    later = torch.randint(1, windows, (batch,))
    starts = (torch.where(torch.rand(batch) < 0.5, 0, later) * spec.frames_per_block).tolist()
    x0 = torch.stack([data.latents[c, :, s:s + length] for c, s in zip(clips, starts)]).float()
    actions = torch.stack([data.actions[c, s:s + length] for c, s in zip(clips, starts)])
    return x0, actions, [data.prompts[c] for c in clips]


def drop_conditions(prompts: list[str], actions: torch.Tensor,
                    cfg: TrainConfig) -> tuple[list[str], torch.Tensor]:
    """Condition dropout for classifier-free guidance: each window's prompt becomes the empty
    one with chance ``text_drop`` and its actions (B, F, k) NULL_ACTION with chance ``action_drop``."""
    if cfg.text_drop:
        dropped = (torch.rand(len(prompts)) < cfg.text_drop).tolist()
        prompts = ["" if drop else p for p, drop in zip(prompts, dropped)]
    if cfg.action_drop:
        dropped = torch.rand(actions.shape[0]) < cfg.action_drop
        actions = torch.where(dropped[:, None, None], torch.full_like(actions, NULL_ACTION), actions)
    return prompts, actions


def train_dit(spec: WorldModelSpec, cfg: TrainConfig, vae: WanVAE, prompt_embeddings: dict[str, torch.Tensor],
              out_dir: Path) -> CausalWanDiT:
    """Diffusion forcing on windows of ``spec.clip_frames`` pixel frames, through a block-causal
    mask, on clips encoded once up front (``encode_latent_clips``)."""
    torch.manual_seed(cfg.seed)
    model = CausalWanDiT(spec.dit)
    schedule = FlowMatchSchedule(spec.schedule)
    latent_frames = spec.clip_latent_frames
    if latent_frames % spec.frames_per_block:
        raise ValueError(f"clip_frames: {spec.clip_frames} gives {latent_frames} latent frames, not whole blocks")
    blocks = latent_frames // spec.frames_per_block
    tokens = (spec.latent_size // spec.dit.patch_size[1]) * (spec.latent_size // spec.dit.patch_size[2])
    attention = BlockCausalKV([spec.frames_per_block] * blocks, tokens)
    vae = vae.eval().requires_grad_(False).to_channels_last()
    out_dir.mkdir(parents=True, exist_ok=True)
    data = encode_latent_clips(spec, cfg, vae, cache=out_dir / "dit_data.pt")
    text_table = {p: pad_prompt(e, spec.dit.text_len) for p, e in prompt_embeddings.items()}
    if cfg.compile:
        for block in model.blocks:
            block.compile(dynamic=False)

    def loss_fn(step: int) -> torch.Tensor:
        x0, clip_actions, prompts = sample_windows(data, spec, cfg.batch_size)
        # the camera follows the actions taken, also where their embedding is dropped
        camera = model.camera_path(clip_actions) if spec.dit.action_camera else None
        prompts, clip_actions = drop_conditions(prompts, clip_actions, cfg)
        t_block = block_timesteps(schedule, blocks, cfg.batch_size, cfg.clean_prob)
        t = t_block.repeat_interleave(spec.frames_per_block, dim=1)  # (B, L)
        sigma = torch.tensor([[schedule.sigma(float(v)) for v in row] for row in t])[:, None, :, None, None]
        noise = torch.randn_like(x0)
        x_t = (1 - sigma) * x0 + sigma * noise
        text = model.encode_text(torch.stack([text_table[p] for p in prompts]))
        offset = int(torch.randint(0, spec.dit.rope_max_positions - latent_frames + 1, ()))
        flow = model(x_t, t, text, attention, frame_offset=offset, actions=clip_actions, camera=camera)
        weight = (t > 0).float()[:, None, :, None, None]  # clean context blocks carry no loss
        err = (flow.float() - (noise - x0)).pow(2) * weight
        return err.sum() / (weight.sum() * x0.shape[1] * x0.shape[3] * x0.shape[4]).clamp_min(1)

    _loop("dit", out_dir, model, cfg, loss_fn)
    return model


# ---------------------------------------------------------------------------------------------
# Saving the trained weights (what ships)
# ---------------------------------------------------------------------------------------------

def save_weights(module: torch.nn.Module, config: object, directory: Path, name: str,
                 dtype: torch.dtype = torch.bfloat16) -> Path:
    """``name.safetensors`` (floating tensors in ``dtype``) and ``name.json`` (the config)."""
    import json

    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in module.state_dict().items()}
    path = directory / f"{name}.safetensors"
    save_file(state, str(path))
    (directory / f"{name}.json").write_text(json.dumps(asdict(config), indent=2))
    return path


def save_random_world(directory: Path, spec: WorldModelSpec | None = None, seed: int = 0) -> Path:
    """A world-model directory with random weights of ``spec``'s architecture, in the layout
    ``worldcast train`` writes (speed measurements and tests load it like trained weights)."""
    spec = spec or WorldModelSpec()
    torch.manual_seed(seed)
    dit = CausalWanDiT(spec.dit)
    vae = WanVAE(world_vae_config(spec))
    save_weights(dit, dit.config, directory, "dit")
    save_weights(vae, vae.config, directory, "vae", dtype=torch.float32)
    return directory


def prompt_embeddings(text_encoder) -> dict[str, torch.Tensor]:
    """Every scene's prompt, and the empty prompt (what dropped prompts become), encoded once."""
    return {prompt: text_encoder.encode(prompt) for prompt in ["", *(scene.prompt for scene in Scene.all())]}
