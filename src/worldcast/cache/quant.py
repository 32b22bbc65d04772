"""Quantized KV pages: INT8 or FP8 (e4m3) elements with float16 scales, dequantized on read.

Granularity follows KIVI (Liu et al., 2024): **keys per channel, values per token**. Keys have a
few channels with large magnitudes that persist across tokens (RoPE pairs, outlier dims), so one
scale per channel — over the page's tokens — keeps the small channels' resolution; values have no
such channel structure, and each output token mixes values by attention weight, so one scale per
token (per head) bounds each value's error by its own magnitude.

Per page and layer (S tokens, H heads, D head dim)::

    key data  (S, H, D) int8/fp8   key scales   (1, H, D) float16   one per channel
    value data (S, H, D) int8/fp8  value scales (S, H, 1) float16   one per token and head

Both formats are symmetric (no zero point): INT8 rounds x / scale with scale = absmax / 127;
FP8 stores x / scale as float8_e4m3fn with scale = absmax / 448 (its largest normal), so each
group uses the format's full range. Compute always happens in the model's dtype: FP8 here is a
storage format (FP8 matmul on CPU would be a slow reference path).
"""

from __future__ import annotations

import torch

from worldcast.config import KV_QUANTIZATIONS as FORMATS

SCALE_DTYPE = torch.float16
_ELEMENT = {"int8": torch.int8, "fp8": torch.float8_e4m3fn}
_LIMIT = {"int8": 127.0, "fp8": 448.0}
# A group of zeros would give a zero scale; any positive scale represents it exactly. This one
# is float16's smallest normal, so it survives the cast.
_MIN_SCALE = 2.0**-14


def element_dtype(fmt: str) -> torch.dtype:
    if fmt not in _ELEMENT:
        raise ValueError(f"CacheConfig.quantization: unknown {fmt!r}; accepted: {', '.join(FORMATS)}")
    return _ELEMENT[fmt]


def quantize(x: torch.Tensor, fmt: str, dim: int | tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(data, scales): ``x`` quantized with one scale per group, the groups being ``x``'s slices
    along every dimension except ``dim`` (the dimensions reduced to find each group's absmax)."""
    limit = _LIMIT[fmt]
    absmax = x.detach().float().abs().amax(dim=dim, keepdim=True)
    scale = (absmax / limit).clamp_min(_MIN_SCALE).to(SCALE_DTYPE)
    scaled = x.float() / scale.float()
    if fmt == "int8":
        return scaled.round().clamp_(-limit, limit).to(torch.int8), scale
    return scaled.clamp_(-limit, limit).to(torch.float8_e4m3fn), scale


def dequantize(data: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (data.to(torch.float32) * scale.to(torch.float32)).to(dtype)


def quantize_keys(k: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pages of keys (N, S, H, D) -> data (N, S, H, D), one scale per channel (N, 1, H, D)."""
    return quantize(k, fmt, dim=1)


def quantize_values(v: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pages of values (N, S, H, D) -> data (N, S, H, D), one scale per token and head (N, S, H, 1)."""
    return quantize(v, fmt, dim=3)
