"""Sliding-window cache: each block sees the last W latent frames; older pages are freed."""

import pytest
import torch

from tiny import strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.cache import PagePool, PageTable
from worldcast.models.attention import block_causal_mask


def _generate(prompt_embeds, window, attention="cache", frames=12, **config):
    engine = Engine(tiny_engine_config(cache=CacheConfig(window_frames=window), attention=attention, **config),
                    strong_model())
    return engine, engine.generate(GenerationRequest(frames, prompt_embeds=prompt_embeds, seed=9)).latents


def test_page_table_evicts_a_prefix_of_frames():
    pool = PagePool(8)
    table = PageTable(pool)
    table.append_frames(3)
    table.append_frames(3)
    table.evict(0, 4)
    assert (table.first_frame, table.pages, pool.num_free) == (4, [4, 5], 6)
    assert table.frames(4, 6) == [4, 5]
    with pytest.raises(IndexError, match="not all held"):
        table.frames(3, 5)
    assert table.append_frames(2) == [6, 7]
    table.release()
    assert pool.num_free == 8


def test_window_mask():
    mask = block_causal_mask([1, 2, 2], tokens_per_frame=1, window=1)
    expected = torch.tensor([
        [1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0],  # block 1 (frames 1-2) sees frame 0 and itself
        [1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1],  # block 2 (frames 3-4) sees frame 2 and itself
        [0, 0, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_window_as_long_as_the_video_is_the_full_cache(prompt_embeds):
    _, full = _generate(prompt_embeds, window=None)
    _, windowed = _generate(prompt_embeds, window=12)
    assert torch.equal(full, windowed)


@pytest.mark.parametrize("window", [3, 4])
def test_windowed_cache_matches_windowed_recompute_and_differs_from_full(prompt_embeds, window):
    _, cached = _generate(prompt_embeds, window)
    _, recomputed = _generate(prompt_embeds, window, attention="recompute")
    _, full = _generate(prompt_embeds, None)
    assert (cached - recomputed).abs().max() < 1e-4
    assert torch.equal(cached[:, :6], full[:, :6])  # blocks 0-1 see at most 3 earlier frames anyway
    assert (cached[:, 6:] - full[:, 6:]).abs().max() > 1e-3  # later blocks lost the oldest frames


def test_memory_stays_flat_over_a_long_video(prompt_embeds):
    engine = Engine(tiny_engine_config(cache=CacheConfig(window_frames=3)), strong_model())
    request_id = engine.add_request(GenerationRequest(60, prompt_embeds=prompt_embeds, seed=1))
    used = []
    while request_id in engine.sessions:
        engine.step()
        used.append(engine.pool.num_used)
    assert engine.pool.num_pages == 6  # window + one block, not 60
    assert max(used) <= 3 and used[-1] == 0  # after each block only the window is held


def test_fixed_pool_runs_two_windowed_sessions_at_once(prompt_embeds):
    engine = Engine(tiny_engine_config(cache=CacheConfig(num_pages=12, window_frames=3)), strong_model())
    ids = [engine.add_request(GenerationRequest(30, prompt_embeds=prompt_embeds, seed=s)) for s in (1, 2)]
    engine.step()
    engine.step()
    assert list(engine.scheduler.running) == ids  # both admitted: 6 + 6 pages reserved of 12


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="CacheConfig.window_frames"):
        CacheConfig(window_frames=0)


def test_sink_mask_keeps_the_first_frames_visible():
    mask = block_causal_mask([1, 2, 2, 2], tokens_per_frame=1, window=1, sink=1)
    # block 3 (frames 5-6) sees the sink (frame 0), the window (frame 4) and itself
    assert mask[5].tolist() == [True, False, False, False, True, True, True]
    assert mask[3].tolist() == [True, False, True, True, True, False, False]  # sink 0 + window frame 2


def test_page_table_evicts_between_sink_and_window():
    pool = PagePool(8)
    table = PageTable(pool)
    table.append_frames(6)
    table.evict(2, 4)
    assert table.held_frames == [0, 1, 4, 5] and pool.num_free == 4
    assert table.frames(0, 2) + table.frames(4, 6) == [0, 1, 4, 5]
    with pytest.raises(IndexError, match="not all held"):
        table.frames(1, 5)


def _sink_generate(prompt_embeds, window, sink, attention="cache", frames=15):
    engine = Engine(tiny_engine_config(cache=CacheConfig(window_frames=window, sink_frames=sink),
                                       attention=attention), strong_model())
    return engine, engine.generate(GenerationRequest(frames, prompt_embeds=prompt_embeds, seed=9)).latents


def test_sink_and_window_cache_matches_the_same_mask_recomputed(prompt_embeds):
    _, cached = _sink_generate(prompt_embeds, window=3, sink=2)
    _, recomputed = _sink_generate(prompt_embeds, window=3, sink=2, attention="recompute")
    _, window_only = _sink_generate(prompt_embeds, window=3, sink=0)
    assert (cached - recomputed).abs().max() < 1e-4
    # blocks 0-1 see at most 3 earlier frames either way; from block 2 on the sink adds frames 0-1
    assert torch.equal(cached[:, :6], window_only[:, :6])
    assert (cached[:, 9:] - window_only[:, 9:]).abs().max() > 1e-3


def test_sink_plus_window_covering_the_video_is_the_full_cache(prompt_embeds):
    _, full = _generate(prompt_embeds, window=None, frames=15)
    _, sunk = _sink_generate(prompt_embeds, window=9, sink=3)
    assert torch.equal(full, sunk)


def test_memory_stays_flat_with_a_sink(prompt_embeds):
    engine = Engine(tiny_engine_config(cache=CacheConfig(window_frames=3, sink_frames=2)), strong_model())
    request_id = engine.add_request(GenerationRequest(60, prompt_embeds=prompt_embeds, seed=1))
    held = []
    while request_id in engine.sessions:
        engine.step()
        if request_id in engine.sessions:
            held.append(engine.sessions[request_id].pages.held_frames)
    assert engine.pool.num_pages == 8  # sink + window + one block
    assert held[-1] == [0, 1, 54, 55, 56]  # the sink and the last 3 frames
    assert max(len(h) for h in held) == 5


def test_sink_needs_a_window():
    with pytest.raises(ValueError, match="CacheConfig.sink_frames"):
        CacheConfig(sink_frames=2)
    with pytest.raises(ValueError, match="CacheConfig.sink_frames"):
        CacheConfig(window_frames=3, sink_frames=-1)
