"""Typed, validated configuration.

Every config is a frozen dataclass that checks itself in ``__post_init__`` and raises
``ValueError`` naming the offending field and the accepted values. Nothing downstream
re-validates user input; shapes elsewhere are derived from these specs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

KV_QUANTIZATIONS = ("int8", "fp8")
OVER_BUDGET = ("error", "window", "offload")

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{name}: {message}")


def _positive_int(value: object, name: str) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        name,
        f"must be a positive integer, got {value!r}",
    )


def resolve_dtype(name: str, field_name: str = "dtype") -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"{field_name}: unknown dtype {name!r}; accepted: {sorted(DTYPES)}")
    return DTYPES[name]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a Wan2.1-style text-to-video DiT (names follow Wan's config.json)."""

    dim: int = 1536
    ffn_dim: int = 8960
    num_heads: int = 12
    num_layers: int = 30
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    in_dim: int = 16
    out_dim: int = 16
    patch_size: tuple[int, int, int] = (1, 2, 2)
    qk_norm: bool = True
    cross_attn_norm: bool = True
    eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_max_positions: int = 1024
    # Action conditioning (0 = none, as in Wan2.1): each latent frame is conditioned on the
    # ``actions_per_frame`` discrete actions taken since the previous latent frame.
    num_actions: int = 0
    actions_per_frame: int = 4
    # Camera-following RoPE (empty = off, as in Wan2.1): per action id, the camera's (row, col)
    # move per pixel frame in tokens. A latent frame's spatial RoPE positions are offset by the
    # camera's position there, so ground that stays put keeps its positions as the camera moves.
    action_camera: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.num_actions, int) or self.num_actions < 0:
            raise ValueError(f"ModelConfig.num_actions: must be a non-negative integer, got {self.num_actions!r}")
        self._normalise_action_camera()
        for name in ("actions_per_frame", "dim", "ffn_dim", "num_heads", "num_layers", "freq_dim", "text_dim",
                     "text_len", "in_dim", "out_dim", "rope_max_positions"):
            _positive_int(getattr(self, name), f"ModelConfig.{name}")
        _require(self.dim % self.num_heads == 0, "ModelConfig.num_heads",
                 f"dim={self.dim} must be divisible by num_heads={self.num_heads}")
        _require(self.head_dim % 2 == 0 and self.head_dim >= 6, "ModelConfig.num_heads",
                 f"head_dim={self.head_dim} must be even and >= 6 for 3D RoPE")
        _require(self.freq_dim % 2 == 0, "ModelConfig.freq_dim", "must be even")
        _require(len(self.patch_size) == 3 and all(isinstance(p, int) and p > 0 for p in self.patch_size),
                 "ModelConfig.patch_size", f"must be three positive ints, got {self.patch_size!r}")
        _require(self.patch_size[0] == 1, "ModelConfig.patch_size",
                 "temporal patch must be 1: a block-causal model caches per latent frame")
        _require(self.eps > 0, "ModelConfig.eps", "must be > 0")

    def _normalise_action_camera(self) -> None:
        """Validate ``action_camera`` and store it as a tuple of (float, float) (JSON gives lists)."""
        moves = self.action_camera
        ok = isinstance(moves, (tuple, list)) and all(
            isinstance(m, (tuple, list)) and len(m) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v)
                                                                 for v in m) for m in moves)
        _require(ok, "ModelConfig.action_camera", f"must be (row, col) number pairs, got {moves!r}")
        _require(not moves or len(moves) == self.num_actions, "ModelConfig.action_camera",
                 f"needs one (row, col) move per action (num_actions={self.num_actions}), got {len(moves)}")
        object.__setattr__(self, "action_camera", tuple((float(r), float(c)) for r, c in moves))

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def tokens_per_frame(self, latent_height: int, latent_width: int) -> int:
        return (latent_height // self.patch_size[1]) * (latent_width // self.patch_size[2])


SAMPLERS = ("renoise", "euler")


@dataclass(frozen=True)
class ScheduleConfig:
    """Flow-matching sampling schedule for the few-step causal models."""

    denoising_steps: tuple[float, ...] = (1000.0, 750.0, 500.0, 250.0)
    warp: bool = True
    shift: float = 5.0
    num_train_timesteps: int = 1000
    context_noise: float = 0.0
    # How a step moves to the next noise level: "renoise" predicts x0 and adds fresh noise (the
    # few-step distilled models' rule: Self-Forcing, CausVid); "euler" follows the predicted flow
    # (the probability-flow ODE, as diffusers' FlowMatchEulerDiscreteScheduler), which keeps the
    # noise a sample started from and suits models trained by plain flow matching.
    sampler: str = "renoise"
    # Classifier-free guidance: each denoising step also runs the DiT without the prompt (the
    # request's negative prompt, by default the empty one) and without actions, and follows
    # uncond + guidance_scale * (cond - uncond). 1.0 is off (one pass per step); models trained
    # without condition dropout (the distilled few-step ones) are meant to run without it.
    guidance_scale: float = 1.0

    def __post_init__(self) -> None:
        _positive_int(self.num_train_timesteps, "ScheduleConfig.num_train_timesteps")
        _require(isinstance(self.guidance_scale, (int, float)) and self.guidance_scale > 0,
                 "ScheduleConfig.guidance_scale",
                 f"must be a positive number (1.0 is off), got {self.guidance_scale!r}")
        _require(self.sampler in SAMPLERS, "ScheduleConfig.sampler",
                 f"must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        T = self.num_train_timesteps
        _require(len(self.denoising_steps) > 0, "ScheduleConfig.denoising_steps", "must not be empty")
        _require(all(0 < s <= T for s in self.denoising_steps), "ScheduleConfig.denoising_steps",
                 f"every step must be in (0, {T}], got {list(self.denoising_steps)}")
        _require(all(a > b for a, b in zip(self.denoising_steps, self.denoising_steps[1:])),
                 "ScheduleConfig.denoising_steps",
                 f"must be strictly decreasing, got {list(self.denoising_steps)}")
        if self.warp:
            _require(all(float(s).is_integer() for s in self.denoising_steps),
                     "ScheduleConfig.denoising_steps",
                     "must be whole numbers when warp=True (they index the training table)")
        _require(self.shift > 0, "ScheduleConfig.shift", f"must be > 0, got {self.shift}")
        _require(0 <= self.context_noise < T, "ScheduleConfig.context_noise",
                 f"must be in [0, {T}), got {self.context_noise}")


@dataclass(frozen=True)
class CacheConfig:
    """Paged KV cache. A page holds one latent frame's keys and values for every layer.

    ``num_pages=None`` sizes the pool for the longest request the engine is asked to run;
    ``dtype=None`` stores keys/values in the engine's compute dtype. ``window_frames`` keeps only
    the last that many latent frames (plus the first ``sink_frames``): each block attends to them
    and itself, the pages between are freed, so memory stays flat however long the video.
    Positions stay absolute — keys are cached with the RoPE of their frame, as Self-Forcing,
    LongLive and Matrix-Game 2.0 do — so sink frames keep positions 0..S-1.
    """

    num_pages: int | None = None
    dtype: str | None = None
    window_frames: int | None = None
    # Attention sink (StreamingLLM; LongLive keeps 3 latent frames): the video's first frames stay
    # in every block's context and are never evicted, however far the window has moved.
    sink_frames: int = 0
    # Block-sparse retrieval: besides sink and window, each layer attends to the ``retrieval_pages``
    # earlier frames whose mean key best matches the block's mean query, so a world can recall a
    # place it left. Frames outside the window are then kept (memory grows, attention does not).
    retrieval_pages: int = 0
    # "int8" or "fp8": pages store 8-bit keys (one scale per channel) and values (one scale per
    # token), dequantized to ``dtype`` on read — about half the bytes of bf16 (cache/quant.py)
    quantization: str | None = None
    # A memory budget for the pages, in bytes or as a fraction of the device's memory (CPU: RAM):
    # the pool gets as many pages as fit. A request that could never fit is refused with the
    # figures (over_budget="error"), given the largest sliding window that fits ("window"), or
    # run unchanged with its older frames offloaded to host memory ("offload"; cache/offload.py).
    budget_bytes: int | None = None
    budget_fraction: float | None = None
    over_budget: str = "error"

    def __post_init__(self) -> None:
        if self.window_frames is not None:
            _positive_int(self.window_frames, "CacheConfig.window_frames")
        _require(isinstance(self.sink_frames, int) and self.sink_frames >= 0, "CacheConfig.sink_frames",
                 f"must be a non-negative integer, got {self.sink_frames!r}")
        _require(self.sink_frames == 0 or self.window_frames is not None, "CacheConfig.sink_frames",
                 "needs window_frames: without a window every frame is kept anyway")
        _require(isinstance(self.retrieval_pages, int) and self.retrieval_pages >= 0, "CacheConfig.retrieval_pages",
                 f"must be a non-negative integer, got {self.retrieval_pages!r}")
        _require(self.retrieval_pages == 0 or self.window_frames is not None, "CacheConfig.retrieval_pages",
                 "needs window_frames: without a window every frame is attended anyway")
        if self.num_pages is not None:
            _positive_int(self.num_pages, "CacheConfig.num_pages")
        if self.dtype is not None:
            resolve_dtype(self.dtype, "CacheConfig.dtype")
        _require(self.quantization in (None, *KV_QUANTIZATIONS), "CacheConfig.quantization",
                 f"unknown {self.quantization!r}; accepted: {', '.join(KV_QUANTIZATIONS)} (or None)")
        if self.budget_bytes is not None:
            _positive_int(self.budget_bytes, "CacheConfig.budget_bytes")
        if self.budget_fraction is not None:
            _require(isinstance(self.budget_fraction, (int, float)) and 0 < self.budget_fraction <= 1,
                     "CacheConfig.budget_fraction", f"must be in (0, 1], got {self.budget_fraction!r}")
        budgets = [n for n in ("num_pages", "budget_bytes", "budget_fraction") if getattr(self, n) is not None]
        _require(len(budgets) <= 1, f"CacheConfig.{budgets[-1] if budgets else 'num_pages'}",
                 f"give at most one of num_pages, budget_bytes, budget_fraction (got {', '.join(budgets)})")
        _require(self.over_budget in OVER_BUDGET, "CacheConfig.over_budget",
                 f"unknown {self.over_budget!r}; accepted: {', '.join(OVER_BUDGET)}")
        _require(self.over_budget != "offload" or self.retrieval_pages == 0, "CacheConfig.over_budget",
                 "'offload' cannot be combined with retrieval_pages: retrieval scores pages that stay on the device")


AttentionMode = Literal["cache", "recompute"]


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs to run one model at one resolution."""

    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    height: int = 480
    width: int = 832
    vae_stride: tuple[int, int, int] = (4, 8, 8)
    frames_per_block: int = 3
    independent_first_frame: bool = False
    attention: AttentionMode = "cache"
    dtype: str = "bfloat16"
    device: str = "cpu"
    compile: bool = False  # torch.compile the DiT blocks (slow first block, faster after)

    def __post_init__(self) -> None:
        _positive_int(self.frames_per_block, "EngineConfig.frames_per_block")
        _require(len(self.vae_stride) == 3 and all(isinstance(s, int) and s > 0 for s in self.vae_stride),
                 "EngineConfig.vae_stride", f"must be three positive ints, got {self.vae_stride!r}")
        for name, value, axis in (("height", self.height, 1), ("width", self.width, 2)):
            _positive_int(value, f"EngineConfig.{name}")
            unit = self.vae_stride[axis] * self.model.patch_size[axis]
            _require(value % unit == 0, f"EngineConfig.{name}",
                     f"must be a multiple of {unit} (VAE stride x patch size), got {value}")
        _require(self.attention in ("cache", "recompute"), "EngineConfig.attention",
                 f"unknown mode {self.attention!r}; accepted: 'cache', 'recompute'")
        _require(self.attention == "cache" or self.cache.retrieval_pages == 0, "CacheConfig.retrieval_pages",
                 "needs attention='cache' (the recompute baseline has no pages to retrieve)")
        _require(self.attention == "cache" or self.schedule.guidance_scale == 1.0, "ScheduleConfig.guidance_scale",
                 "guidance needs attention='cache': its unconditional branch reads the conditional past from "
                 "the cache, which the recompute baseline would re-run unconditionally")
        resolve_dtype(self.dtype, "EngineConfig.dtype")
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"EngineConfig.device: {err}") from None

    @property
    def latent_height(self) -> int:
        return self.height // self.vae_stride[1]

    @property
    def latent_width(self) -> int:
        return self.width // self.vae_stride[2]

    @property
    def tokens_per_frame(self) -> int:
        return self.model.tokens_per_frame(self.latent_height, self.latent_width)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def block_sizes(self, num_latent_frames: int) -> list[int]:
        """Latent frames per block for a video of ``num_latent_frames``.

        With ``independent_first_frame`` the first block is the single first frame.
        Raises ``ValueError`` when the frames do not fill whole blocks.
        """
        _positive_int(num_latent_frames, "num_latent_frames")
        n, head = num_latent_frames, []
        if self.independent_first_frame:
            head, n = [1], n - 1
        if n % self.frames_per_block != 0:
            valid = self._valid_frame_counts()
            raise ValueError(
                f"num_latent_frames: {num_latent_frames} latent frames do not fill whole blocks of "
                f"{self.frames_per_block}{' after the independent first frame' if head else ''}; "
                f"accepted values are {valid}, ..."
            )
        return head + [self.frames_per_block] * (n // self.frames_per_block)

    def continuation_block_sizes(self, num_latent_frames: int) -> list[int]:
        """Blocks generated after a committed prefix: whole blocks of ``frames_per_block``."""
        _positive_int(num_latent_frames, "num_latent_frames")
        if num_latent_frames % self.frames_per_block:
            raise ValueError(f"num_latent_frames: {num_latent_frames} latent frames after a prefix do not fill "
                             f"whole blocks of {self.frames_per_block}")
        return [self.frames_per_block] * (num_latent_frames // self.frames_per_block)

    def _valid_frame_counts(self) -> str:
        first = 1 if self.independent_first_frame else 0
        return ", ".join(str(first + k * self.frames_per_block) for k in range(1, 5))

