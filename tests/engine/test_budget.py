"""A memory budget for the KV cache: pages planned from bytes, refusal or a reported policy."""

import logging

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.cache import KVCacheSpec


def _page_bytes(**cache):
    return KVCacheSpec.from_engine_config(tiny_engine_config(cache=CacheConfig(**cache))).bytes_per_page


def _engine(**cache):
    return Engine(tiny_engine_config(cache=CacheConfig(**cache)), strong_model())


def _request(frames):
    embeds = torch.randn(4, TINY.text_dim, generator=torch.Generator().manual_seed(0))
    return GenerationRequest(frames, prompt_embeds=embeds, seed=1)


def test_budget_in_bytes_plans_whole_pages():
    page = _page_bytes()
    engine = _engine(budget_bytes=7 * page + page // 2)
    assert engine.pool.num_pages == 7
    # quantized pages are smaller: the same budget holds more of them
    assert _engine(budget_bytes=7 * page, quantization="int8").pool.num_pages > 7


def test_budget_fraction_of_the_machine():
    engine = _engine(budget_fraction=1e-6)
    assert engine.pool.num_pages >= 3


def test_a_request_over_budget_is_refused_with_the_figures():
    engine = _engine(budget_bytes=6 * _page_bytes())
    with pytest.raises(ValueError, match=r"needs 12 KV pages \(.* MiB\) but the cache holds 6 .*window_frames"):
        engine.add_request(_request(12))
    assert not engine.sessions and engine.pool.num_free == 6
    engine.generate(_request(6))  # what fits still runs


def test_over_budget_window_policy_runs_it_windowed_and_says_so(caplog):
    engine = _engine(budget_bytes=6 * _page_bytes(), over_budget="window")
    with caplog.at_level(logging.WARNING):
        result = engine.generate(_request(15))
    assert result.latents.shape[1] == 15
    assert engine.applied_policies == {0: "sliding window of 3 latent frames"}  # 6 pages - one block of 3
    assert "sliding window of 3" in caplog.text
    reference = Engine(tiny_engine_config(cache=CacheConfig(window_frames=3)), strong_model()).generate(_request(15))
    assert (result.latents - reference.latents).abs().max() < 1e-5  # the same as asking for that window


def test_budget_too_small_for_one_block_and_conflicting_sizes_are_clear():
    with pytest.raises(ValueError, match="CacheConfig.budget_bytes: .* holds 2 KV page.*one block needs 3"):
        _engine(budget_bytes=2 * _page_bytes())
    with pytest.raises(ValueError, match="at most one of num_pages, budget_bytes, budget_fraction"):
        CacheConfig(num_pages=4, budget_bytes=10)
    with pytest.raises(ValueError, match="CacheConfig.budget_fraction"):
        CacheConfig(budget_fraction=1.5)
    with pytest.raises(ValueError, match="CacheConfig.over_budget"):
        CacheConfig(over_budget="evict")


def test_cli_budget_flags(tmp_path, capsys):
    from worldcast.cli import _budget, main

    assert _budget("512M") == {"budget_bytes": 512 * 2**20} and _budget("2GiB") == {"budget_bytes": 2 * 2**30}
    assert _budget("25%") == {"budget_fraction": 0.25} and _budget("1000") == {"budget_bytes": 1000}
    args = ["generate", "--model", "tiny", "--prompt", "a fox", "--height", "32", "--width", "48", "--quiet",
            "--out", str(tmp_path / "v.mp4"), "--frames", "33", "--kv-budget", "20K"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and "needs 9 KV pages" in capsys.readouterr().err
    assert main(args + ["--over-budget", "window"]) == 0


def test_over_budget_window_turns_retrieval_off_to_fit():
    engine = _engine(budget_bytes=6 * _page_bytes(window_frames=3, retrieval_pages=1), over_budget="window",
                     window_frames=3, retrieval_pages=1)
    result = engine.generate(_request(15))
    assert result.latents.shape[1] == 15 and engine.pool.num_free == engine.pool.num_pages == 6
    assert engine.applied_policies == {0: "sliding window of 3 latent frames"}
