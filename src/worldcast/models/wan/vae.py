"""Wan2.1 causal video VAE with an explicit, persistent causal-conv state.

Module and parameter names follow the official ``Wan2.1_VAE.pth`` (194 tensors), so it loads
with a strict ``load_state_dict``.

Causality. Every temporal convolution sees only the current and earlier frames. Wan processes a
video in chunks — encode: frame 0, then 4 frames at a time; decode: one latent frame at a time —
and carries, per temporal conv, the last ``CACHE_T`` = 2 frames of that conv's input into the next
chunk. Here that carry lives in a ``CausalState`` (one slot per caching layer, numbered once at
construction), not in a list threaded through ``forward``. Keeping the state between calls is
what makes streaming decode exact: 21 latent frames give 81 pixel frames whether decoded at once
or block by block (9 frames for the first 3-latent block, 12 for each later one).

First chunk. The temporal up/down-sampling layers pass the very first frame through without
their time conv, which is why 1 latent frame decodes to 1 pixel frame and 1 + 4k pixel frames
encode to 1 + k latent frames. Later chunks run the time conv with zero history (upsampling) or
with the first frame as history (downsampling).

Frame-wise VAEs and time packing (not in Wan; for small world models). With
``temporal_kernel=1`` and no temporal downsampling every convolution sees one frame: the VAE is
an image autoencoder in Wan's layout, frames are independent, and nothing is carried between
chunks. ``time_pack=p`` then stacks p consecutive latent frames along the channels (frame 0 is
stacked with copies of itself), a lossless 1 + pk -> 1 + k compression in time, so the model
downstream sees ``z_dim * p`` channels and a temporal stride of p.

Shapes: B batch, C channels, T frames, H/W pixels; h/w latent (H/8, W/8). Pixels in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

CACHE_T = 2

# Per-channel statistics of Wan2.1 latents (the official VAE's normalisation).
WAN21_LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                     0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)


@dataclass(frozen=True)
class VAEConfig:
    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    temporal_kernel: int = 3  # 1: a frame-wise VAE (every conv sees one frame)
    time_pack: int = 1  # latent frames stacked along channels (see the module docstring)
    latent_mean: tuple[float, ...] = WAN21_LATENT_MEAN
    latent_std: tuple[float, ...] = WAN21_LATENT_STD

    def __post_init__(self) -> None:
        for name in ("dim", "z_dim", "num_res_blocks", "time_pack"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"VAEConfig.{name}: must be a positive integer, got {value!r}")
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError(f"VAEConfig.temporal_downsample: needs {len(self.dim_mult) - 1} entries "
                             f"(one per downsampling stage), got {len(self.temporal_downsample)}")
        if self.temporal_kernel not in (1, 3):
            raise ValueError(f"VAEConfig.temporal_kernel: must be 3 (Wan) or 1 (frame-wise), "
                             f"got {self.temporal_kernel!r}")
        if self.temporal_kernel == 1 and any(self.temporal_downsample):
            raise ValueError("VAEConfig.temporal_downsample: a frame-wise VAE (temporal_kernel=1) cannot downsample "
                             "time; compress it with time_pack instead")
        if len(self.latent_mean) != self.z_dim or len(self.latent_std) != self.z_dim:
            raise ValueError(f"VAEConfig.latent_mean/latent_std: need {self.z_dim} values each")
        if any(s <= 0 for s in self.latent_std):
            raise ValueError("VAEConfig.latent_std: must be positive")

    @property
    def temporal_compression(self) -> int:
        """Pixel frames per latent frame of the convolutions (before time packing)."""
        return 2 ** sum(self.temporal_downsample)

    @property
    def temporal_stride(self) -> int:
        """Pixel frames per latent frame as the model downstream sees them."""
        return self.temporal_compression * self.time_pack

    @property
    def spatial_stride(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def frame_wise(self) -> bool:
        """Every convolution sees one frame (validation rules out temporal downsampling then)."""
        return self.temporal_kernel == 1

    @property
    def latent_channels(self) -> int:
        """Channels of a latent frame as the model downstream sees them."""
        return self.z_dim * self.time_pack


def pack_time(z: torch.Tensor, pack: int) -> torch.Tensor:
    """(B, C, 1 + pack*k, h, w) -> (B, pack*C, 1 + k, h, w): frame 0 stacked with copies of
    itself, then every ``pack`` consecutive frames stacked along channels (frame-major)."""
    if pack == 1:
        return z
    B, C, T, h, w = z.shape
    first = z[:, :, :1].repeat(1, pack, 1, 1, 1)  # (B, pack*C, 1, h, w)
    rest = z[:, :, 1:].reshape(B, C, (T - 1) // pack, pack, h, w).permute(0, 3, 1, 2, 4, 5)
    return torch.cat([first, rest.reshape(B, pack * C, (T - 1) // pack, h, w)], dim=2)


def unpack_time(z: torch.Tensor, pack: int, first: bool) -> torch.Tensor:
    """Inverse of ``pack_time`` for a stretch of a video: (B, pack*C, k, h, w) -> (B, C, T, h, w)
    with T = pack*k, or 1 + pack*(k - 1) when the stretch starts the video (``first``)."""
    if pack == 1:
        return z
    B, PC, k, h, w = z.shape
    frames = z.reshape(B, pack, PC // pack, k, h, w).permute(0, 2, 3, 1, 4, 5).reshape(B, PC // pack, k * pack, h, w)
    return frames[:, :, pack - 1:] if first else frames  # the video's first frame: its last copy


# ---------------------------------------------------------------------------------------------
# 1. Causal state
# ---------------------------------------------------------------------------------------------

@dataclass
class CausalState:
    """What each caching layer carries from one chunk to the next (``None``: nothing seen yet)."""

    slots: list[torch.Tensor | None]

    @classmethod
    def empty(cls, num_slots: int) -> CausalState:
        return cls([None] * num_slots)


def _carry(x: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """The last CACHE_T frames of ``x``, topped up from ``previous`` when ``x`` is shorter."""
    carry = x[:, :, -CACHE_T:]
    if carry.shape[2] < CACHE_T and previous is not None:
        carry = torch.cat([previous[:, :, -1:], carry], dim=2)
    return carry.clone()  # a copy: a view would keep the whole chunk alive


class CausalConv3d(nn.Conv3d):
    """Conv3d padded in time only at the front (2 * pad frames), so outputs never see the future.

    With a state, the front padding is (partly) replaced by the frames carried from the previous
    chunk. Spatial padding is symmetric.
    """

    slot: int | None = None  # assigned by ``number_slots`` when the conv has temporal history

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        pt, ph, pw = self.padding
        self._pad = (pw, pw, ph, ph, 2 * pt, 0)
        self.padding = (0, 0, 0)

    @property
    def has_history(self) -> bool:
        return self._pad[4] > 0

    def forward(self, x: torch.Tensor, state: CausalState | None = None) -> torch.Tensor:
        pad = list(self._pad)
        if state is not None and self.has_history:
            previous = state.slots[self.slot]
            carry = _carry(x, previous)
            if previous is not None:
                x = torch.cat([previous.to(x.dtype), x], dim=2)
                pad[4] -= previous.shape[2]
            state.slots[self.slot] = carry
        return super().forward(F.pad(x, pad))


class RMSNorm(nn.Module):
    """L2-normalise over channels, times sqrt(C) and a learned per-channel gain."""

    def __init__(self, dim: int, images: bool) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, 1, 1) if images else torch.ones(dim, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same value as F.normalize(x, dim=1) (eps 1e-12 on the norm), ~5x faster on CPU: the
        # strided channel reduction of linalg.vector_norm dominated VAE training.
        inv_norm = torch.rsqrt(x.pow(2).sum(dim=1, keepdim=True).clamp_min(1e-24))
        return x * inv_norm * self.scale * self.gamma


class Upsample2x(nn.Upsample):
    """Nearest 2x spatial upsampling, computed in float32."""

    def __init__(self) -> None:
        super().__init__(scale_factor=(2.0, 2.0), mode="nearest-exact")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type_as(x)


def _per_frame(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame: (B, C, T, H, W) -> (B, C', T, H', W')."""
    B, _, T = x.shape[:3]
    y = fn(x.transpose(1, 2).flatten(0, 1))  # (B*T, C', H', W')
    return y.view(B, T, *y.shape[1:]).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# 2. Blocks
# ---------------------------------------------------------------------------------------------

class Resample(nn.Module):
    """Spatial 2x up/down sampling, optionally with 2x temporal up/down sampling."""

    slot: int | None = None  # temporal downsampling keeps its own one-frame history

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode.startswith("upsample"):
            self.resample = nn.Sequential(Upsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        elif mode.startswith("downsample"):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        else:
            raise ValueError(f"Resample mode: unknown {mode!r}")
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        if self.mode == "upsample3d":
            x = self._upsample_time(x, state)
        x = _per_frame(self.resample, x)
        if self.mode == "downsample3d":
            x = self._downsample_time(x, state)
        return x

    def _upsample_time(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        slot = self.time_conv.slot
        if state.slots[slot] is None:
            # First chunk: frames pass through; the time conv's history starts as zeros.
            state.slots[slot] = x.new_zeros((*x.shape[:2], CACHE_T, *x.shape[3:]))
            return x
        y = self.time_conv(x, state)  # (B, 2C, T, H, W)
        B, C2, T, H, W = y.shape
        # Channel halves are the even and odd output frames: (B, 2, C, T) -> (B, C, T, 2) -> 2T.
        return y.view(B, 2, C2 // 2, T, H, W).permute(0, 2, 3, 1, 4, 5).reshape(B, C2 // 2, 2 * T, H, W)

    def _downsample_time(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        previous = state.slots[self.slot]
        state.slots[self.slot] = x[:, :, -1:].clone()
        if previous is None:
            return x  # first chunk (one frame): passes through
        return self.time_conv(torch.cat([previous, x], dim=2))  # stride 2: 1 + 2n frames -> n


def _conv3(in_dim: int, out_dim: int, temporal_kernel: int) -> CausalConv3d:
    """3x3 in space, ``temporal_kernel`` (3 or 1) causal frames in time."""
    return CausalConv3d(in_dim, out_dim, (temporal_kernel, 3, 3), padding=(temporal_kernel // 2, 1, 1))


class ResidualBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, temporal_kernel: int = 3) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim, images=False), nn.SiLU(), _conv3(in_dim, out_dim, temporal_kernel),
            RMSNorm(out_dim, images=False), nn.SiLU(), nn.Dropout(0.0),
            _conv3(out_dim, out_dim, temporal_kernel))
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        h = self.shortcut(x)
        for layer in self.residual:
            x = layer(x, state) if isinstance(layer, CausalConv3d) else layer(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over each frame's pixels (no temporal mixing)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        return x + _per_frame(self._attend, x)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        qkv = self.to_qkv(self.norm(x)).view(N, 3 * C, H * W).transpose(1, 2)  # (N, HW, 3C)
        q, k, v = qkv.unsqueeze(1).chunk(3, dim=-1)  # (N, 1, HW, C) each
        out = F.scaled_dot_product_attention(q, k, v)[:, 0]  # (N, HW, C)
        return self.proj(out.transpose(1, 2).reshape(N, C, H, W))


def _run(layers: nn.Sequential, x: torch.Tensor, state: CausalState) -> torch.Tensor:
    for layer in layers:
        x = layer(x, state)
    return x


class Head(nn.Sequential):
    def __init__(self, in_dim: int, out_dim: int, temporal_kernel: int = 3) -> None:
        super().__init__(RMSNorm(in_dim, images=False), nn.SiLU(), _conv3(in_dim, out_dim, temporal_kernel))

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        return self[2](self[1](self[0](x)), state)


# ---------------------------------------------------------------------------------------------
# 3. Encoder and decoder
# ---------------------------------------------------------------------------------------------

class Encoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        kt = cfg.temporal_kernel
        self.conv1 = _conv3(3, dims[0], kt)
        layers: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(in_dim, out_dim, kt))
                in_dim = out_dim
            if i < len(cfg.dim_mult) - 1:
                layers.append(Resample(out_dim, "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"))
        self.downsamples = nn.Sequential(*layers)
        self.middle = nn.Sequential(ResidualBlock(dims[-1], dims[-1], kt), AttentionBlock(dims[-1]),
                                    ResidualBlock(dims[-1], dims[-1], kt))
        self.head = Head(dims[-1], cfg.z_dim * 2, kt)

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        x = self.conv1(x, state)
        x = _run(self.middle, _run(self.downsamples, x, state), state)
        return self.head(x, state)


class Decoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        mult = cfg.dim_mult
        dims = [cfg.dim * m for m in (mult[-1], *mult[::-1])]
        temporal_upsample = cfg.temporal_downsample[::-1]
        kt = cfg.temporal_kernel
        self.conv1 = _conv3(cfg.z_dim, dims[0], kt)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0], kt), AttentionBlock(dims[0]),
                                    ResidualBlock(dims[0], dims[0], kt))
        layers: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim //= 2  # the previous Resample halved the channels
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResidualBlock(in_dim, out_dim, kt))
                in_dim = out_dim
            if i < len(mult) - 1:
                layers.append(Resample(out_dim, "upsample3d" if temporal_upsample[i] else "upsample2d"))
        self.upsamples = nn.Sequential(*layers)
        self.head = Head(dims[-1], 3, kt)

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        x = _run(self.middle, self.conv1(x, state), state)
        return self.head(_run(self.upsamples, x, state), state)


def number_slots(module: nn.Module) -> int:
    """Give every layer that carries history a fixed slot index (definition order); return the count."""
    count = 0
    for sub in module.modules():
        carries = (isinstance(sub, CausalConv3d) and sub.has_history) or (
            isinstance(sub, Resample) and sub.mode == "downsample3d")
        if carries:
            sub.slot, count = count, count + 1
    return count


# ---------------------------------------------------------------------------------------------
# 4. The VAE
# ---------------------------------------------------------------------------------------------

@dataclass
class DecodeState:
    """Streaming-decode state of one video: carry it from block to block."""

    causal: CausalState
    latent_frames: int = 0
    pixel_frames: int = 0


class WanVAE(nn.Module):
    """Encoder, decoder and the 1x1 convs between them, with latent normalisation."""

    def __init__(self, config: VAEConfig = VAEConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder3d(config)
        self.conv1 = CausalConv3d(config.z_dim * 2, config.z_dim * 2, 1)
        self.conv2 = CausalConv3d(config.z_dim, config.z_dim, 1)
        self.decoder = Decoder3d(config)
        self._encoder_slots = number_slots(self.encoder)
        self._decoder_slots = number_slots(self.decoder)
        stats = torch.tensor([config.latent_mean, config.latent_std], dtype=torch.float32)
        self.register_buffer("latent_stats", stats.view(2, 1, config.z_dim, 1, 1, 1), persistent=False)

    def to_channels_last(self) -> WanVAE:
        """Store conv weights channels-last: oneDNN's fastest CPU convolution layout (about 1.1x
        in float32 and 1.5x in bfloat16 on our CPU; same function, different summation order)."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
            elif isinstance(module, nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
        return self

    @property
    def temporal_stride(self) -> int:
        return self.config.temporal_stride

    @property
    def spatial_stride(self) -> int:
        return self.config.spatial_stride

    def pixel_frames(self, latent_frames: int) -> int:
        return 1 + self.temporal_stride * (latent_frames - 1)

    def latent_frames(self, pixel_frames: int) -> int:
        if pixel_frames < 1 or (pixel_frames - 1) % self.temporal_stride:
            s = self.temporal_stride
            raise ValueError(f"frames: {pixel_frames} is not 1 + {s}k (e.g. 1, {1 + s}, {1 + 4 * s}, 81)")
        return 1 + (pixel_frames - 1) // self.temporal_stride

    # -- decode ---------------------------------------------------------------------------------
    def new_decode_state(self) -> DecodeState:
        return DecodeState(CausalState.empty(self._decoder_slots))

    @torch.inference_mode()
    def decode_block(self, latents: torch.Tensor, state: DecodeState) -> torch.Tensor:
        """Normalised latents (B, z * time_pack, t, h, w) -> pixels (B, 3, T, H, W) in [-1, 1],
        continuing the video held in ``state``. The video's first latent frame gives 1 pixel
        frame, every later one ``temporal_stride`` frames. Decodes one latent frame at a time,
        which bounds peak memory to one frame's activations at full resolution (a frame-wise
        VAE: the whole stretch at once)."""
        frames = list(self._decode_frames(latents, state))
        return torch.cat(frames, dim=2).clamp_(-1, 1)

    @property
    def frame_wise(self) -> bool:
        """Every frame encodes and decodes on its own: no layer carries history."""
        return self.config.frame_wise

    def _decode_frames(self, latents: torch.Tensor, state: DecodeState) -> Iterator[torch.Tensor]:
        mean, std = self.latent_stats.to(latents.device)
        dtype = self.conv2.weight.dtype
        frames = unpack_time(latents, self.config.time_pack, first=state.latent_frames == 0)  # (B, z, T, h, w)
        state.latent_frames += latents.shape[2]
        z = self.conv2((frames.float() / (1.0 / std) + mean).to(dtype))  # Wan's exact form
        # a frame-wise VAE carries nothing between frames: the whole stretch in one call
        for chunk in [z] if self.frame_wise else z.split(1, dim=2):
            out = self.decoder(chunk, state.causal)
            state.pixel_frames += out.shape[2]
            yield out.float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """A whole video at once (a fresh state)."""
        return self.decode_block(latents, self.new_decode_state())

    # -- encode ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels (B, 3, 1 + sk, H, W) in [-1, 1] -> normalised latent means
        (B, z * time_pack, 1 + k, h, w), s the temporal stride."""
        mu, _ = self.encode_distribution(video)
        mean, std = self.latent_stats.to(mu.device)
        return pack_time((mu - mean) * (1.0 / std), self.config.time_pack)  # Wan's exact form

    def encode_distribution(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Un-normalised posterior (mean, log-variance) of the VAE's own latent frames (not
        time-packed), each (B, z, 1 + k, h, w), with autograd (training). Frame 0 is encoded
        alone, then ``temporal_compression`` frames at a time, carrying the causal state (a
        frame-wise VAE: all frames at once)."""
        T = video.shape[2]
        self.latent_frames(T)  # validates 1 + 4k
        state = CausalState.empty(self._encoder_slots)
        dtype = self.conv1.weight.dtype
        if self.frame_wise or T == 1:
            chunks = [video]
        else:
            chunks = [video[:, :, :1], *video[:, :, 1:].split(self.config.temporal_compression, dim=2)]
        out = torch.cat([self.encoder(c.to(dtype), state) for c in chunks], dim=2)
        mu, log_var = self.conv1(out).float().chunk(2, dim=1)
        return mu, log_var

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Un-normalised latents of the VAE's own frames (not time-packed) -> pixels, unclamped,
        with autograd (training)."""
        state = self.new_decode_state()
        x = self.conv2(z.to(self.conv2.weight.dtype))
        chunks = [x] if self.frame_wise else x.split(1, dim=2)
        return torch.cat([self.decoder(chunk, state.causal) for chunk in chunks], dim=2)


class VAEFrameDecoder:
    """The engine's decoder: one session's latent blocks -> uint8 RGB frames, streaming."""

    def __init__(self, vae: WanVAE) -> None:
        self.vae = vae

    def new_state(self) -> DecodeState:
        return self.vae.new_decode_state()

    @staticmethod
    def export_state(state: DecodeState) -> dict:
        """The streaming state as plain data (a snapshot)."""
        return {"slots": [None if t is None else t.cpu() for t in state.causal.slots],
                "latent_frames": state.latent_frames, "pixel_frames": state.pixel_frames}

    def import_state(self, data: dict) -> DecodeState:
        device = self.vae.conv2.weight.device
        slots = [None if t is None else t.to(device) for t in data["slots"]]
        return DecodeState(CausalState(slots), data["latent_frames"], data["pixel_frames"])

    def decode_block(self, latents: torch.Tensor, state: DecodeState) -> torch.Tensor:
        """(C, f, h, w) latents -> (n, H, W, 3) uint8 frames."""
        weight = self.vae.conv2.weight
        pixels = self.vae.decode_block(latents[None].to(weight.device), state)[0]  # (3, n, H, W)
        return ((pixels + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).cpu()
