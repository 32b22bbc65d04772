"""Wan2.1-architecture causal DiT with per-frame timesteps.

Module and parameter names follow the official Wan2.1 state dict, so an official checkpoint
loads with ``load_state_dict`` after stripping a wrapper prefix (see ``docs/checkpoints.md``):

    patch_embedding                      Conv3d(in_dim, dim, patch, stride=patch)
    text_embedding.{0,2}                 Linear(text_dim, dim) -> GELU(tanh) -> Linear(dim, dim)
    time_embedding.{0,2}                 Linear(freq_dim, dim) -> SiLU -> Linear(dim, dim)
    time_projection.1                    SiLU -> Linear(dim, 6 * dim)
    blocks.N.norm1 / norm2               LayerNorm, no affine
    blocks.N.self_attn.{q,k,v,o}         Linear(dim, dim); norm_q / norm_k RMSNorm(dim)
    blocks.N.norm3                       LayerNorm with affine (cross_attn_norm)
    blocks.N.cross_attn.{q,k,v,o}        Linear(dim, dim); norm_q / norm_k RMSNorm(dim)
    blocks.N.ffn.{0,2}                   Linear(dim, ffn_dim) -> GELU(tanh) -> Linear(ffn_dim, dim)
    blocks.N.modulation                  (1, 6, dim)
    head.head, head.modulation           Linear(dim, out_dim * prod(patch)), (1, 2, dim)
    action_embedding.{0,2}               (only with num_actions > 0, not in Wan) one-hot actions of a
                                         latent frame -> Linear -> SiLU -> Linear(dim, dim), added to
                                         the time embedding (so it modulates every block and the head);
                                         action id NULL_ACTION (-1) is "no action information", an
                                         all-zero one-hot (dropped in training, guidance's
                                         unconditional branch at inference)

Precision: weights of the large linears are in the compute dtype; norms, modulation, the time
MLP and the residual stream run in float32 (as Wan does under its float32 autocast regions).

Shapes: B batch, C latent channels, F latent frames, S tokens per frame, T = F * S tokens,
H heads, D head dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldcast.config import ModelConfig
from worldcast.models.attention import KVSource, LayerKV, attention

FP32_PARAM_SUFFIXES = ("modulation", "norm3.weight", "norm3.bias", "norm_q.weight", "norm_k.weight")
FP32_MODULES = ("time_embedding", "time_projection", "action_embedding")
NULL_ACTION = -1  # an action id meaning "no action information" (see the module docstring)


# ---------------------------------------------------------------------------------------------
# 1. Small pieces: norms, timestep embedding, 3D RoPE
# ---------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight.to(x.dtype)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype; returns float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape,
                            None if self.weight is None else self.weight.float(),
                            None if self.bias is None else self.bias.float(), self.eps)


class GELUTanh(nn.Module):
    """GELU with the tanh approximation (Wan's ``nn.GELU(approximate="tanh")``).

    Under ``torch.compile`` it is written as x * sigmoid(2z), z = sqrt(2/pi)(x + 0.044715x^3),
    the same function (0.5(1 + tanh z) = sigmoid 2z): inductor lowers sigmoid through its
    vectorised exp, ~3x faster than its tanh on CPU, and GELU over the FFN's 4-6x wider
    activations otherwise costs as much as a large matmul. Not x / (1 + exp(-2z)): for
    x below about -10 exp(-2z) overflows, and its gradient, inf / inf, is NaN — which made a
    growing share of compiled training steps non-finite.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            return F.gelu(x, approximate="tanh")
        xf = x.float()
        z = math.sqrt(2 / math.pi) * (xf + 0.044715 * xf * xf * xf)
        return (xf * torch.sigmoid(2 * z)).to(x.dtype)


def _onednn_linear_gelu_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


_ONEDNN_LINEAR_GELU = _onednn_linear_gelu_available()


# An opaque op to torch.compile: inductor lowers mkldnn's fused linear only for frozen
# (constant) weights, and freezing would compile each of the 30 blocks separately.
@torch.library.custom_op("worldcast::onednn_linear_gelu_tanh", mutates_args=())
def _onednn_linear_gelu_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "tanh")


@_onednn_linear_gelu_tanh.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def linear_gelu_tanh(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """GELU-tanh(linear(x)). On CPU in bf16, one oneDNN matmul with GELU as its epilogue (the
    separate GELU pass over the FFN's wide activation costs a fifth of the matmul); elsewhere
    the plain composition."""
    if _ONEDNN_LINEAR_GELU and x.device.type == "cpu" and x.dtype == torch.bfloat16:
        return _onednn_linear_gelu_tanh(x, linear.weight, linear.bias)
    return GELUTanh()(linear(x))


def sinusoidal_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) timesteps -> (N, dim) float32 as [cos | sin], frequencies 10000^(-i / (dim/2))."""
    half = dim // 2
    t = timesteps.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    angles = torch.outer(t, freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).float()


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Complex (pair) counts for the frame, height and width axes: Wan's d-4(d//6), 2(d//6), 2(d//6)."""
    pairs = head_dim // 2
    hw = pairs // 3
    return pairs - 2 * hw, hw, hw


def rope_angles(max_positions: int, pairs: int, theta: float) -> torch.Tensor:
    """(max_positions, pairs) float64 angles p * theta^(-2i / (2 * pairs)), on the CPU (also when
    the model is built on the meta device for loading)."""
    inv = 1.0 / torch.pow(theta, torch.arange(0, 2 * pairs, 2, dtype=torch.float64, device="cpu") / (2 * pairs))
    return torch.outer(torch.arange(max_positions, dtype=torch.float64, device="cpu"), inv)


@dataclass(frozen=True)
class Rope:
    cos: torch.Tensor  # (T, D/2) float32, or (B, T, D/2) when positions differ per sample
    sin: torch.Tensor  # same shape as cos


def apply_rope(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) of (B, T, H, D) by the per-token angles."""
    B, T, H, D = x.shape
    pairs = x.float().view(B, T, H, D // 2, 2)
    a, b = pairs[..., 0], pairs[..., 1]  # (B, T, H, D/2)
    cos, sin = rope.cos.unsqueeze(-2), rope.sin.unsqueeze(-2)  # broadcast over heads (and batch)
    rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return rotated.view(B, T, H, D).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# 2. Attention modules
# ---------------------------------------------------------------------------------------------

@torch.compiler.disable
def _attend(kv: LayerKV, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Cache reads/writes run eagerly: a compiled block must not trace (or guard on) page tables."""
    return kv.attend(q, k, v)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.q, self.k, self.v, self.o = (nn.Linear(cfg.dim, cfg.dim) for _ in range(4))
        self.norm_q = RMSNorm(cfg.dim, cfg.eps) if cfg.qk_norm else nn.Identity()
        self.norm_k = RMSNorm(cfg.dim, cfg.eps) if cfg.qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, rope: Rope, kv: LayerKV) -> torch.Tensor:
        B, T, _ = x.shape
        shape = (B, T, self.num_heads, self.head_dim)
        q = apply_rope(self.norm_q(self.q(x)).view(shape), rope)
        k = apply_rope(self.norm_k(self.k(x)).view(shape), rope)
        v = self.v(x).view(shape)
        return self.o(_attend(kv, q, k, v).flatten(2))  # (B, T, dim)


class CrossAttention(nn.Module):
    """Attention from video tokens to text tokens; text keys/values come precomputed."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.q, self.k, self.v, self.o = (nn.Linear(cfg.dim, cfg.dim) for _ in range(4))
        self.norm_q = RMSNorm(cfg.dim, cfg.eps) if cfg.qk_norm else nn.Identity()
        self.norm_k = RMSNorm(cfg.dim, cfg.eps) if cfg.qk_norm else nn.Identity()

    def text_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, L, _ = context.shape
        shape = (B, L, self.num_heads, self.head_dim)
        return self.norm_k(self.k(context)).view(shape), self.v(context).view(shape)

    def forward(self, x: torch.Tensor, text_kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.norm_q(self.q(x)).view(B, T, self.num_heads, self.head_dim)
        return self.o(attention(q, *text_kv).flatten(2))


# ---------------------------------------------------------------------------------------------
# 3. Transformer block and output head
# ---------------------------------------------------------------------------------------------

def modulate(h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """h (B, F, S, dim) float32; shift/scale (B, F, 1, dim): one modulation per latent frame."""
    return h * (1 + scale) + shift


class DiTBlock(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1 = LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(cfg)
        self.norm3 = LayerNorm(cfg.dim, cfg.eps, elementwise_affine=True) if cfg.cross_attn_norm \
            else nn.Identity()
        self.cross_attn = CrossAttention(cfg)
        self.norm2 = LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, cfg.ffn_dim), GELUTanh(),
                                 nn.Linear(cfg.ffn_dim, cfg.dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, cfg.dim) / cfg.dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor, rope: Rope, kv: LayerKV,
                text_kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """x (B, F, S, dim) float32 residual stream; e (B, F, 6, dim) float32."""
        B, Fr, S, dim = x.shape
        dtype = self.ffn[0].weight.dtype
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation.float()[:, None] + e).chunk(6, dim=2)

        # 1. self-attention (block-causal through ``kv``)
        h = modulate(self.norm1(x), shift1, scale1).to(dtype).view(B, Fr * S, dim)
        x = x + self.self_attn(h, rope, kv).float().view(B, Fr, S, dim) * gate1

        # 2. cross-attention to the prompt (no modulation)
        h = self.norm3(x.view(B, Fr * S, dim)).to(dtype)
        x = x + self.cross_attn(h, text_kv).float().view(B, Fr, S, dim)

        # 3. feed-forward
        h = modulate(self.norm2(x), shift2, scale2).to(dtype).view(B, Fr * S, dim)
        y = self.ffn[2](linear_gelu_tanh(h, self.ffn[0]))  # == self.ffn(h)
        return x + y.float().view(B, Fr, S, dim) * gate2


class Head(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm = LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, cfg.out_dim * math.prod(cfg.patch_size))
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x (B, F, S, dim) float32, e (B, F, dim) float32 -> (B, F, S, out * prod(patch))."""
        shift, scale = (self.modulation.float()[:, None] + e[:, :, None]).chunk(2, dim=2)
        return self.head(modulate(self.norm(x), shift, scale).to(self.head.weight.dtype))


# ---------------------------------------------------------------------------------------------
# 4. The model
# ---------------------------------------------------------------------------------------------

@dataclass
class TextContext:
    """Per-layer cross-attention keys/values for one prompt, computed once and reused."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (B, text_len, H, D) each


class CausalWanDiT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.patch_embedding = nn.Conv3d(cfg.in_dim, cfg.dim, kernel_size=cfg.patch_size,
                                         stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, cfg.dim),
                                            GELUTanh(), nn.Linear(cfg.dim, cfg.dim))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, cfg.dim), nn.SiLU(),
                                            nn.Linear(cfg.dim, cfg.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 6 * cfg.dim))
        if cfg.num_actions:
            self.action_embedding = nn.Sequential(
                nn.Linear(cfg.actions_per_frame * cfg.num_actions, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.num_layers))
        self.head = Head(cfg)
        frame_pairs, h_pairs, w_pairs = rope_axis_dims(cfg.head_dim)
        self._rope_tables = [rope_angles(cfg.rope_max_positions, n, cfg.rope_theta)
                             for n in (frame_pairs, h_pairs, w_pairs)]

    # -- precision ------------------------------------------------------------------------------
    def to_inference_dtype(self, dtype: torch.dtype) -> CausalWanDiT:
        """Cast the large weights to ``dtype``; keep small, precision-sensitive ones in float32."""
        self.to(dtype)
        for name, param in self.named_parameters():
            if name.split(".")[0] in FP32_MODULES or name.endswith(FP32_PARAM_SUFFIXES):
                param.data = param.data.float()
        return self

    def compile_blocks(self) -> CausalWanDiT:
        """``torch.compile`` each transformer block (one graph shared by all blocks; attention
        stays eager). Fuses the norm/modulation/GELU/gating work between the matmuls."""
        for block in self.blocks:
            block.compile()
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.patch_embedding.weight.device

    # -- inputs ---------------------------------------------------------------------------------
    def encode_text(self, embeddings: torch.Tensor) -> TextContext:
        """Text-encoder output (B, L, text_dim), L <= text_len, real tokens first.

        Zero-padded to ``text_len`` before the text MLP; the cross-attention then attends to all
        ``text_len`` positions, exactly as Wan2.1 text-to-video does.
        """
        B, L, _ = embeddings.shape
        padded = embeddings.new_zeros(B, self.config.text_len, self.config.text_dim)
        padded[:, :L] = embeddings
        context = self.text_embedding(padded.to(self.device, self.dtype))
        return TextContext([block.cross_attn.text_kv(context) for block in self.blocks])

    def rope(self, frame_offset: int, frames: int, height: int, width: int,
             camera: torch.Tensor | None = None) -> Rope:
        """Per-token angles for tokens ordered (frame, row, col), frames starting at ``frame_offset``;
        with ``camera`` (B, frames, 2), each frame's row/col positions are offset by its camera
        position (in tokens, fractions allowed), giving (B, T, D/2) angles."""
        f_tab, h_tab, w_tab = self._rope_tables
        if frame_offset + frames > f_tab.shape[0]:
            raise ValueError(f"frame position {frame_offset + frames} exceeds rope_max_positions="
                             f"{f_tab.shape[0]}")
        frame_angles = f_tab[frame_offset:frame_offset + frames, None, None].expand(frames, height, width, -1)
        if camera is None:
            angles = torch.cat([
                frame_angles,
                h_tab[None, :height, None].expand(frames, height, width, -1),
                w_tab[None, None, :width].expand(frames, height, width, -1),
            ], dim=-1).reshape(frames * height * width, -1)  # (T, D/2)
        else:
            angles = self._camera_angles(frame_angles, camera, height, width)
        return Rope(angles.cos().float().to(self.device), angles.sin().float().to(self.device))

    def _camera_angles(self, frame_angles: torch.Tensor, camera: torch.Tensor, height: int,
                       width: int) -> torch.Tensor:
        """(F, h, w, frame pairs) frame angles + (B, F, 2) camera -> (B, T, D/2) angles: the row and
        column tables' frequencies (their position-1 rows) times the shifted positions."""
        _, h_tab, w_tab = self._rope_tables
        B, frames = camera.shape[:2]
        if camera.shape != (B, frame_angles.shape[0], 2):
            raise ValueError(f"camera: expected (batch, {frame_angles.shape[0]}, 2) positions, "
                             f"got {tuple(camera.shape)}")
        camera = camera.detach().to("cpu", torch.float64)
        rows = torch.arange(height, dtype=torch.float64)[None, None] + camera[..., 0:1]  # (B, F, h)
        cols = torch.arange(width, dtype=torch.float64)[None, None] + camera[..., 1:2]  # (B, F, w)
        shape = (B, frames, height, width, -1)
        return torch.cat([
            frame_angles[None].expand(shape),
            (rows[..., None] * h_tab[1])[:, :, :, None].expand(shape),
            (cols[..., None] * w_tab[1])[:, :, None, :].expand(shape),
        ], dim=-1).reshape(B, frames * height * width, -1)

    def camera_path(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, L, actions_per_frame) action ids of a video's latent frames from its first ->
        (B, L, 2) float64 camera (row, col) position at each, in tokens (``ModelConfig.action_camera``;
        NULL_ACTION moves nothing). Only differences between frames matter: RoPE is relative."""
        if not self.config.action_camera:
            raise ValueError("camera_path: this model's RoPE does not follow the camera (ModelConfig.action_camera)")
        table = torch.tensor(self.config.action_camera, dtype=torch.float64)  # (A, 2)
        ids = actions.to("cpu", torch.long)
        moves = table[ids.clamp_min(0)] * (ids >= 0)[..., None]  # (B, L, k, 2)
        return moves.sum(2).cumsum(1)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, H, W) -> (B, F, S, dim): the Conv3d patch embedding written as one matmul."""
        B, C, Fr, H, W = x.shape
        pt, ph, pw = self.config.patch_size
        h, w = H // ph, W // pw
        patches = x.view(B, C, Fr // pt, pt, h, ph, w, pw).permute(0, 2, 4, 6, 1, 3, 5, 7)
        weight = self.patch_embedding.weight.flatten(1)  # (dim, C * pt * ph * pw)
        tokens = F.linear(patches.reshape(B, Fr * h * w, -1).to(weight.dtype), weight,
                          self.patch_embedding.bias)
        return tokens.view(B, Fr, h * w, -1)

    def unpatchify(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, F, S, out * pt * ph * pw) -> (B, out, F * pt, H, W), patch vector ordered (pt, ph, pw, c)."""
        B, Fr, S, _ = tokens.shape
        pt, ph, pw = self.config.patch_size
        h, w = height // ph, width // pw
        x = tokens.view(B, Fr, h, w, pt, ph, pw, self.config.out_dim)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(B, self.config.out_dim, Fr * pt, height, width)

    def time_conditioning(self, timesteps: torch.Tensor,
                          actions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) timesteps [and (B, F, actions_per_frame) action ids] -> e (B, F, dim) and
        e0 (B, F, 6, dim), float32."""
        B, Fr = timesteps.shape
        sin = sinusoidal_embedding(timesteps.flatten(), self.config.freq_dim).to(self.device)
        e = self.time_embedding(sin).view(B, Fr, -1)
        if self.config.num_actions:
            if actions is None:  # no action given: "none" (id 0) throughout
                actions = torch.zeros(B, Fr, self.config.actions_per_frame, dtype=torch.long)
            ids = actions.to(self.device)
            onehot = F.one_hot(ids.clamp_min(0), self.config.num_actions) * (ids >= 0)[..., None]  # NULL_ACTION: 0
            onehot = onehot.flatten(2).float()
            e = e + self.action_embedding(onehot)
        e0 = self.time_projection(e).view(B, Fr, 6, self.config.dim)
        return e, e0

    # -- forward --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, text: TextContext,
                kv: KVSource, frame_offset: int = 0, actions: torch.Tensor | None = None,
                camera: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the flow for latents ``x`` (B, C, F, H, W) with per-frame ``timesteps`` (B, F).

        ``frame_offset`` is the absolute index of the first frame (its RoPE position); ``kv``
        supplies what each self-attention layer attends to (see ``models.attention``);
        ``actions`` (B, F, actions_per_frame) are action ids for action-conditioned models;
        ``camera`` (B or 1, F, 2) the frames' camera positions (``camera_path`` of the video's
        actions, not of dropped ones), required when ``ModelConfig.action_camera`` is set.
        """
        B, C, Fr, H, W = x.shape
        ph, pw = self.config.patch_size[1:]
        if self.config.action_camera and camera is None:
            raise ValueError("camera: this model's RoPE follows the camera (ModelConfig.action_camera); "
                             "pass the frames' positions (CausalWanDiT.camera_path)")
        if camera is not None and camera.shape[0] == 1 and B > 1:
            camera = camera.expand(B, -1, -1)
        rope = self.rope(frame_offset, Fr, H // ph, W // pw, camera)
        e, e0 = self.time_conditioning(timesteps, actions)
        h = self.patchify(x).float()  # (B, F, S, dim) residual stream in float32
        for index, block in enumerate(self.blocks):
            h = block(h, e0, rope, kv.layer(index), text.kv[index])
        return self.unpatchify(self.head(h, e), H, W).float()
