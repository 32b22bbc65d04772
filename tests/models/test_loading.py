"""Tiny random checkpoints written in each real on-disk layout, loaded back and compared."""

import json

import pytest
import torch
from safetensors.torch import save_file

from tiny import TINY, strong_model
from worldcast.models.attention import DenseKV
from worldcast.models.checkpoint import CheckpointError
from worldcast.models.wan.loading import detect_dit_layout, load_dit, load_vae
from worldcast.models.wan.vae import VAEConfig, WanVAE

# Wan -> diffusers, as diffusers' convert script writes it (ordered substring replacement).
DIFFUSERS_DIT = [
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("head.modulation", "scale_shift_table"), ("head.head", "proj_out"), ("modulation", "scale_shift_table"),
    ("ffn.0", "ffn.net.0.proj"), ("ffn.2", "ffn.net.2"),
    ("norm2", "norm__placeholder"), ("norm3", "norm2"), ("norm__placeholder", "norm3"),
    ("self_attn.q", "attn1.to_q"), ("self_attn.k", "attn1.to_k"), ("self_attn.v", "attn1.to_v"),
    ("self_attn.o", "attn1.to_out.0"), ("self_attn.norm_q", "attn1.norm_q"), ("self_attn.norm_k", "attn1.norm_k"),
    ("cross_attn.q", "attn2.to_q"), ("cross_attn.k", "attn2.to_k"), ("cross_attn.v", "attn2.to_v"),
    ("cross_attn.o", "attn2.to_out.0"), ("cross_attn.norm_q", "attn2.norm_q"), ("cross_attn.norm_k", "attn2.norm_k"),
]


def to_diffusers(key):
    for old, new in DIFFUSERS_DIT:
        key = key.replace(old, new)
    return key


def wan_config_json(cfg=TINY):
    return {"_class_name": "WanModel", "_diffusers_version": "0.30.0", "dim": cfg.dim, "eps": cfg.eps,
            "ffn_dim": cfg.ffn_dim, "freq_dim": cfg.freq_dim, "in_dim": cfg.in_dim, "model_type": "t2v",
            "num_heads": cfg.num_heads, "num_layers": cfg.num_layers, "out_dim": cfg.out_dim,
            "text_len": cfg.text_len, "text_dim": cfg.text_dim}


def diffusers_config_json(cfg=TINY):
    return {"_class_name": "WanTransformer3DModel", "patch_size": list(cfg.patch_size),
            "num_attention_heads": cfg.num_heads, "attention_head_dim": cfg.head_dim, "in_channels": cfg.in_dim,
            "out_channels": cfg.out_dim, "text_dim": cfg.text_dim, "freq_dim": cfg.freq_dim,
            "ffn_dim": cfg.ffn_dim, "num_layers": cfg.num_layers, "cross_attn_norm": True,
            "qk_norm": "rms_norm_across_heads", "eps": cfg.eps, "image_dim": None, "rope_max_seq_len": 1024}


@pytest.fixture(scope="module")
def reference():
    return strong_model()


def _state(model):
    return {k: v.clone().contiguous() for k, v in model.state_dict().items()}


def _same_output(a, b):
    x = torch.randn(1, TINY.in_dim, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    emb = torch.randn(1, 3, TINY.text_dim, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([[900.0, 300.0]])
    out_a = a(x, t, a.encode_text(emb), DenseKV())
    out_b = b(x, t, b.encode_text(emb), DenseKV())
    torch.testing.assert_close(out_a, out_b, atol=0, rtol=0)


def test_wan_directory_single_file_and_sharded(tmp_path, reference):
    single = tmp_path / "Wan2.1-T2V-tiny"
    single.mkdir()
    (single / "config.json").write_text(json.dumps(wan_config_json()))
    save_file(_state(reference), str(single / "diffusion_pytorch_model.safetensors"))
    assert detect_dit_layout(single) == "wan"
    _same_output(reference, load_dit(single, dtype=torch.float32))

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text(json.dumps(wan_config_json()))
    state = _state(reference)
    keys = sorted(state)
    shards = {"diffusion_pytorch_model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "diffusion_pytorch_model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, str(sharded / name))
    index = {"weight_map": {k: name for name, names in shards.items() for k in names}}
    (sharded / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    _same_output(reference, load_dit(sharded, dtype=torch.float32))


def test_self_forcing_checkpoint_prefers_ema_and_strips_wrappers(tmp_path, reference):
    state = _state(reference)
    other = {k: torch.zeros_like(v) for k, v in state.items()}
    checkpoint = {
        "generator": {f"model.{k}": v for k, v in other.items()},
        "generator_ema": {f"model._fsdp_wrapped_module.{k}": v for k, v in state.items()},
        "critic": {"model.x": torch.zeros(1)},
    }
    path = tmp_path / "self_forcing_dmd.pt"
    torch.save(checkpoint, path)
    assert detect_dit_layout(path) == "trainer"
    _same_output(reference, load_dit(path, base_config=TINY, dtype=torch.float32))
    non_ema = load_dit(path, base_config=TINY, prefer_ema=False, dtype=torch.float32)
    assert non_ema.blocks[0].ffn[0].weight.abs().sum() == 0


def test_causvid_folder_with_model_pt(tmp_path, reference):
    folder = tmp_path / "autoregressive_checkpoint"
    folder.mkdir()
    torch.save({"generator": {f"model.{k}": v for k, v in _state(reference).items()}}, folder / "model.pt")
    assert detect_dit_layout(folder) == "trainer"
    _same_output(reference, load_dit(folder, base_config=TINY, dtype=torch.float32))


def test_diffusers_pipeline_folder(tmp_path):
    # diffusers configs carry no text length: the pipeline always pads prompts to 512 tokens.
    reference = strong_model(TINY.__class__(**{**TINY.__dict__, "text_len": 512}))
    root = tmp_path / "Wan2.1-T2V-tiny-Diffusers"
    (root / "transformer").mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    (root / "transformer" / "config.json").write_text(json.dumps(diffusers_config_json()))
    diffusers_state = {to_diffusers(k): v for k, v in _state(reference).items()}
    assert "scale_shift_table" in diffusers_state and "blocks.0.attn2.to_out.0.weight" in diffusers_state
    assert "blocks.0.norm2.weight" in diffusers_state  # Wan's norm3
    save_file(diffusers_state, str(root / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert detect_dit_layout(root) == "diffusers"
    _same_output(reference, load_dit(root, dtype=torch.float32))


def test_bare_state_dicts_in_either_naming(tmp_path, reference):
    wan = tmp_path / "wan.safetensors"
    save_file(_state(reference), str(wan))
    _same_output(reference, load_dit(wan, base_config=TINY, dtype=torch.float32))
    diffusers = tmp_path / "diffusers.safetensors"
    save_file({to_diffusers(k): v for k, v in _state(reference).items()}, str(diffusers))
    _same_output(reference, load_dit(diffusers, base_config=TINY, dtype=torch.float32))


def test_head_count_defaults_to_wan_head_dim(tmp_path):
    cfg = TINY.__class__(**{**TINY.__dict__, "dim": 256, "num_heads": 2})  # head dim 128
    path = tmp_path / "w.safetensors"
    save_file(_state(strong_model(cfg)), str(path))
    assert load_dit(path, dtype=torch.float32).config.num_heads == 2


@pytest.mark.parametrize("corrupt, message", [
    (lambda s: s.pop("blocks.0.ffn.2.bias"), r"1 missing key\(s\), e.g. \['blocks.0.ffn.2.bias'\]"),
    (lambda s: s.update({"blocks.0.extra": torch.zeros(1)}), r"unexpected key\(s\), e.g. \['blocks.0.extra'\]"),
    (lambda s: s.update({"blocks.1.ffn.0.bias": torch.zeros(7)}),
     r"shape mismatch: blocks.1.ffn.0.bias: checkpoint \(7,\) vs model \(128,\)"),
])
def test_bad_checkpoints_name_the_key(tmp_path, reference, corrupt, message):
    state = _state(reference)
    corrupt(state)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=message):
        load_dit(path, base_config=TINY, dtype=torch.float32)


def test_unreadable_and_wrong_files(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable weights-only torch checkpoint"):
        load_dit(junk)
    torch.save({"optimizer": {"lr": torch.zeros(1)}, "step": 3}, tmp_path / "opt.pt")
    with pytest.raises(CheckpointError, match="no 'generator_ema' or 'generator'"):
        load_dit(tmp_path / "opt.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_dit(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a Wan2.1, diffusers or CausVid checkpoint directory"):
        load_dit(tmp_path / "empty")


# --- VAE ---------------------------------------------------------------------------------------

TINY_VAE = VAEConfig(dim=8, z_dim=16)


def _vae_to_diffusers(key):
    """Wan VAE key -> AutoencoderKLWan key (diffusers' convert_vae, 2 res blocks per stage)."""
    import re
    top = {"conv1.": "quant_conv.", "conv2.": "post_quant_conv."}
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old):]
    residual = {"residual.0.": "norm1.", "residual.2.": "conv1.", "residual.3.": "norm2.",
                "residual.6.": "conv2.", "shortcut.": "conv_shortcut."}
    for old, new in residual.items():
        key = key.replace(old, new)
    key = re.sub(r"^(encoder|decoder)\.conv1\.", r"\1.conv_in.", key)
    key = key.replace(".head.0.", ".norm_out.").replace(".head.2.", ".conv_out.")
    key = key.replace(".middle.0.", ".mid_block.resnets.0.").replace(".middle.1.", ".mid_block.attentions.0.")
    key = key.replace(".middle.2.", ".mid_block.resnets.1.").replace("encoder.downsamples.", "encoder.down_blocks.")
    match = re.match(r"^decoder\.upsamples\.(\d+)\.(.*)$", key)
    if match:
        k, rest = int(match.group(1)), match.group(2)
        stage, j = divmod(k, 4)
        kind = "upsamplers.0" if j == 3 else f"resnets.{j}"
        key = f"decoder.up_blocks.{stage}.{kind}.{rest}"
    return key


def _tiny_vae():
    torch.manual_seed(0)
    vae = WanVAE(TINY_VAE).eval()
    for p in vae.parameters():
        p.data.normal_(0, 0.3)
    return vae


def test_vae_from_wan_pth_and_diffusers_folder(tmp_path):
    vae = _tiny_vae()
    state = {k: v.clone() for k, v in vae.state_dict().items()}
    torch.save(state, tmp_path / "Wan2.1_VAE.pth")
    diffusers = tmp_path / "vae"
    diffusers.mkdir()
    (diffusers / "config.json").write_text(json.dumps({
        "_class_name": "AutoencoderKLWan", "base_dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4],
        "num_res_blocks": 2, "temperal_downsample": [False, True, True],
        "latents_mean": list(TINY_VAE.latent_mean), "latents_std": list(TINY_VAE.latent_std)}))
    converted = {_vae_to_diffusers(k): v for k, v in state.items()}
    assert "decoder.up_blocks.1.resnets.0.conv_shortcut.weight" in converted
    assert "decoder.up_blocks.0.upsamplers.0.time_conv.weight" in converted
    save_file(converted, str(diffusers / "diffusion_pytorch_model.safetensors"))
    z = torch.randn(1, 16, 3, 2, 2)
    expected = vae.decode(z)
    for source in (tmp_path / "Wan2.1_VAE.pth", tmp_path, diffusers):
        # Loaded VAEs store weights channels-last on CPU: same function, another summation order.
        torch.testing.assert_close(load_vae(source).decode(z), expected, atol=1e-5, rtol=1e-5)
