"""Named model architectures, sampling families, random-weight construction and loading
real checkpoints with everything they need (text encoder, VAE)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

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


log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    dit: CausalWanDiT
    text_encoder: object | None  # TransformerTextEncoder
    vae: object | None  # WanVAE
    family: str


def guess_family(path: Path) -> str:
    return "causvid" if "causvid" in str(path).lower() else "self_forcing"


def _wan_dir_config(wan_dir: Path | None) -> ModelConfig | None:
    from worldcast.models.checkpoint import read_json
    from worldcast.models.wan.loading import model_config_from_wan_json
    if wan_dir is None or not (wan_dir / "config.json").exists():
        return None
    return model_config_from_wan_json(read_json(wan_dir / "config.json"))


def load_model(path: str | Path, family: str | None = None, wan_dir: str | Path | None = None,
               dtype: torch.dtype = torch.bfloat16, device: str = "cpu",
               vae_dtype: torch.dtype = torch.float32) -> LoadedModel:
    """A DiT from ``path`` plus the VAE and umT5 encoder found in ``wan_dir`` (the Wan2.1
    directory the checkpoint was trained from), or in ``path`` itself when it is a Wan2.1 or
    diffusers directory."""
    from worldcast.models.wan.loading import (
        WAN_T5_FILE,
        WAN_TOKENIZER_DIR,
        WAN_VAE_FILE,
        detect_dit_layout,
        load_dit,
        load_vae,
    )
    from worldcast.models.wan.text import TransformerTextEncoder

    path = Path(path)
    layout = detect_dit_layout(path)
    family = family or guess_family(path)
    if family not in SCHEDULES:
        raise ValueError(f"family: unknown {family!r}; accepted: {sorted(SCHEDULES)}")
    base = Path(wan_dir) if wan_dir else (path if layout in ("wan", "diffusers") else None)
    if layout in ("wan", "diffusers") and wan_dir is None:
        log.warning("%s is a %s directory: the released Wan2.1 T2V weights are a bidirectional 50-step "
                    "model, not a causal few-step one; pass a Self-Forcing or CausVid checkpoint with "
                    "--wan-dir for meaningful video", path, layout)
    dit = load_dit(path, _wan_dir_config(base), dtype=dtype, device=device)
    if base is None:
        return LoadedModel(dit, None, None, family)
    if (base / WAN_VAE_FILE).exists():
        vae = load_vae(base / WAN_VAE_FILE, dtype=vae_dtype, device=device)
        text = TransformerTextEncoder.load_umt5(base / WAN_T5_FILE, base / WAN_TOKENIZER_DIR, dit.config.text_len)
    elif (base / "vae").is_dir():
        vae = load_vae(base / "vae", dtype=vae_dtype, device=device)
        text = TransformerTextEncoder.load_umt5(base / "text_encoder", base / "tokenizer", dit.config.text_len)
    else:
        raise ValueError(f"wan_dir: {base} holds neither {WAN_VAE_FILE} (Wan2.1 layout) nor vae/ (diffusers)")
    return LoadedModel(dit, text, vae, family)
