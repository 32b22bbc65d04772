"""The built-in world model: a scaled-down Wan VAE and causal DiT, conditioned on MiniLM text
and on the camera actions of the procedural world.

Sizes are chosen for a 2-core CPU: 64x64 pixels at 16 fps; the VAE encodes each frame on its own,
4x in space (16x16 latents, 8 channels), and packs pairs of frames into one 16-channel latent
frame (2x in time); the DiT sees 8x8 = 64 tokens per latent frame.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from worldcast.config import ModelConfig, ScheduleConfig
from worldcast.models.checkpoint import load_into, read_state_dict
from worldcast.models.wan.dit import CausalWanDiT
from worldcast.models.wan.vae import VAEConfig, WanVAE
from worldcast.world.sim import ACTION_VECTORS, ACTIONS, SPEED, VIEW
from worldcast.world.text import MINILM_DIM


@dataclass(frozen=True)
class WorldModelSpec:
    size: int = 64  # pixels
    vae_dim: int = 16
    z_dim: int = 8
    vae_dim_mult: tuple[int, ...] = (1, 2, 4)
    # A frame-wise VAE (an image autoencoder in Wan's layout) whose latent frames are packed in
    # pairs: 2x in time, losslessly. A VAE that compresses time itself blurred the camera's motion
    # between the frames of a latent frame (docs/world.md, "A frame-wise VAE")
    vae_temporal_downsample: tuple[bool, ...] = (False, False)
    vae_temporal_kernel: int = 1
    vae_time_pack: int = 2
    dit: ModelConfig = field(default_factory=lambda: ModelConfig(
        dim=256, ffn_dim=1024, num_heads=4, num_layers=6, freq_dim=128, text_dim=MINILM_DIM, text_len=16,
        in_dim=16, out_dim=16, num_actions=len(ACTIONS), actions_per_frame=2))
    # Euler steps: the DiT is trained by plain flow matching, not distilled (docs/world.md)
    # and sampled with mild classifier-free guidance (the recipe drops prompt and actions for
    # it); stronger guidance pushed the forest and the city into false colours (docs/world.md)
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(
        denoising_steps=(1000, 750, 500, 250), warp=True, shift=3.0, sampler="euler", guidance_scale=1.25))
    frames_per_block: int = 3
    clip_frames: int = 17  # pixel frames per training clip: 9 latent frames = 3 blocks
    # The DiT's RoPE positions follow the camera (ModelConfig.action_camera, set from the
    # simulator's speed): why in docs/world.md, "Camera-following RoPE"
    camera_rope: bool = True

    def __post_init__(self) -> None:
        channels = self.z_dim * self.vae_time_pack
        if (self.dit.in_dim, self.dit.out_dim) != (channels, channels):
            raise ValueError(f"WorldModelSpec.dit: in_dim and out_dim must be the VAE's latent channels "
                             f"({self.z_dim} x time pack {self.vae_time_pack} = {channels}), "
                             f"got {self.dit.in_dim} and {self.dit.out_dim}")
        if self.dit.actions_per_frame != self.temporal_stride:
            raise ValueError(f"WorldModelSpec.dit: actions_per_frame must equal the VAE's temporal stride "
                             f"({self.temporal_stride}: one action per pixel frame), got {self.dit.actions_per_frame}")
        expected = self.camera_moves() if self.camera_rope else ()
        if self.dit.action_camera != expected:
            if self.dit.action_camera:
                raise ValueError(f"WorldModelSpec.dit: action_camera {self.dit.action_camera} does not match the "
                                 f"simulator's camera ({expected or 'camera_rope=False'})")
            object.__setattr__(self, "dit", dataclasses.replace(self.dit, action_camera=expected))

    def camera_moves(self) -> tuple[tuple[float, float], ...]:
        """Per action (``ACTIONS`` order), the camera's (row, col) move per pixel frame in DiT
        tokens: the simulator's speed in pixels over the pixels a token spans."""
        pixels = SPEED * self.size / VIEW
        row_scale, col_scale = (pixels / (self.spatial_stride * patch) for patch in self.dit.patch_size[1:])
        return tuple((dy * row_scale, dx * col_scale) for dx, dy in (ACTION_VECTORS[a] for a in ACTIONS))

    @property
    def spatial_stride(self) -> int:
        return 2 ** (len(self.vae_dim_mult) - 1)

    @property
    def temporal_stride(self) -> int:
        return 2 ** sum(self.vae_temporal_downsample) * self.vae_time_pack

    @property
    def latent_size(self) -> int:
        return self.size // self.spatial_stride

    @property
    def clip_latent_frames(self) -> int:
        return 1 + (self.clip_frames - 1) // self.temporal_stride

    @property
    def context_frames(self) -> int:
        """Latent frames of context the last block of a training clip sees: the sliding window
        that keeps generation in distribution at any length."""
        return self.clip_latent_frames - self.frames_per_block


def is_world_model_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "dit.json").exists() and (path / "vae.json").exists()


def spec_for(directory: str | Path) -> WorldModelSpec:
    """The spec a 'worldcast train' directory was made with, as far as its files say: the VAE's
    handling of time (``vae.json``) and the DiT (``dit.json``); earlier runs used VAEs that
    compressed time themselves (4x, then 2x)."""
    directory = Path(directory)
    vae, dit = read_config(directory, "vae", VAEConfig), read_config(directory, "dit", ModelConfig)
    base = WorldModelSpec()
    stride = vae.temporal_stride
    return dataclasses.replace(base, vae_temporal_downsample=vae.temporal_downsample,
                               vae_temporal_kernel=vae.temporal_kernel, vae_time_pack=vae.time_pack, dit=dit,
                               clip_frames=1 + (base.clip_latent_frames - 1) * stride,
                               camera_rope=bool(dit.action_camera))


def read_config(directory: Path, name: str, cls: type):
    """``directory/name.json`` as the frozen dataclass ``cls`` (lists back to tuples)."""
    values = json.loads((directory / f"{name}.json").read_text())
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_world_vae(directory: str | Path) -> WanVAE:
    """The VAE saved by ``worldcast train vae``: ``vae.safetensors`` + ``vae.json``."""
    directory = Path(directory)
    vae = WanVAE(read_config(directory, "vae", VAEConfig))
    load_into(vae, read_state_dict(directory / "vae.safetensors"), str(directory / "vae.safetensors"))
    return vae.eval().requires_grad_(False)


def load_world_model(directory: str | Path, dtype: torch.dtype = torch.bfloat16,
                     device: str = "cpu") -> tuple[CausalWanDiT, WanVAE]:
    """(DiT, VAE) saved by ``worldcast train``: ``dit.safetensors/json``, ``vae.safetensors/json``."""
    directory = Path(directory)
    dit = CausalWanDiT(read_config(directory, "dit", ModelConfig))
    load_into(dit, read_state_dict(directory / "dit.safetensors"), str(directory / "dit.safetensors"))
    dit = dit.to(device).to_inference_dtype(dtype).eval().requires_grad_(False)
    return dit, load_world_vae(directory).to(device)
