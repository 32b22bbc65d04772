"""Switching the prompt at a block boundary during a stream, with and without re-cache."""

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.profiling.profiler import Profiler


def _embeds(seed):
    return torch.randn(4, TINY.text_dim, generator=torch.Generator().manual_seed(seed))


def _run(switch_at=None, recache=False, attention="cache", cache=None, frames=12, profiler=None):
    """Latents of a 4-block video; before block ``switch_at`` the prompt changes from A to B."""
    engine = Engine(tiny_engine_config(attention=attention, cache=cache or CacheConfig()), strong_model(),
                    profiler=profiler)
    blocks = []
    for block in engine.stream(GenerationRequest(frames, prompt_embeds=_embeds(1), seed=5)):
        blocks.append(block.latents)
        if switch_at is not None and block.block_index == switch_at - 1:
            engine.switch_prompt(block.request_id, prompt_embeds=_embeds(2), recache=recache)
    return engine, torch.cat(blocks, dim=1)


def test_switch_changes_only_the_blocks_after_it():
    _, plain = _run()
    _, switched = _run(switch_at=2)
    assert torch.equal(plain[:, :6], switched[:, :6])
    assert (plain[:, 6:] - switched[:, 6:]).abs().max() > 1e-3


def test_recache_equals_rerunning_the_past_under_the_new_prompt():
    # recompute re-runs every earlier frame under the current prompt at every step: exactly
    # what re-caching the held frames under the new prompt should reproduce
    _, recached = _run(switch_at=2, recache=True)
    _, recomputed = _run(switch_at=2, attention="recompute")
    _, stale = _run(switch_at=2, recache=False)
    assert (recached - recomputed).abs().max() < 1e-4
    assert (stale[:, 6:] - recomputed[:, 6:]).abs().max() > 1e-3  # without it the old prompt lingers


def test_recache_with_a_window_and_sink_keeps_pages_flat_and_is_timed():
    profiler = Profiler()
    engine, latents = _run(switch_at=3, recache=True, cache=CacheConfig(window_frames=3, sink_frames=1), frames=18,
                           profiler=profiler)
    assert latents.shape[1] == 18 and engine.pool.num_free == engine.pool.num_pages
    recache_blocks = [r.block_index for r in profiler.blocks if "recache" in r.stages]
    assert recache_blocks == [3]  # done once, before the first block under the new prompt
    block3 = next(r for r in profiler.blocks if r.block_index == 3)
    assert block3.flops > next(r for r in profiler.blocks if r.block_index == 4).flops


def test_switch_by_text_uses_the_text_encoder_and_bad_input_is_named():
    from worldcast.models.placeholder import HashingTextEncoder

    engine = Engine(tiny_engine_config(), strong_model(), HashingTextEncoder(TINY.text_dim, TINY.text_len))
    request_id = engine.add_request(GenerationRequest(6, prompt="a fox"))
    engine.step()
    engine.switch_prompt(request_id, prompt="the snow", recache=True)
    assert engine.sessions[request_id].recache_pending
    with pytest.raises(ValueError, match="exactly one of prompt or prompt_embeds"):
        engine.switch_prompt(request_id)
    with pytest.raises(ValueError, match="prompt_embeds: expected"):
        engine.switch_prompt(request_id, prompt_embeds=torch.randn(4, 7))
    with pytest.raises(ValueError, match="request_id: no running session 9"):
        engine.switch_prompt(9, prompt="x")
    while engine.sessions:
        engine.step()
    assert engine.pool.num_free == engine.pool.num_pages


def test_recache_when_the_window_splits_a_block():
    # window 1, sink 1, blocks of 3: after block 0 frame 1 is evicted, frames 0 and 2 stay
    engine, latents = _run(switch_at=1, recache=True, cache=CacheConfig(window_frames=1, sink_frames=1), frames=9)
    assert latents.shape[1] == 9 and engine.pool.num_free == engine.pool.num_pages
