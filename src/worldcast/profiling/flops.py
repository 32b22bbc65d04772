"""Analytical FLOP counts (multiply-add = 2 FLOPs) of the DiT forward."""

from __future__ import annotations

import math
from dataclasses import dataclass

from worldcast.config import ModelConfig


@dataclass(frozen=True)
class ForwardFlops:
    linear: int  # q/k/v/o, cross q/o, FFN, patch embedding, head
    self_attention: int  # QK^T and AV over the attended keys
    cross_attention: int  # QK^T and AV over the text tokens

    @property
    def total(self) -> int:
        return self.linear + self.self_attention + self.cross_attention


def dit_forward_flops(cfg: ModelConfig, query_tokens: int, key_tokens: int) -> ForwardFlops:
    """FLOPs of one forward over ``query_tokens`` tokens attending to ``key_tokens`` keys.

    Cross-attention keys/values of the prompt are computed once per prompt and not counted;
    elementwise work (norms, RoPE, modulation, softmax) is not counted either.
    """
    T, d, L = query_tokens, cfg.dim, cfg.text_len
    patch = math.prod(cfg.patch_size)
    per_layer_linear = 2 * T * (4 * d * d + 2 * d * d + 2 * d * cfg.ffn_dim)
    linear = cfg.num_layers * per_layer_linear + 2 * T * d * (cfg.in_dim * patch + cfg.out_dim * patch)
    self_attn = cfg.num_layers * 4 * T * key_tokens * d
    cross_attn = cfg.num_layers * 4 * T * L * d
    return ForwardFlops(linear, self_attn, cross_attn)
