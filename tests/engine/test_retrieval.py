"""Block-sparse retrieval: besides sink and window, the top-k earlier pages by mean-key score."""

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.cache.view import PagedKV

EMBEDS = torch.randn(4, TINY.text_dim, generator=torch.Generator().manual_seed(0))


def _generate(frames=18, **cache):
    engine = Engine(tiny_engine_config(cache=CacheConfig(**cache)), strong_model())
    return engine, engine.generate(GenerationRequest(frames, prompt_embeds=EMBEDS, seed=2)).latents


def test_retrieving_every_candidate_is_the_full_cache():
    _, full = _generate()
    _, everything = _generate(window_frames=3, retrieval_pages=100)
    assert (everything - full).abs().max() < 1e-5  # same keys, another summation order


def test_retrieval_adds_memory_to_a_window_and_changes_what_is_seen():
    _, window = _generate(window_frames=3)
    engine, retrieved = _generate(window_frames=3, retrieval_pages=1)
    _, full = _generate()
    assert torch.equal(window[:, :6], retrieved[:, :6])  # nothing to retrieve before block 2
    assert (retrieved[:, 6:] - window[:, 6:]).abs().max() > 1e-3
    assert (retrieved[:, 6:] - full[:, 6:]).abs().max() > 1e-3
    assert engine.pool.num_pages == 18  # candidates are kept: memory grows, attention does not


def test_the_best_scoring_page_is_chosen():
    class Means:
        def read(self, layer, pages):  # page p's mean key is p * ones: the highest page wins
            return torch.stack([torch.full((2, 4), float(p)) for p in pages])

    class Storage:
        key_means = Means()

    kv = PagedKV(Storage(), context_pages=[9], block_pages=[10], candidates=[3, 7, 5], top_k=2)
    q = torch.ones(1, 6, 2, 4)
    assert kv.layer(0)._retrieved(q) == [7, 5]
    assert kv.layer(0)._retrieved(-q) == [3, 5]  # the two lowest-scoring are out; page order kept


def test_retrieval_needs_a_window_and_the_cache():
    with pytest.raises(ValueError, match="CacheConfig.retrieval_pages: needs window_frames"):
        CacheConfig(retrieval_pages=2)
    with pytest.raises(ValueError, match="CacheConfig.retrieval_pages: needs attention='cache'"):
        tiny_engine_config(attention="recompute", cache=CacheConfig(window_frames=3, retrieval_pages=2))


def test_cli_cache_policy_flags_reach_the_engine(tmp_path, capsys):
    import json

    from worldcast.cli import main

    assert main(["generate", "--model", "tiny", "--prompt", "a fox", "--frames", "33", "--height", "32", "--width",
                 "48", "--window", "3", "--sink", "1", "--retrieval", "1", "--kv-quant", "int8",
                 "--out", str(tmp_path / "v.mp4"), "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)["profile"]
    # every frame kept (retrieval), in INT8 pages: 9 pages of the quantized size
    config = tiny_engine_config(height=32, width=48, dtype="bfloat16",
                                cache=CacheConfig(window_frames=3, retrieval_pages=1, quantization="int8"))
    from worldcast.cache import KVCacheSpec
    assert profile["kv_session_bytes_max"] == 9 * KVCacheSpec.from_engine_config(config).bytes_per_page
    with pytest.raises(SystemExit):
        main(["generate", "--model", "tiny", "--prompt", "a fox", "--retrieval", "2", "--out", str(tmp_path / "w.mp4")])
    assert "CacheConfig.retrieval_pages: needs window_frames" in capsys.readouterr().err
