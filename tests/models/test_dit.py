import math

import pytest
import torch
import torch.nn.functional as F

from tiny import TINY, strong_model
from worldcast.config import ModelConfig
from worldcast.models.attention import DenseKV, block_causal_mask
from worldcast.models.registry import PRESETS, random_model
from worldcast.models.wan.dit import (
    CausalWanDiT,
    GELUTanh,
    apply_rope,
    linear_gelu_tanh,
    rope_axis_dims,
    sinusoidal_embedding,
)


def test_rope_axis_split_matches_wan_for_head_dim_128():
    # Wan splits 128 real dims as 44 / 42 / 42, i.e. 22 / 21 / 21 complex pairs.
    assert rope_axis_dims(128) == (22, 21, 21)


def _reference_rope(x, frames, height, width, offset, theta=10000.0):
    """Complex-number RoPE written independently: pairs (x[2i], x[2i+1]) as complex numbers."""
    B, T, H, D = x.shape
    fp, hp, wp = rope_axis_dims(D)

    def table(pairs, n):
        inv = 1.0 / theta ** (torch.arange(0, 2 * pairs, 2, dtype=torch.float64) / (2 * pairs))
        return torch.polar(torch.ones(n, pairs, dtype=torch.float64), torch.outer(torch.arange(n).double(), inv))

    tf, th, tw = table(fp, offset + frames), table(hp, height), table(wp, width)
    freqs = torch.cat([
        tf[offset:offset + frames, None, None].expand(frames, height, width, fp),
        th[None, :, None].expand(frames, height, width, hp),
        tw[None, None, :].expand(frames, height, width, wp),
    ], dim=-1).reshape(T, 1, D // 2)
    xc = torch.view_as_complex(x.double().reshape(B, T, H, D // 2, 2))
    return torch.view_as_real(xc * freqs).reshape(B, T, H, D).float()


def test_rope_matches_complex_reference():
    model = random_model(TINY)
    frames, height, width, offset = 3, 4, 5, 7
    x = torch.randn(2, frames * height * width, TINY.num_heads, TINY.head_dim)
    ours = apply_rope(x, model.rope(offset, frames, height, width))
    torch.testing.assert_close(ours, _reference_rope(x, frames, height, width, offset), atol=1e-5, rtol=1e-5)


def test_rope_beyond_max_positions_is_a_clear_error():
    model = random_model(TINY)
    with pytest.raises(ValueError, match="rope_max_positions"):
        model.rope(TINY.rope_max_positions, 1, 2, 2)


def test_sinusoidal_embedding_is_cos_then_sin():
    emb = sinusoidal_embedding(torch.tensor([0.0, 10.0]), 8)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = 10000.0 ** (-torch.arange(4, dtype=torch.float64) / 4)
    torch.testing.assert_close(emb[1].double(), torch.cat([torch.cos(10 * freqs), torch.sin(10 * freqs)]))


def test_patchify_equals_conv3d():
    model = random_model(TINY)
    x = torch.randn(2, TINY.in_dim, 3, 8, 6)
    conv = F.conv3d(x, model.patch_embedding.weight, model.patch_embedding.bias, stride=TINY.patch_size)
    expected = conv.flatten(2).transpose(1, 2).reshape(2, 3, 12, TINY.dim)  # tokens ordered (f, h, w)
    torch.testing.assert_close(model.patchify(x), expected, atol=1e-5, rtol=1e-5)


def test_unpatchify_matches_wan_einsum():
    model = random_model(TINY)
    f, h, w = 2, 3, 4
    pt, ph, pw = TINY.patch_size
    tokens = torch.randn(1, f, h * w, TINY.out_dim * pt * ph * pw)
    u = tokens[0].reshape(f, h, w, pt, ph, pw, TINY.out_dim)
    expected = torch.einsum("fhwpqrc->cfphqwr", u).reshape(TINY.out_dim, f * pt, h * ph, w * pw)
    torch.testing.assert_close(model.unpatchify(tokens, h * ph, w * pw)[0], expected)


def test_forward_shapes_and_dtypes():
    for dtype in (torch.float32, torch.bfloat16):
        model = random_model(TINY, dtype=dtype)
        text = model.encode_text(torch.randn(1, 3, TINY.text_dim))
        x = torch.randn(1, TINY.in_dim, 3, 8, 8, dtype=dtype)
        out = model(x, torch.full((1, 3), 500.0), text, DenseKV())
        assert out.shape == x.shape and out.dtype == torch.float32
        assert torch.isfinite(out).all()


def test_small_parameters_stay_float32_in_bf16():
    model = random_model(TINY, dtype=torch.bfloat16)
    assert model.blocks[0].ffn[0].weight.dtype == torch.bfloat16
    assert model.blocks[0].modulation.dtype == torch.float32
    assert model.time_embedding[0].weight.dtype == torch.float32
    assert model.blocks[0].self_attn.norm_q.weight.dtype == torch.float32


def test_per_frame_timesteps_modulate_their_own_frames():
    """Changing frame j's timestep changes only frames that may attend to it."""
    model = strong_model()
    text = model.encode_text(torch.randn(1, 3, TINY.text_dim))
    x = torch.randn(1, TINY.in_dim, 4, 4, 4)
    mask = block_causal_mask([1, 1, 1, 1], tokens_per_frame=4)
    base = model(x, torch.tensor([[0.0, 250.0, 500.0, 750.0]]), text, DenseKV(mask))
    moved = model(x, torch.tensor([[0.0, 250.0, 900.0, 750.0]]), text, DenseKV(mask))
    diff = (base - moved).abs().amax(dim=(0, 1, 3, 4))  # per frame
    assert diff[:2].max() == 0 and diff[2] > 1e-2 and diff[3] > 1e-3


def test_null_action_is_an_all_zero_one_hot():
    from worldcast.models.wan.dit import NULL_ACTION

    model = random_model(ModelConfig(**{**TINY.__dict__, "num_actions": 5}), seed=0)
    t = torch.full((1, 2), 500.0)
    e_null, _ = model.time_conditioning(t, torch.full((1, 2, 4), NULL_ACTION))
    e_none, _ = model.time_conditioning(t, torch.zeros(1, 2, 4, dtype=torch.long))
    plain = model.time_embedding(sinusoidal_embedding(t.flatten(), TINY.freq_dim)).view(1, 2, -1)
    zeros = model.action_embedding(torch.zeros(1, 2, 4 * 5))
    torch.testing.assert_close(e_null, plain + zeros)
    assert not torch.allclose(e_null, e_none)  # "no information" is not the action "none"


def test_bf16_close_to_fp32():
    x = torch.randn(1, TINY.in_dim, 3, 8, 8)
    emb = torch.randn(1, 3, TINY.text_dim)
    outs = []
    for dtype in (torch.float32, torch.bfloat16):
        model = strong_model(dtype=dtype)
        outs.append(model(x.to(dtype), torch.full((1, 3), 700.0), model.encode_text(emb), DenseKV()))
    rel = (outs[0] - outs[1]).norm() / outs[0].norm()
    assert rel < 0.03, rel


OFFICIAL_BLOCK_KEYS = [
    "norm3.weight", "norm3.bias", "modulation", "ffn.0.weight", "ffn.0.bias", "ffn.2.weight", "ffn.2.bias",
    *[f"{attn}.{p}.{kind}" for attn in ("self_attn", "cross_attn") for p in "qkvo" for kind in ("weight", "bias")],
    *[f"{attn}.{n}.weight" for attn in ("self_attn", "cross_attn") for n in ("norm_q", "norm_k")],
]
OFFICIAL_TOP_KEYS = [
    "patch_embedding.weight", "patch_embedding.bias", "text_embedding.0.weight", "text_embedding.0.bias",
    "text_embedding.2.weight", "text_embedding.2.bias", "time_embedding.0.weight", "time_embedding.0.bias",
    "time_embedding.2.weight", "time_embedding.2.bias", "time_projection.1.weight", "time_projection.1.bias",
    "head.head.weight", "head.head.bias", "head.modulation",
]


def test_state_dict_uses_official_wan_key_names():
    keys = set(random_model(TINY).state_dict())
    expected = set(OFFICIAL_TOP_KEYS) | {f"blocks.{i}.{k}" for i in range(TINY.num_layers) for k in OFFICIAL_BLOCK_KEYS}
    assert keys == expected


@pytest.mark.parametrize("name, params", [("wan2.1-t2v-1.3b", 1.42e9), ("wan2.1-t2v-14b", 14.3e9)])
def test_presets_have_the_official_sizes(name, params):
    with torch.device("meta"):
        model = CausalWanDiT(PRESETS[name])
    count = sum(p.numel() for p in model.parameters())
    assert math.isclose(count, params, rel_tol=0.02), count
    assert model.head.modulation.shape == (1, 2, PRESETS[name].dim)


def test_text_is_zero_padded_to_text_len():
    model = random_model(TINY)
    text = model.encode_text(torch.randn(1, 3, TINY.text_dim))
    k, v = text.kv[0]
    assert k.shape == (1, TINY.text_len, TINY.num_heads, TINY.head_dim)
    # Padded positions all see the same (zero) input, so their keys are identical.
    torch.testing.assert_close(k[0, 3], k[0, -1])


def test_model_config_rejects_odd_head_dim():
    with pytest.raises(ValueError, match="head_dim"):
        ModelConfig(dim=20, num_heads=4)


def test_fused_linear_gelu_matches_the_composition():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 256).to(torch.bfloat16)
    x = torch.randn(10, 64, dtype=torch.bfloat16)
    reference = F.gelu(F.linear(x.float(), linear.weight.float(), linear.bias.float()), approximate="tanh")
    fused = linear_gelu_tanh(x, linear)
    assert fused.dtype == torch.bfloat16
    torch.testing.assert_close(fused.float(), reference, atol=2e-2, rtol=2e-2)


def test_exp_form_of_gelu_tanh_is_the_same_function():
    x = torch.linspace(-12, 12, 2001)
    compiled = torch.compile(GELUTanh(), backend="eager")  # takes the compile-time branch
    torch.testing.assert_close(compiled(x), F.gelu(x, approximate="tanh"), atol=2e-6, rtol=1e-5)


def test_compiled_gelu_tanh_has_finite_gradients_where_exp_overflows():
    """The compiled form once divided by 1 + exp(-2z): below x = -10 that overflows and the
    gradient was NaN, which poisoned training steps as activations grew."""
    x = torch.linspace(-40, 40, 801, requires_grad=True)
    compiled = torch.compile(GELUTanh(), backend="eager")  # the compile-time branch
    compiled(x).sum().backward()
    reference = torch.linspace(-40, 40, 801, requires_grad=True)
    F.gelu(reference, approximate="tanh").sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, reference.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_compiled_blocks_match_eager():
    """torch.compile'd blocks (fused elementwise, exp-form GELU) give the eager result."""
    x = torch.randn(1, TINY.in_dim, 3, 8, 8)
    emb = torch.randn(1, 3, TINY.text_dim)
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 3e-2)):
        eager = strong_model(dtype=dtype)
        compiled = strong_model(dtype=dtype).compile_blocks()
        args = (x.to(dtype), torch.full((1, 3), 700.0))
        out_e = eager(*args, eager.encode_text(emb), DenseKV())
        out_c = compiled(*args, compiled.encode_text(emb), DenseKV())
        assert (out_e - out_c).abs().max() < tol * out_e.abs().max()
