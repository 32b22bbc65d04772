"""Running the built-in world model through the engine: load it, configure the engine the way
it was trained, turn a prompt and camera actions into frames.

The shipped weights live in ``worldcast/world/weights`` (written by ``worldcast train``); any
other directory in the same layout loads the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldcast.config import CacheConfig, EngineConfig, resolve_dtype
from worldcast.engine.engine import Engine
from worldcast.engine.request import BlockOutput, GenerationRequest
from worldcast.models.wan.dit import CausalWanDiT
from worldcast.models.wan.text import TransformerTextEncoder
from worldcast.models.wan.vae import VAEFrameDecoder
from worldcast.world.model import WorldModelSpec, is_world_model_dir, load_world_model, spec_for
from worldcast.world.sim import ACTIONS
from worldcast.world.text import load_minilm

WEIGHTS_DIR = Path(__file__).parent / "weights"


def default_world_dir() -> Path:
    """The shipped weights, or a ValueError saying how to make them."""
    if not is_world_model_dir(WEIGHTS_DIR):
        raise ValueError(f"model: the built-in world's weights are missing from {WEIGHTS_DIR}; train them with "
                         f"'worldcast train vae' and 'worldcast train dit' (see docs/world.md) "
                         f"or pass --model")
    return WEIGHTS_DIR


def load_world_components(directory: Path, dtype: torch.dtype, vae_dtype: torch.dtype = torch.float32,
                          device: str = "cpu") -> tuple[CausalWanDiT, TransformerTextEncoder, VAEFrameDecoder]:
    """(DiT, MiniLM text encoder, streaming VAE decoder) of a world-model directory."""
    dit, vae = load_world_model(directory, dtype, device)
    vae = vae.to(vae_dtype)
    if torch.device(device).type == "cpu":
        vae = vae.to_channels_last()
    return dit, load_minilm(dit.config.text_len), VAEFrameDecoder(vae)


@dataclass(frozen=True)
class WorldSettings:
    """How the world model runs. ``window``: latent frames of context each block sees; the
    default is what the model saw in training (a longer window is out of distribution)."""

    window: int | None = WorldModelSpec().context_frames
    dtype: str = "bfloat16"
    vae_dtype: str = "bfloat16"  # 4x faster than float32 on CPU; 63 dB from it with trained weights
    device: str = "cpu"
    compile: bool = False
    attention: str = "cache"
    sampler: str | None = None  # None: the spec's ("renoise" or "euler", see ScheduleConfig)
    guidance: float | None = None  # classifier-free guidance scale; None: the spec's


class WorldModel:
    """The built-in world model loaded once; ``stream``/``generate`` as many videos as wanted."""

    def __init__(self, directory: str | Path | None = None, settings: WorldSettings = WorldSettings(),
                 spec: WorldModelSpec | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_world_dir()
        if spec is None:
            spec = spec_for(self.directory) if is_world_model_dir(self.directory) else WorldModelSpec()
        self.spec, self.settings = spec, settings
        spec = self.spec
        schedule = spec.schedule
        if settings.sampler is not None:
            schedule = dataclasses.replace(schedule, sampler=settings.sampler)
        if settings.guidance is not None:
            schedule = dataclasses.replace(schedule, guidance_scale=settings.guidance)
        self.config = EngineConfig(  # validates the settings before the weights load
            schedule=schedule,
            cache=CacheConfig(window_frames=settings.window),
            height=spec.size, width=spec.size,
            vae_stride=(spec.temporal_stride, spec.spatial_stride, spec.spatial_stride),
            frames_per_block=spec.frames_per_block, attention=settings.attention,
            dtype=settings.dtype, device=settings.device, compile=settings.compile)
        self.dit, self.text_encoder, decoder = load_world_components(
            self.directory, self.config.torch_dtype, resolve_dtype(settings.vae_dtype, "vae_dtype"), settings.device)
        self.vae = decoder.vae
        self.config = dataclasses.replace(self.config, model=self.dit.config)
        self.engine = Engine(self.config, self.dit, self.text_encoder, decoder)

    def latent_frames(self, num_frames: int) -> int:
        """Pixel frames -> latent frames, validated against the block layout."""
        stride = self.spec.temporal_stride
        latent = 1 + (num_frames - 1) // stride if num_frames >= 1 else 0
        if num_frames < 1 or (num_frames - 1) % stride or latent % self.spec.frames_per_block:
            step = stride * self.spec.frames_per_block
            raise ValueError(f"frames: {num_frames} does not fill whole blocks; use {step - stride + 1} + "
                             f"{step}k pixel frames (e.g. {step - stride + 1}, {2 * step - stride + 1}, "
                             f"{3 * step - stride + 1})")
        return latent

    def request(self, prompt: str, actions: list[str], num_frames: int, seed: int = 0) -> GenerationRequest:
        """A request for ``num_frames`` pixel frames; ``actions[t]`` moves frame t to t + 1
        (padded with 'none', extra ones ignored)."""
        unknown = sorted(set(actions) - set(ACTIONS))
        if unknown:
            raise ValueError(f"actions: unknown {unknown}; accepted: {', '.join(ACTIONS)}")
        latent = self.latent_frames(num_frames)
        padded = (list(actions) + ["none"] * num_frames)[: num_frames - 1]
        return GenerationRequest(latent, prompt=prompt, seed=seed, actions=tuple(ACTIONS.index(a) for a in padded))

    def stream(self, prompt: str, actions: list[str], num_frames: int, seed: int = 0) -> Iterator[BlockOutput]:
        return self.engine.stream(self.request(prompt, actions, num_frames, seed))

    def generate(self, prompt: str, actions: list[str], num_frames: int, seed: int = 0) -> np.ndarray:
        """(num_frames, H, W, 3) uint8 frames."""
        return torch.cat([b.frames for b in self.stream(prompt, actions, num_frames, seed)]).numpy()
