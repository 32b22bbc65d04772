"""Image-to-video and video extension: a given prefix is committed to the cache, then generated."""

import pytest
import torch

from tiny import strong_model, tiny_engine_config
from worldcast import Engine, GenerationRequest


def _noise(frames, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(16, frames, 4, 6, generator=gen), torch.randn(3, 16, frames, 4, 6, generator=gen)


@pytest.fixture
def engine():
    return Engine(tiny_engine_config(), strong_model())


def test_extending_a_video_continues_it_exactly(engine, prompt_embeds):
    """Committing generated frames as a prefix and generating on gives what generating straight through gives."""
    noise, step_noise = _noise(6)
    full = engine.generate(GenerationRequest(6, prompt_embeds=prompt_embeds, noise=noise, step_noise=step_noise))
    prefix = full.latents[:, :3]
    extended = engine.generate(GenerationRequest(3, prompt_embeds=prompt_embeds, prefix_latents=prefix,
                                                 noise=noise[:, 3:], step_noise=step_noise[:, :, 3:]))
    assert [b.is_prefix for b in extended.blocks] == [True, False]
    assert torch.equal(extended.blocks[0].latents, prefix)
    torch.testing.assert_close(extended.latents[:, 3:], full.latents[:, 3:], atol=1e-5, rtol=1e-5)


def test_prefix_changes_what_follows(engine, prompt_embeds):
    noise, step_noise = _noise(3)
    a = engine.generate(GenerationRequest(3, prompt_embeds=prompt_embeds, prefix_latents=torch.zeros(16, 3, 4, 6),
                                          noise=noise, step_noise=step_noise))
    b = engine.generate(GenerationRequest(3, prompt_embeds=prompt_embeds, prefix_latents=torch.ones(16, 3, 4, 6),
                                          noise=noise, step_noise=step_noise))
    assert (a.latents[:, 3:] - b.latents[:, 3:]).abs().max() > 1e-2


def test_image_to_video_layout_and_cached_equals_recompute(prompt_embeds):
    image_latent = torch.randn(16, 1, 4, 6)
    results = {}
    for attention in ("cache", "recompute"):
        engine = Engine(tiny_engine_config(independent_first_frame=True, attention=attention), strong_model())
        request = GenerationRequest(6, prompt_embeds=prompt_embeds, prefix_latents=image_latent, seed=4)
        results[attention] = engine.generate(request)
    blocks = results["cache"].blocks
    assert [b.latents.shape[1] for b in blocks] == [1, 3, 3]
    assert [b.is_prefix for b in blocks] == [True, False, False]
    assert set(blocks[0].timings) == {"commit"}
    diff = (results["cache"].latents - results["recompute"].latents).abs().max()
    assert diff < 1e-4, diff


def test_prefix_pages_are_allocated_and_freed(engine, prompt_embeds):
    engine.generate(GenerationRequest(3, prompt_embeds=prompt_embeds, prefix_latents=torch.zeros(16, 6, 4, 6)))
    assert engine.pool.num_pages == 9 and engine.pool.num_free == 9


@pytest.mark.parametrize("prefix, frames, message", [
    (torch.zeros(16, 2, 4, 6), 3, "prefix_latents: num_latent_frames: 2 latent frames do not fill whole blocks"),
    (torch.zeros(16, 3, 4, 6), 4, "num_latent_frames: 4 latent frames after a prefix do not fill whole blocks"),
    (torch.zeros(8, 3, 4, 6), 3, r"prefix_latents: expected \(C, frames, h, w\) with \(C, h, w\) = \(16, 4, 6\)"),
    (torch.zeros(16, 4, 6), 3, "prefix_latents: expected a"),
])
def test_bad_prefixes(engine, prompt_embeds, prefix, frames, message):
    with pytest.raises(ValueError, match=message):
        engine.add_request(GenerationRequest(frames, prompt_embeds=prompt_embeds, prefix_latents=prefix))
