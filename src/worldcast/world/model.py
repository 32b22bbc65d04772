"""The built-in world model: a scaled-down Wan VAE and causal DiT, conditioned on MiniLM text
and on the camera actions of the procedural world.

Sizes are chosen for a 2-core CPU: 64x64 pixels at 16 fps; the VAE compresses 4x in time and 4x
in space (16x16 latents, 8 channels), the DiT sees 8x8 = 64 tokens per latent frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worldcast.config import ModelConfig, ScheduleConfig
from worldcast.world.sim import ACTIONS
from worldcast.world.text import MINILM_DIM


@dataclass(frozen=True)
class WorldModelSpec:
    size: int = 64  # pixels
    vae_dim: int = 16
    z_dim: int = 8
    vae_dim_mult: tuple[int, ...] = (1, 2, 4)
    vae_temporal_downsample: tuple[bool, ...] = (True, True)
    dit: ModelConfig = field(default_factory=lambda: ModelConfig(
        dim=256, ffn_dim=1024, num_heads=4, num_layers=6, freq_dim=128, text_dim=MINILM_DIM, text_len=16,
        in_dim=8, out_dim=8, num_actions=len(ACTIONS), actions_per_frame=4))
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(
        denoising_steps=(1000, 750, 500, 250), warp=True, shift=3.0))
    frames_per_block: int = 3
    clip_frames: int = 33  # pixel frames per training clip: 9 latent frames = 3 blocks

    @property
    def spatial_stride(self) -> int:
        return 2 ** (len(self.vae_dim_mult) - 1)

    @property
    def temporal_stride(self) -> int:
        return 2 ** sum(self.vae_temporal_downsample)

    @property
    def latent_size(self) -> int:
        return self.size // self.spatial_stride
