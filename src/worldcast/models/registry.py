"""Named model architectures and random-weight construction."""

from __future__ import annotations

import torch

from worldcast.config import ModelConfig, ScheduleConfig
from worldcast.models.wan.dit import CausalWanDiT

PRESETS: dict[str, ModelConfig] = {
    # Wan2.1 text-to-video (Self-Forcing and CausVid fine-tune the 1.3B one).
    "wan2.1-t2v-1.3b": ModelConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30),
    "wan2.1-t2v-14b": ModelConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40),
    # Small enough to run anywhere in well under a second per block; random weights only.
    "tiny": ModelConfig(dim=64, ffn_dim=128, num_heads=4, num_layers=2, freq_dim=32,
                        text_dim=32, text_len=16),
}


# Sampling schedules of the official inference configs (self_forcing_dmd.yaml, wan_causal_dmd.yaml).
SCHEDULES: dict[str, ScheduleConfig] = {
    "self_forcing": ScheduleConfig(denoising_steps=(1000, 750, 500, 250), warp=True, shift=5.0),
    "causvid": ScheduleConfig(denoising_steps=(1000, 757, 522), warp=False, shift=8.0),
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"model preset: unknown name {name!r}; accepted: {sorted(PRESETS)}")
    return PRESETS[name]


def random_model(config: ModelConfig, seed: int = 0, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> CausalWanDiT:
    """A DiT with seeded random weights (PyTorch default init; no zero-initialised head, so
    outputs carry signal and equivalence tests cannot pass on zeros)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CausalWanDiT(config)
    return model.to(device).to_inference_dtype(dtype).eval().requires_grad_(False)
