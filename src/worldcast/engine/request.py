"""What a user submits and what the engine yields."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class GenerationRequest:
    """One video to generate.

    Give ``prompt`` (text, needs an engine with a text encoder) or ``prompt_embeds``
    (L, text_dim) from any encoder. ``noise`` (C, F, h, w) fixes the initial latent noise and
    ``step_noise`` (num_steps - 1, C, F, h, w) the noise drawn when re-noising between steps,
    so a run can be matched number for number against another implementation; otherwise both
    are drawn per block from a CPU generator seeded with ``seed``.

    ``prefix_latents`` (C, P, h, w) are normalised VAE latents committed to the cache before
    generation starts — the encoded first frame for image-to-video, an encoded video for video
    extension. They come back as the first (``is_prefix``) blocks; ``num_latent_frames`` counts
    the frames generated after them, and ``noise`` covers only those.

    ``actions`` (action-conditioned models) are one action id per pixel frame of the whole video,
    prefix included; the action at pixel frame t moves the world from frame t to t + 1, so latent
    frame j is conditioned on the actions between latent frames j - 1 and j.

    ``negative_prompt`` / ``negative_prompt_embeds`` condition the unconditional branch of
    classifier-free guidance (``ScheduleConfig.guidance_scale`` > 1); by default the empty prompt.
    """

    num_latent_frames: int
    prompt: str | None = None
    prompt_embeds: torch.Tensor | None = None
    seed: int = 0
    noise: torch.Tensor | None = None
    step_noise: torch.Tensor | None = None
    decode: bool = True
    prefix_latents: torch.Tensor | None = None
    actions: tuple[int, ...] | None = None
    negative_prompt: str | None = None
    negative_prompt_embeds: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.num_latent_frames
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise ValueError(f"num_latent_frames: must be a positive integer, got {n!r}")
        if (self.prompt is None) == (self.prompt_embeds is None):
            raise ValueError("prompt: give exactly one of prompt or prompt_embeds")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("prompt: must not be empty")
        if self.prompt_embeds is not None and (self.prompt_embeds.ndim != 2 or self.prompt_embeds.shape[0] == 0):
            raise ValueError(f"prompt_embeds: expected a (tokens, text_dim) tensor with at least one "
                             f"token, got shape {tuple(self.prompt_embeds.shape)}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {self.seed!r}")
        if self.prefix_latents is not None and (self.prefix_latents.ndim != 4 or self.prefix_latents.shape[1] == 0):
            raise ValueError(f"prefix_latents: expected a (C, frames, h, w) tensor with at least one frame, "
                             f"got shape {tuple(self.prefix_latents.shape)}")
        if self.actions is not None:
            object.__setattr__(self, "actions", tuple(self.actions))
            if not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in self.actions):
                raise ValueError("actions: must be non-negative integer action ids")
        if self.negative_prompt is not None and self.negative_prompt_embeds is not None:
            raise ValueError("negative_prompt: give at most one of negative_prompt or negative_prompt_embeds")
        if self.step_noise is not None and self.noise is None:
            raise ValueError("step_noise: only meaningful together with noise")


@dataclass
class BlockOutput:
    """One generated block, yielded as soon as it is ready."""

    request_id: int
    block_index: int
    frame_start: int  # index of the block's first latent frame in the video
    latents: torch.Tensor  # (C, f, h, w) float32, on CPU
    frames: torch.Tensor | None  # (n, H, W, 3) uint8 when a decoder ran
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    is_last: bool = False
    is_prefix: bool = False  # a committed prefix block (image / video given), not generated


@dataclass
class GenerationResult:
    latents: torch.Tensor  # (C, F, h, w)
    frames: torch.Tensor | None  # (N, H, W, 3) uint8
    blocks: list[BlockOutput]
