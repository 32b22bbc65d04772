"""Official Wan2.1 / Self-Forcing / CausVid / diffusers checkpoints -> our modules.

What is on disk decides the layout (``detect_dit_layout``):

    wan            directory with config.json (``WanModel``) + diffusion_pytorch_model.safetensors
                   (or shards + .safetensors.index.json), Wan2.1_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth,
                   google/umt5-xxl/ (tokenizer)
    diffusers      directory with model_index.json and transformer/, vae/, text_encoder/, tokenizer/
                   (or just a transformer/ folder: config.json with ``WanTransformer3DModel``)
    trainer        Self-Forcing / CausVid training checkpoint: a .pt with ``generator_ema`` and/or
                   ``generator`` state dicts whose keys carry the wrapper's ``model.`` prefix
                   (CausVid ships a folder holding model.pt)
    state_dict     a bare .safetensors / .pt state dict in Wan's or diffusers' key names

Our parameter names are Wan's, so ``wan`` and bare Wan state dicts load as they are; trainer
checkpoints lose their prefixes; diffusers keys are renamed by ``diffusers_to_wan_dit`` /
``diffusers_to_wan_vae``. Every load is strict: a missing, unexpected or mis-shaped key is a
``CheckpointError`` naming it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields
from pathlib import Path

import torch

from worldcast.config import ModelConfig
from worldcast.models.checkpoint import (
    CheckpointError,
    StateDict,
    load_into,
    read_json,
    read_state_dict,
    rename_by_rules,
    strip_prefix,
)
from worldcast.models.wan.dit import CausalWanDiT
from worldcast.models.wan.vae import VAEConfig, WanVAE

log = logging.getLogger(__name__)

WAN_DIT_FILES = ("diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors")
WAN_VAE_FILE = "Wan2.1_VAE.pth"
WAN_T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
WAN_TOKENIZER_DIR = "google/umt5-xxl"
WAN_HEAD_DIM = 128  # every released Wan2.1 DiT (1.3B: 1536 / 12, 14B: 5120 / 40)
# Wrapper infixes that FSDP, activation checkpointing and torch.compile add to parameter names.
_TRAINER_INFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


# ---------------------------------------------------------------------------------------------
# Layout detection
# ---------------------------------------------------------------------------------------------

def detect_dit_layout(path: Path) -> str:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "model_index.json").exists() or (path / "transformer" / "config.json").exists():
            return "diffusers"
        if (path / "config.json").exists():
            kind = read_json(path / "config.json").get("_class_name")
            return "diffusers" if kind == "WanTransformer3DModel" else "wan"
        if (path / "model.pt").exists():
            return "trainer"
        raise CheckpointError(f"{path}: not a Wan2.1, diffusers or CausVid checkpoint directory "
                              "(no config.json, model_index.json or model.pt)")
    if path.name.endswith((".safetensors", ".safetensors.index.json")):
        return "state_dict"
    return "trainer"  # .pt / .pth: trainer dict or bare state dict, told apart on reading


# ---------------------------------------------------------------------------------------------
# DiT
# ---------------------------------------------------------------------------------------------

def model_config_from_wan_json(config: dict) -> ModelConfig:
    if config.get("model_type", "t2v") != "t2v":
        raise CheckpointError(f"model_type {config['model_type']!r}: only text-to-video (t2v) Wan DiTs are supported")
    known = {f.name for f in fields(ModelConfig)}
    values = {k: v for k, v in config.items() if k in known}
    if "patch_size" in values:
        values["patch_size"] = tuple(values["patch_size"])
    return ModelConfig(**values)


def model_config_from_diffusers_json(config: dict) -> ModelConfig:
    if config.get("image_dim") or config.get("added_kv_proj_dim"):
        raise CheckpointError("transformer/config.json: image-conditioned (i2v) transformers are not supported")
    heads, head_dim = config["num_attention_heads"], config["attention_head_dim"]
    return ModelConfig(
        dim=heads * head_dim, ffn_dim=config["ffn_dim"], num_heads=heads, num_layers=config["num_layers"],
        freq_dim=config.get("freq_dim", 256), text_dim=config.get("text_dim", 4096),
        in_dim=config.get("in_channels", 16), out_dim=config.get("out_channels", 16),
        patch_size=tuple(config.get("patch_size", (1, 2, 2))), qk_norm=bool(config.get("qk_norm", True)),
        cross_attn_norm=bool(config.get("cross_attn_norm", True)), eps=config.get("eps", 1e-6),
        rope_max_positions=config.get("rope_max_seq_len", 1024))


def model_config_from_state_dict(state: StateDict, num_heads: int | None = None) -> ModelConfig:
    """Everything but the head count is in the shapes; heads default to dim / 128 (Wan2.1)."""
    try:
        dim, in_dim, *patch = state["patch_embedding.weight"].shape
        num_layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        config = dict(dim=dim, in_dim=in_dim, patch_size=tuple(patch),
                      ffn_dim=state["blocks.0.ffn.0.weight"].shape[0],
                      text_dim=state["text_embedding.0.weight"].shape[1],
                      freq_dim=state["time_embedding.0.weight"].shape[1],
                      out_dim=state["head.head.weight"].shape[0] // (patch[0] * patch[1] * patch[2]),
                      num_layers=num_layers)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"state dict is not a Wan2.1 DiT: cannot read its shapes ({err})") from None
    if num_heads is None:
        num_heads = max(1, dim // WAN_HEAD_DIM)
        log.info("DiT head count not given: assuming %d (head dim %d)", num_heads, WAN_HEAD_DIM)
    return ModelConfig(num_heads=num_heads, **config)


_DIFFUSERS_DIT_RULES = [
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
    (r"\.scale_shift_table$", ".modulation"),
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
    (r"\.norm2\.", ".norm3."),  # diffusers' norm2 is Wan's affine cross-attention norm3
    (r"\.attn1\.to_out\.0\.", ".self_attn.o."),
    (r"\.attn2\.to_out\.0\.", ".cross_attn.o."),
    (r"\.attn1\.to_([qkv])\.", r".self_attn.\1."),
    (r"\.attn2\.to_([qkv])\.", r".cross_attn.\1."),
    (r"\.attn1\.norm_([qk])\.", r".self_attn.norm_\1."),
    (r"\.attn2\.norm_([qk])\.", r".cross_attn.norm_\1."),
]


def diffusers_to_wan_dit(key: str) -> str:
    return rename_by_rules(key, _DIFFUSERS_DIT_RULES)


def _is_diffusers_dit(state: StateDict) -> bool:
    return any(k.startswith("condition_embedder.") for k in state)


def _trainer_state_dict(raw: dict, source: str, prefer_ema: bool) -> StateDict:
    """The generator's state dict from a Self-Forcing / CausVid training checkpoint."""
    order = ("generator_ema", "generator") if prefer_ema else ("generator", "generator_ema")
    for name in order:
        if name in raw:
            log.info("%s: using '%s'", source, name)
            state = raw[name]
            for infix in _TRAINER_INFIXES:
                state = {k.replace(infix, ""): v for k, v in state.items()}
            return strip_prefix(state, "model.")
    if all(isinstance(v, torch.Tensor) for v in raw.values()):
        return strip_prefix(raw, "model.")  # a bare state dict saved with torch.save
    raise CheckpointError(f"{source}: no 'generator_ema' or 'generator' state dict in this checkpoint "
                          f"(top-level keys: {sorted(raw)[:8]})")


def read_dit_state_dict(path: Path, layout: str, prefer_ema: bool = True) -> tuple[StateDict, dict | None]:
    """(state dict in Wan key names, the config.json found beside it or None)."""
    if layout == "wan":
        file = next((path / f for f in WAN_DIT_FILES if (path / f).exists()), None)
        if file is None:
            raise CheckpointError(f"{path}: no {' or '.join(WAN_DIT_FILES)}")
        return read_state_dict(file), read_json(path / "config.json")
    if layout == "diffusers":
        folder = path / "transformer" if (path / "transformer").is_dir() else path
        file = next((folder / f for f in WAN_DIT_FILES if (folder / f).exists()), None)
        if file is None:
            raise CheckpointError(f"{folder}: no {' or '.join(WAN_DIT_FILES)}")
        state = {diffusers_to_wan_dit(k): v for k, v in read_state_dict(file).items()}
        return state, read_json(folder / "config.json")
    if layout == "trainer":
        file = path / "model.pt" if path.is_dir() else path
        return _trainer_state_dict(read_state_dict(file), str(file), prefer_ema), None
    if layout == "state_dict":
        state = read_state_dict(path)
        return ({diffusers_to_wan_dit(k): v for k, v in state.items()} if _is_diffusers_dit(state) else state), None
    raise ValueError(f"layout: unknown {layout!r}")


def load_dit(path: str | Path, base_config: ModelConfig | None = None, prefer_ema: bool = True,
             dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu") -> CausalWanDiT:
    """Build a ``CausalWanDiT`` from any supported layout.

    ``base_config`` supplies what a bare or trainer checkpoint cannot say (the head count, the
    text length), e.g. the ModelConfig of the Wan2.1 directory the checkpoint was trained from.
    """
    path = Path(path)
    layout = detect_dit_layout(path)
    state, config_json = read_dit_state_dict(path, layout, prefer_ema)
    if config_json is not None:
        is_diffusers = config_json.get("_class_name") == "WanTransformer3DModel" or layout == "diffusers"
        config = (model_config_from_diffusers_json if is_diffusers else model_config_from_wan_json)(config_json)
    else:
        heads = base_config.num_heads if base_config else None
        config = model_config_from_state_dict(state, heads)
        if base_config is not None:
            config = ModelConfig(**{**base_config.__dict__, **{
                f: getattr(config, f) for f in ("dim", "ffn_dim", "num_layers", "in_dim", "out_dim",
                                                "patch_size", "text_dim", "freq_dim")}})
    with torch.device("meta"):  # no random init of weights about to be overwritten
        model = CausalWanDiT(config)
    model = model.to_empty(device="cpu")
    load_into(model, state, f"{path} ({layout})")
    log.info("loaded %s DiT from %s (%d layers, dim %d)", layout, path, config.num_layers, config.dim)
    return model.to(device).to_inference_dtype(dtype).eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------------------------

def vae_config_from_diffusers_json(config: dict) -> VAEConfig:
    return VAEConfig(
        dim=config.get("base_dim", 96), z_dim=config.get("z_dim", 16),
        dim_mult=tuple(config.get("dim_mult", (1, 2, 4, 4))), num_res_blocks=config.get("num_res_blocks", 2),
        temporal_downsample=tuple(config.get("temperal_downsample", (False, True, True))),
        latent_mean=tuple(config.get("latents_mean", VAEConfig.latent_mean)),
        latent_std=tuple(config.get("latents_std", VAEConfig.latent_std)))


def vae_config_from_state_dict(state: StateDict) -> VAEConfig:
    """Read the architecture off a Wan VAE state dict (the official .pth carries no config)."""
    try:
        dim, z_dim = state["encoder.conv1.weight"].shape[0], state["conv2.weight"].shape[0]
        indices = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.downsamples.")})
        stages, temporal, res_in_stage, res_counts = [], [], 0, []
        for i in indices:
            prefix = f"encoder.downsamples.{i}."
            if prefix + "resample.1.weight" in state:
                temporal.append(prefix + "time_conv.weight" in state)
                res_counts.append(res_in_stage)
                res_in_stage = 0
            else:
                stages_out = state[prefix + "residual.6.weight"].shape[0]
                res_in_stage += 1
                if res_in_stage == 1:
                    stages.append(stages_out)
        res_counts.append(res_in_stage)
    except KeyError as err:
        raise CheckpointError(f"state dict is not a Wan VAE: missing {err}") from None
    if len(set(res_counts)) != 1:
        raise CheckpointError(f"Wan VAE: uneven residual blocks per stage {res_counts}")
    return VAEConfig(dim=dim, z_dim=z_dim, dim_mult=tuple(d // dim for d in stages), num_res_blocks=res_counts[0],
                     temporal_downsample=tuple(temporal),
                     latent_mean=VAEConfig.latent_mean if z_dim == 16 else (0.0,) * z_dim,
                     latent_std=VAEConfig.latent_std if z_dim == 16 else (1.0,) * z_dim)


def diffusers_to_wan_vae(key: str, config: VAEConfig) -> str:
    """AutoencoderKLWan key -> Wan VAE key (inverse of diffusers' convert_vae)."""
    top = {"quant_conv.": "conv1.", "post_quant_conv.": "conv2."}
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old):]
    key = re.sub(r"^(encoder|decoder)\.conv_in\.", r"\1.conv1.", key)
    key = re.sub(r"^(encoder|decoder)\.norm_out\.", r"\1.head.0.", key)
    key = re.sub(r"^(encoder|decoder)\.conv_out\.", r"\1.head.2.", key)
    key = re.sub(r"\.mid_block\.resnets\.0\.", ".middle.0.", key)
    key = re.sub(r"\.mid_block\.attentions\.0\.", ".middle.1.", key)
    key = re.sub(r"\.mid_block\.resnets\.1\.", ".middle.2.", key)
    key = re.sub(r"^encoder\.down_blocks\.", "encoder.downsamples.", key)
    per_block = config.num_res_blocks + 2  # resnets + one upsampler per decoder stage

    def up_index(match: re.Match) -> str:
        stage, kind, j = int(match.group(1)), match.group(2), int(match.group(3))
        index = stage * per_block + (j if kind == "resnets" else config.num_res_blocks + 1)
        return f"decoder.upsamples.{index}."

    key = re.sub(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.", up_index, key)
    for old, new in (("norm1.", "residual.0."), ("conv1.", "residual.2."), ("norm2.", "residual.3."),
                     ("conv2.", "residual.6."), ("conv_shortcut.", "shortcut.")):
        key = re.sub(rf"^((?:encoder|decoder)\.(?:downsamples|upsamples|middle)\.\d+\.){re.escape(old)}",
                     rf"\g<1>{new}", key)
    return key


def load_vae(path: str | Path, dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu") -> WanVAE:
    """The Wan2.1 VAE from ``Wan2.1_VAE.pth`` (or a Wan2.1 directory holding it) or a diffusers
    ``vae/`` folder (or a pipeline directory holding one)."""
    path = Path(path)
    if path.is_dir() and (path / WAN_VAE_FILE).exists():
        path = path / WAN_VAE_FILE
    elif path.is_dir() and (path / "vae").is_dir():
        path = path / "vae"
    if path.is_dir():
        config = vae_config_from_diffusers_json(read_json(path / "config.json"))
        file = path / "diffusion_pytorch_model.safetensors"
        state = {diffusers_to_wan_vae(k, config): v for k, v in read_state_dict(file).items()}
    else:
        state = read_state_dict(path)
        config = vae_config_from_state_dict(state)
    vae = WanVAE(config)
    load_into(vae, state, str(path))
    vae = vae.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return vae.to_channels_last() if torch.device(device).type == "cpu" else vae
