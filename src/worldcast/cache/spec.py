"""Shape and size of one KV-cache page, derived from the model and resolution."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldcast.cache.quant import SCALE_DTYPE, element_dtype
from worldcast.config import EngineConfig, resolve_dtype


@dataclass(frozen=True)
class KVCacheSpec:
    """A page holds the self-attention keys and values of one latent frame for every layer.

    Why one latent frame: it is the unit every policy speaks in (Self-Forcing/LongLive windows
    and sinks are counted in frames; an independent first frame makes a 1-frame block), so a
    page never has to be split or shared between blocks.
    """

    num_layers: int
    num_heads: int
    head_dim: int
    tokens_per_page: int
    dtype: torch.dtype  # what reads return (and, unquantized, what pages store)
    quantization: str | None = None  # "int8" / "fp8": pages store those plus scales (cache/quant.py)
    key_means: bool = False  # also keep each page's mean key per layer (block-sparse retrieval)

    def __post_init__(self) -> None:
        if self.quantization is not None:
            element_dtype(self.quantization)  # validates the name

    @classmethod
    def from_engine_config(cls, config: EngineConfig) -> KVCacheSpec:
        m = config.model
        dtype = resolve_dtype(config.cache.dtype or config.dtype, "CacheConfig.dtype")
        return cls(m.num_layers, m.num_heads, m.head_dim, config.tokens_per_frame, dtype, config.cache.quantization,
                   key_means=config.cache.retrieval_pages > 0)

    @property
    def page_shape(self) -> tuple[int, int, int]:
        """Shape of one page's keys (or values) in one layer: (S, H, D)."""
        return (self.tokens_per_page, self.num_heads, self.head_dim)

    @property
    def bytes_per_page(self) -> int:
        """Everything a page stores, scales included."""
        S, H, D = self.page_shape
        means = self.num_layers * H * D * 4 if self.key_means else 0  # float32 mean key per layer
        if self.quantization is None:
            return 2 * self.num_layers * S * H * D * self.dtype.itemsize + means
        data = 2 * S * H * D * element_dtype(self.quantization).itemsize
        scales = (H * D + S * H) * SCALE_DTYPE.itemsize  # keys: per channel; values: per token and head
        return self.num_layers * (data + scales) + means
