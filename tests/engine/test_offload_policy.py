"""over_budget="offload": a request larger than the device budget runs unchanged, its older
frames in host memory, streamed back per layer; the output is bit-identical."""

import dataclasses
import logging

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.cache import KVCacheSpec
from worldcast.models.placeholder import LatentPreviewDecoder

DEEP = dataclasses.replace(TINY, num_layers=8)  # staging costs 2/num_layers of what it offloads
EMBEDS = torch.randn(4, TINY.text_dim, generator=torch.Generator().manual_seed(0))
MODEL = strong_model(DEEP)


def _config(**cache):
    return tiny_engine_config(model=DEEP, cache=CacheConfig(**cache))


def _engine(pages=None, **cache):
    if pages is not None:
        cache = {**cache, "budget_bytes": pages * _page_bytes(**cache), "over_budget": "offload"}
    config = _config(**cache)
    return Engine(config, MODEL, decoder=LatentPreviewDecoder(DEEP.in_dim, config.vae_stride))


def _page_bytes(**cache):
    cache = {k: v for k, v in cache.items() if k in ("quantization", "dtype")}
    return KVCacheSpec.from_engine_config(_config(**cache)).bytes_per_page


def _request(frames=21, seed=1):
    return GenerationRequest(frames, prompt_embeds=EMBEDS, seed=seed)


def _finish(engine, request_id):
    blocks = []
    while request_id in engine.sessions:
        blocks += [b for b in engine.step() if b.request_id == request_id]
    return torch.cat([b.latents for b in blocks], 1)


@pytest.mark.parametrize("cache", [{}, {"window_frames": 9, "sink_frames": 1}, {"quantization": "int8"},
                                   {"quantization": "fp8"}])
def test_offloaded_generation_is_bit_identical_to_an_all_resident_cache(cache, caplog):
    reference = _engine(**cache).generate(_request(30))
    engine = _engine(pages=12 if "window_frames" not in cache else 9, **cache)
    with caplog.at_level(logging.WARNING):
        result = engine.generate(_request(30))
    assert torch.equal(result.latents, reference.latents) and torch.equal(result.frames, reference.frames)
    assert engine.applied_policies[0].startswith("offload: ") and "host memory" in caplog.text
    assert engine.pool.num_free == engine.pool.num_pages
    assert engine.runner.host_tier.pool.num_free == engine.runner.host_tier.pool.num_pages


def test_device_pages_stay_within_the_budget_while_host_pages_take_the_rest():
    engine = _engine(pages=12)
    rid = engine.add_request(_request(30))
    session = engine.sessions[rid]
    assert (session.resident, session.staging_size) == (3, 6)  # 3 resident + 3 block + 6 staging for 24
    held = []
    while rid in engine.sessions:
        engine.step()
        if rid in engine.sessions:
            assert engine.pool.num_used <= 12
            assert len(session.pages) <= session.resident + 3  # no block pages between blocks
            assert session.pages.held_frames[-1] == session.frames_done - 1
            held.append((len(session.pages), len(session.host)))
            assert sorted(session.held_frames) == list(range(session.frames_done))  # nothing was lost
    assert held[-1] == (3, 24)  # after 27 of 30 frames: the latest 3 resident, the rest on the host


def test_fork_shares_offloaded_pages_and_both_futures_match_an_uninterrupted_run():
    alone = _engine().generate(_request())
    engine = _engine(pages=20)
    parent = engine.add_request(_request())
    first = [engine.step()[0] for _ in range(6)]  # enough blocks that some frames are offloaded
    assert engine.sessions[parent].host
    child = engine.fork(parent)
    assert engine.sessions[child].host.pages == engine.sessions[parent].host.pages
    assert all(engine.runner.host_tier.pool.refcount(p) == 2 for p in engine.sessions[child].host.pages)
    past = torch.cat([b.latents for b in first], 1)
    rest_parent, rest_child = _finish(engine, parent), _finish(engine, child)
    assert torch.equal(torch.cat([past, rest_parent], 1), alone.latents)
    assert torch.equal(torch.cat([past, rest_child], 1), alone.latents)
    assert engine.runner.host_tier.pool.num_free == engine.runner.host_tier.pool.num_pages


@pytest.mark.parametrize("restore_pages", [10, None])
def test_save_and_restore_with_offloaded_frames(tmp_path, restore_pages):
    """Restored into an engine that offloads (offloaded frames go back to the host) or into
    one without a budget (everything resident): the same continuation either way."""
    whole = _engine().generate(_request())
    engine = _engine(pages=10)
    rid = engine.add_request(_request())
    before = [engine.step()[0] for _ in range(4)]
    assert engine.sessions[rid].host
    engine.save(rid, tmp_path / "world.snap")
    engine.abort(rid)
    fresh = _engine(pages=restore_pages)
    restored = fresh.restore(tmp_path / "world.snap")
    assert bool(fresh.sessions[restored].host) == (restore_pages is not None)
    latents = _finish(fresh, restored)
    assert torch.equal(torch.cat([b.latents for b in before] + [latents], 1), whole.latents)
    assert fresh.pool.num_free == fresh.pool.num_pages


def test_offload_refusals_are_clear():
    shallow = tiny_engine_config(cache=CacheConfig(budget_bytes=1, over_budget="offload"))
    page = KVCacheSpec.from_engine_config(shallow).bytes_per_page
    engine = Engine(tiny_engine_config(cache=CacheConfig(budget_bytes=10 * page, over_budget="offload")),
                    strong_model())
    with pytest.raises(ValueError, match="offloading cannot make it fit: staging .* 2/2"):
        engine.add_request(_request())
    assert not engine.sessions and engine.pool.num_free == 10
    with pytest.raises(ValueError, match="CacheConfig.over_budget: 'offload' cannot be combined with retrieval"):
        CacheConfig(window_frames=3, retrieval_pages=1, over_budget="offload")
    engine = _engine(pages=10)
    rid = engine.add_request(_request())
    for _ in range(3):
        engine.step()
    with pytest.raises(ValueError, match="recache: not supported while frames are offloaded"):
        engine.switch_prompt(rid, prompt_embeds=EMBEDS, recache=True)
    engine.switch_prompt(rid, prompt_embeds=EMBEDS)  # without re-cache it is fine


def test_cli_over_budget_offload(tmp_path, capsys, caplog):
    from tiny import random_world_dir
    from worldcast.cli import main

    args = ["generate", "--prompt", "a top-down view of a forest at day", "--quiet", "--frames", "35",
            "--kv-budget", "3M", "--over-budget", "offload", "--window", "0"]
    # the built-in world's architecture (6 layers): 18 latent frames run in 8 device pages
    world = random_world_dir(tmp_path / "world")
    with caplog.at_level(logging.WARNING):
        assert main(args + ["--model", str(world), "--out", str(tmp_path / "w.mp4")]) == 0
    assert "in host memory (over_budget='offload')" in caplog.text and (tmp_path / "w.mp4").stat().st_size
    # the tiny preset has 2 layers: offloading cannot help, and the refusal says why
    with pytest.raises(SystemExit) as exc:
        main(args[:-2] + ["--frames", "33", "--model", "tiny", "--height", "32", "--width", "48", "--kv-budget", "20K",
                     "--out", str(tmp_path / "t.mp4")])
    assert exc.value.code == 2 and "offloading cannot make it fit" in capsys.readouterr().err
