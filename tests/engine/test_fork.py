"""Forking a session: two futures from one past, sharing the past's pages copy-on-write."""

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.models.placeholder import LatentPreviewDecoder

EMBEDS = torch.randn(4, TINY.text_dim, generator=torch.Generator().manual_seed(0))


def _engine(**cache):
    config = tiny_engine_config(cache=CacheConfig(**cache))
    return Engine(config, strong_model(), decoder=LatentPreviewDecoder(TINY.in_dim, config.vae_stride))


def _drain(engine):
    out: dict[int, list] = {}
    while engine.sessions:
        for block in engine.step():
            out.setdefault(block.request_id, []).append(block)
    return {rid: (torch.cat([b.latents for b in bs], 1), torch.cat([b.frames for b in bs])) for rid, bs in out.items()}


def test_an_untouched_fork_continues_exactly_like_the_original():
    alone = _engine().generate(GenerationRequest(12, prompt_embeds=EMBEDS, seed=4))
    engine = _engine()
    parent = engine.add_request(GenerationRequest(12, prompt_embeds=EMBEDS, seed=4))
    first = engine.step() + engine.step()  # blocks 0 and 1
    used_before = engine.pool.num_used
    child = engine.fork(parent)
    assert engine.pool.num_used == used_before  # the past is shared, not copied
    assert all(engine.pool.refcount(p) == 2 for p in engine.sessions[child].pages.pages)
    rest = _drain(engine)
    past = torch.cat([b.latents for b in first], 1)
    for rid in (parent, child):
        assert torch.equal(torch.cat([past, rest[rid][0]], 1), alone.latents)
    # the fork's decoder carried on from the shared state: its frames are the original's too
    assert torch.equal(rest[child][1], alone.frames[len(first[0].frames) + len(first[1].frames):])
    assert engine.pool.num_free == engine.pool.num_pages


def test_a_fork_with_other_noise_or_actions_has_its_own_future():
    engine = _engine()
    parent = engine.add_request(GenerationRequest(12, prompt_embeds=EMBEDS, seed=4))
    engine.step()
    child = engine.fork(parent, seed=99)
    rest = _drain(engine)
    assert (rest[parent][0] - rest[child][0]).abs().max() > 1e-3


def test_recache_on_a_fork_leaves_the_original_pages_alone():
    engine = _engine()
    parent = engine.add_request(GenerationRequest(12, prompt_embeds=EMBEDS, seed=4))
    engine.step()
    engine.step()
    shared = list(engine.sessions[parent].pages.pages)
    keys_before = engine.runner.storage.keys[0][shared].clone()
    child = engine.fork(parent)
    engine.switch_prompt(child, prompt_embeds=EMBEDS * -1, recache=True)
    while child in engine.sessions and engine.sessions[child].recache_pending:
        engine.step()
    assert torch.equal(engine.runner.storage.keys[0][shared], keys_before)
    assert set(engine.sessions[child].pages.pages).isdisjoint(shared)
    _drain(engine)
    assert engine.pool.num_free == engine.pool.num_pages


def test_fork_with_a_window_frees_shared_pages_only_when_both_are_done():
    engine = _engine(window_frames=3)
    parent = engine.add_request(GenerationRequest(15, prompt_embeds=EMBEDS, seed=4))
    engine.step()
    engine.step()
    engine.fork(parent)
    _drain(engine)
    assert engine.pool.num_free == engine.pool.num_pages


def test_fork_errors_are_clear():
    engine = Engine(tiny_engine_config(attention="recompute"), strong_model())
    rid = engine.add_request(GenerationRequest(6, prompt_embeds=EMBEDS))
    with pytest.raises(ValueError, match="fork: needs the paged cache"):
        engine.fork(rid)
    with pytest.raises(ValueError, match="request_id: no running session 7"):
        engine.fork(7)
