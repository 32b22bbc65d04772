"""Cached block-by-block generation equals full forward passes without a cache.

Tolerances (max abs difference on latents of std ~1): float32 1e-4; bfloat16 5e-2 — bf16
rounding differs between a (T_block x T_all) and a (T_all x T_all) attention, and the
difference compounds through the denoising steps and blocks. The tiny model uses large
modulation gates (``strong_model``) so the cache visibly matters (checked below).
"""

import pytest
import torch

from tiny import strong_model, tiny_engine_config
from worldcast import Engine, GenerationRequest
from worldcast.models.attention import DenseKV, attention, block_causal_mask

TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}


def _generate(prompt_embeds, dtype, attention_mode, independent_first_frame=False, frames=9, seed=3):
    config = tiny_engine_config(dtype=dtype, attention=attention_mode,
                                independent_first_frame=independent_first_frame)
    engine = Engine(config, strong_model(dtype=config.torch_dtype))
    request = GenerationRequest(frames, prompt_embeds=prompt_embeds, seed=seed)
    return engine.generate(request).latents


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("first", [False, True])
def test_cached_generation_matches_recompute(prompt_embeds, dtype, first):
    frames = 7 if first else 9
    cached = _generate(prompt_embeds, dtype, "cache", first, frames)
    full = _generate(prompt_embeds, dtype, "recompute", first, frames)
    assert cached.shape == full.shape == (16, frames, 4, 6)
    assert (cached - full).abs().max() < TOLERANCE[dtype]


def test_euler_sampling_cached_matches_recompute_and_differs_from_renoise(prompt_embeds):
    from worldcast.config import ScheduleConfig

    def run(sampler, mode):
        config = tiny_engine_config(attention=mode, schedule=ScheduleConfig(sampler=sampler))
        request = GenerationRequest(9, prompt_embeds=prompt_embeds, seed=3)
        return Engine(config, strong_model()).generate(request).latents

    cached, full = run("euler", "cache"), run("euler", "recompute")
    assert (cached - full).abs().max() < TOLERANCE["float32"]
    assert (cached - run("renoise", "cache")).abs().max() > 100 * TOLERANCE["float32"]


def test_the_cache_matters(prompt_embeds):
    """Guard for the test above: changing the first block's noise moves the later blocks."""
    config = tiny_engine_config()
    engine = Engine(config, strong_model())
    noise = torch.randn(16, 6, 4, 6, generator=torch.Generator().manual_seed(0))
    moved = noise.clone()
    moved[:, :3] = torch.randn(16, 3, 4, 6, generator=torch.Generator().manual_seed(1))
    a = engine.generate(GenerationRequest(6, prompt_embeds=prompt_embeds, noise=noise)).latents
    b = engine.generate(GenerationRequest(6, prompt_embeds=prompt_embeds, noise=moved)).latents
    assert (a[:, 3:] - b[:, 3:]).abs().max() > 100 * TOLERANCE["float32"]


class RecordingKV(DenseKV):
    """Dense block-causal attention that keeps each layer's keys and values."""

    def __init__(self, mask):
        super().__init__(mask)
        self.keys, self.values = {}, {}

    def layer(self, index):
        recorder = self

        class _Layer:
            def attend(self, q, k, v):
                recorder.keys[index], recorder.values[index] = k[0], v[0]
                return attention(q, k, v, recorder.mask)

        return _Layer()


def test_committed_pages_equal_one_full_block_causal_pass(prompt_embeds):
    """The cache after two blocks holds exactly the K/V of one full forward pass over those
    clean frames at the context timestep under a block-causal mask."""
    config = tiny_engine_config()
    model = strong_model()
    engine = Engine(config, model)
    request_id = engine.add_request(GenerationRequest(9, prompt_embeds=prompt_embeds, seed=5))
    outputs = engine.step() + engine.step()
    session = engine.sessions[request_id]
    clean = torch.cat([o.latents for o in outputs], dim=1)[None]  # (1, C, 6, h, w)

    recorder = RecordingKV(block_causal_mask([3, 3], config.tokens_per_frame))
    model(clean, torch.zeros(1, 6), model.encode_text(prompt_embeds[None]), recorder)
    pages = session.pages.pages[:6]
    for layer in range(config.model.num_layers):
        k, v = engine.runner.storage.read(layer, pages)
        torch.testing.assert_close(k, recorder.keys[layer], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v, recorder.values[layer], atol=1e-5, rtol=1e-5)
