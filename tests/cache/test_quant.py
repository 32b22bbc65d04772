import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.cache import KVCacheSpec
from worldcast.cache.quant import dequantize, quantize_keys, quantize_values
from worldcast.cache.storage import QuantizedKVStorage, make_storage


def _spec(fmt, dtype=torch.float32, tokens=5, heads=2, dim=8):
    return KVCacheSpec(num_layers=2, num_heads=heads, head_dim=dim, tokens_per_page=tokens, dtype=dtype,
                       quantization=fmt)


@pytest.mark.parametrize("fmt, tolerance", [("int8", 0.5 / 127), ("fp8", 2.0**-4)])
def test_keys_per_channel_and_values_per_token_round_trip_within_the_format_step(fmt, tolerance):
    g = torch.Generator().manual_seed(0)
    # keys with one large channel (the outlier structure per-channel scales are for)
    k = torch.randn(3, 5, 2, 8, generator=g)
    k[..., 0] *= 50
    v = torch.randn(3, 5, 2, 8, generator=g) * torch.rand(3, 5, 2, 1, generator=g) * 10
    kq, ks = quantize_keys(k, fmt)
    vq, vs = quantize_values(v, fmt)
    assert ks.shape == (3, 1, 2, 8) and vs.shape == (3, 5, 2, 1)
    for x, q, s, group in ((k, kq, ks, 1), (v, vq, vs, 3)):
        err = (dequantize(q, s, torch.float32) - x).abs()
        bound = x.abs().amax(dim=group, keepdim=True) * tolerance * 1.01
        assert (err <= bound + 1e-6).all()
    # the small key channels keep their resolution although channel 0 is 50x larger
    small = (dequantize(kq, ks, torch.float32) - k)[..., 1:].abs().max()
    assert small < 0.1


def test_an_all_zero_group_round_trips_to_zero():
    for fmt in ("int8", "fp8"):
        q, s = quantize_values(torch.zeros(1, 2, 1, 4), fmt)
        assert torch.equal(dequantize(q, s, torch.float32), torch.zeros(1, 2, 1, 4))


@pytest.mark.parametrize("fmt", ["int8", "fp8"])
def test_storage_reads_back_pages_in_any_order_and_keeps_them_when_growing(fmt):
    storage = make_storage(_spec(fmt), num_pages=4, device="cpu")
    assert isinstance(storage, QuantizedKVStorage) and not storage.exact
    g = torch.Generator().manual_seed(1)
    k, v = torch.randn(10, 2, 8, generator=g), torch.randn(10, 2, 8, generator=g)
    storage.write(1, [3, 1], k, v)
    storage.grow(6)
    rk, rv = storage.read(1, [3, 1])
    assert rk.shape == (10, 2, 8) and rk.dtype == torch.float32
    assert torch.allclose(rk, k, atol=0.1) and torch.allclose(rv, v, atol=0.1)
    r1, _ = storage.read(1, [1])
    assert torch.allclose(r1, k[5:], atol=0.1)
    assert storage.read(0, [3])[0].abs().max() == 0  # other layers untouched


def test_bytes_per_page_count_the_scales_and_halve_bf16():
    bf16 = KVCacheSpec(30, 12, 128, 1560, torch.bfloat16)
    int8 = KVCacheSpec(30, 12, 128, 1560, torch.bfloat16, quantization="int8")
    S, H, D = 1560, 12, 128
    assert int8.bytes_per_page == 30 * (2 * S * H * D + 2 * (H * D + S * H))
    assert int8.bytes_per_page / bf16.bytes_per_page < 0.51
    world = KVCacheSpec(6, 4, 64, 64, torch.bfloat16, quantization="fp8")  # the built-in world's pages
    assert world.bytes_per_page / KVCacheSpec(6, 4, 64, 64, torch.bfloat16).bytes_per_page <= 0.53


def test_unknown_quantization_is_a_clear_error():
    with pytest.raises(ValueError, match="CacheConfig.quantization"):
        CacheConfig(quantization="int4")
    with pytest.raises(ValueError, match="CacheConfig.quantization"):
        _spec("nf4")


def _generate(quantization, dtype="float32"):
    config = tiny_engine_config(cache=CacheConfig(quantization=quantization), dtype=dtype)
    engine = Engine(config, strong_model(dtype=config.torch_dtype))
    return engine.generate(GenerationRequest(12, prompt_embeds=torch.randn(4, TINY.text_dim,
                                                                           generator=torch.Generator().manual_seed(0))))


@pytest.mark.parametrize("fmt", ["int8", "fp8"])
def test_quantized_cache_generates_close_to_the_full_precision_cache(fmt):
    exact = _generate(None).latents
    quant = _generate(fmt).latents
    assert torch.equal(exact[:, :3], quant[:, :3])  # the first block has no context to read
    err = (quant - exact).abs().max().item()
    assert 0 < err < (0.05 if fmt == "int8" else 0.3)
