"""Tiny configurations and models shared by the tests (CPU, seconds)."""

from __future__ import annotations

import torch

from worldcast import EngineConfig, ModelConfig
from worldcast.models.registry import random_model
from worldcast.models.wan.dit import CausalWanDiT

TINY = ModelConfig(dim=64, ffn_dim=128, num_heads=4, num_layers=2, freq_dim=32, text_dim=32, text_len=16)


def tiny_engine_config(**changes: object) -> EngineConfig:
    base = dict(model=TINY, height=32, width=48, dtype="float32")
    return EngineConfig(**{**base, **changes})


def strong_model(config: ModelConfig = TINY, dtype: torch.dtype = torch.float32, seed: int = 0) -> CausalWanDiT:
    """A random model whose attention branches matter.

    With PyTorch's default init the modulation gates are ~1/sqrt(dim) and attention is nearly
    uniform (it averages values away), so earlier frames barely move the output and a broken
    cache could hide below the tolerance. Large gates and sharp attention (q/k norm weights of
    3, logits of std ~9) make each layer's self-attention, and so the cache, matter.
    """
    model = random_model(config, seed=seed, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed + 1)
    for block in model.blocks:
        block.modulation.data = torch.randn(block.modulation.shape, generator=gen)
        block.self_attn.norm_q.weight.data.fill_(3.0)
        block.self_attn.norm_k.weight.data.fill_(3.0)
    return model.to_inference_dtype(dtype)


