"""Attention math and the narrow interface through which the DiT reads keys/values.

The DiT never owns a cache. For each self-attention layer it asks a ``KVSource`` for a
``LayerKV`` and hands it the new block's queries/keys/values; the source decides what the
queries attend to (only these tokens under a mask, or cached pages plus these tokens) and
whether the new keys/values are stored. Tensors here use the ``(B, T, H, D)`` layout.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention. q (B, Tq, H, D), k/v (B, Tk, H, D) -> (B, Tq, H, D).

    ``mask`` is boolean (Tq, Tk), True where attention is allowed. Strided inputs are passed
    through: the CPU and CUDA SDPA kernels read (B, H, T, D) views without a copy.
    """
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
    )  # (B, H, Tq, D)
    return out.transpose(1, 2)


class LayerKV(Protocol):
    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attend ``q`` to whatever this source exposes, given the new tokens' ``k``/``v``."""


class KVSource(Protocol):
    def layer(self, index: int) -> LayerKV: ...


class DenseKV:
    """No cache: the queries attend to the tokens of this forward pass, optionally masked."""

    def __init__(self, mask: torch.Tensor | None = None) -> None:
        self.mask = mask

    def layer(self, index: int) -> DenseKV:
        return self

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return attention(q, k, v, self.mask)


class BlockCausalKV:
    """No cache, block-causal: a block's queries attend to its own tokens and every earlier
    block's. Equal to ``DenseKV(block_causal_mask(...))`` without a window, but computed one
    query block at a time over the keys it may see, so the masked-out part of the score matrix
    (a third for three equal blocks) is never computed: on CPU the attention backward is the
    costliest op of a training step."""

    def __init__(self, block_sizes: list[int], tokens_per_frame: int) -> None:
        if not block_sizes or min(block_sizes) <= 0 or tokens_per_frame <= 0:
            raise ValueError(f"BlockCausalKV: block sizes and tokens per frame must be positive, "
                             f"got {block_sizes} and {tokens_per_frame}")
        ends = torch.cumsum(torch.tensor(block_sizes), 0) * tokens_per_frame
        self.bounds = list(zip([0, *ends[:-1].tolist()], ends.tolist()))  # token range per block

    def layer(self, index: int) -> BlockCausalKV:
        return self

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if q.shape[1] != self.bounds[-1][1]:
            raise ValueError(f"BlockCausalKV: {q.shape[1]} tokens, the blocks hold {self.bounds[-1][1]}")
        # q/k/v (B, T, H, D); block i's queries see keys [0, end_i)
        return torch.cat([attention(q[:, start:end], k[:, :end], v[:, :end]) for start, end in self.bounds], dim=1)


def block_causal_mask(block_sizes: list[int], tokens_per_frame: int,
                      device: torch.device | str = "cpu", window: int | None = None, sink: int = 0) -> torch.Tensor:
    """Boolean (T, T) mask: a token sees every token of its own block and of earlier blocks;
    with ``window``, only the last ``window`` frames before its block (and the block itself),
    plus the video's first ``sink`` frames.

    block_sizes [1, 2] with 2 tokens per frame:
        block id per token  0 0 1 1 1 1
        token 0..1  ->  sees tokens 0..1
        token 2..5  ->  sees tokens 0..5 (window=0: tokens 2..5)
    """
    sizes = torch.tensor(block_sizes, device=device)
    ids = torch.repeat_interleave(torch.arange(len(block_sizes), device=device), sizes * tokens_per_frame)  # (T,)
    mask = ids[None, :] <= ids[:, None]
    if window is not None:
        frame = torch.arange(int(sizes.sum()), device=device).repeat_interleave(tokens_per_frame)  # (T,)
        block_start = (torch.cumsum(sizes, 0) - sizes)[ids]  # first frame of each token's block
        mask &= (frame[None, :] >= (block_start - window)[:, None]) | (frame[None, :] < sink)
    return mask
