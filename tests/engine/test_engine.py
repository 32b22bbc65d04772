import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.models.placeholder import HashingTextEncoder, LatentPreviewDecoder


def _engine(**changes):
    config = tiny_engine_config(**changes)
    decoder = LatentPreviewDecoder(TINY.in_dim, config.vae_stride)
    return Engine(config, strong_model(dtype=config.torch_dtype),
                  HashingTextEncoder(TINY.text_dim, TINY.text_len), decoder)


def test_stream_yields_one_output_per_block_with_vae_frame_counts():
    engine = _engine()
    blocks = list(engine.stream(GenerationRequest(9, prompt="a fox")))
    assert [b.block_index for b in blocks] == [0, 1, 2]
    assert [b.frame_start for b in blocks] == [0, 3, 6]
    assert [b.is_last for b in blocks] == [False, False, True]
    assert [len(b.frames) for b in blocks] == [9, 12, 12]  # 1 + 4k pixel frames: 33 in all
    assert blocks[0].frames.shape[1:] == (32, 48, 3)
    assert set(blocks[0].timings) == {"step_0", "step_1", "step_2", "step_3", "commit", "decode"}


def test_every_page_is_returned_after_generation_and_abort():
    engine = _engine()
    engine.generate(GenerationRequest(9, prompt="a fox"))
    assert engine.pool.num_free == engine.pool.num_pages == 9
    request_id = engine.add_request(GenerationRequest(6, prompt="a fox"))
    engine.step()
    assert engine.pool.num_free == 6  # pages are taken block by block
    engine.abort(request_id)
    assert engine.pool.num_free == 9 and not engine.sessions


def test_leaving_a_stream_early_returns_its_pages():
    engine = _engine()
    stream = engine.stream(GenerationRequest(9, prompt="a fox"))
    first = next(stream)
    assert first.block_index == 0 and engine.pool.num_free == 6
    stream.close()
    assert engine.pool.num_free == 9 and not engine.sessions


def test_same_seed_same_video_and_longer_videos_extend_shorter_ones():
    engine = _engine()
    a = engine.generate(GenerationRequest(6, prompt="a fox", seed=11)).latents
    b = engine.generate(GenerationRequest(6, prompt="a fox", seed=11)).latents
    c = engine.generate(GenerationRequest(9, prompt="a fox", seed=11)).latents
    d = engine.generate(GenerationRequest(6, prompt="a fox", seed=12)).latents
    assert torch.equal(a, b)
    assert torch.equal(a, c[:, :6])
    assert not torch.allclose(a, d)


def test_interleaved_sessions_match_sessions_run_alone():
    engine = _engine()
    alone = [engine.generate(GenerationRequest(6, prompt=p, seed=s)).latents
             for p, s in (("a fox", 1), ("a city at night", 2))]
    ids = [engine.add_request(GenerationRequest(6, prompt=p, seed=s))
           for p, s in (("a fox", 1), ("a city at night", 2))]
    outputs = {i: [] for i in ids}
    order = []
    while engine.sessions:
        for out in engine.step():
            outputs[out.request_id].append(out.latents)
            order.append(out.request_id)
    assert order == [ids[0], ids[1], ids[0], ids[1]]  # round-robin
    for i, expected in zip(ids, alone):
        torch.testing.assert_close(torch.cat(outputs[i], dim=1), expected, atol=1e-5, rtol=1e-5)


def test_fixed_pool_queues_requests_until_pages_free():
    engine = _engine(cache=CacheConfig(num_pages=6))
    first = engine.add_request(GenerationRequest(6, prompt="a fox"))
    second = engine.add_request(GenerationRequest(3, prompt="a fox"))
    engine.step()
    assert engine.scheduler.running and list(engine.scheduler.running) == [first]
    engine.step()  # first finishes and frees its pages
    out = engine.step()
    assert out[0].request_id == second
    with pytest.raises(ValueError, match=r"needs 9 KV pages \(.* MiB\) but the cache holds 6"):
        engine.add_request(GenerationRequest(9, prompt="a fox"))


def test_explicit_noise_reproduces_a_run_number_for_number():
    engine = _engine()
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(16, 6, 4, 6, generator=gen)
    step_noise = torch.randn(3, 16, 6, 4, 6, generator=gen)
    a = engine.generate(GenerationRequest(6, prompt="x", noise=noise, step_noise=step_noise)).latents
    b = engine.generate(GenerationRequest(6, prompt="x", noise=noise, step_noise=step_noise, seed=99)).latents
    assert torch.equal(a, b)


def test_prompt_embeddings_are_cached_per_prompt():
    engine = _engine()
    engine.generate(GenerationRequest(3, prompt="a fox"))
    context = engine._prompt_cache["a fox"]
    engine.generate(GenerationRequest(3, prompt="a fox"))
    assert engine._prompt_cache["a fox"] is context


@pytest.mark.parametrize("request_kwargs, message", [
    (dict(num_latent_frames=8, prompt="x"), "num_latent_frames: 8 latent frames do not fill whole blocks"),
    (dict(num_latent_frames=3, prompt="x", noise=torch.zeros(16, 3, 4, 5)), r"noise: expected shape \(16, 3, 4, 6\)"),
    (dict(num_latent_frames=3, prompt="x", noise=torch.zeros(16, 3, 4, 6), step_noise=torch.zeros(2, 16, 3, 4, 6)),
     "step_noise: expected shape"),
    (dict(num_latent_frames=3, prompt_embeds=torch.zeros(4, 7)), r"prompt_embeds: expected \(tokens <= 16, 32\)"),
    (dict(num_latent_frames=3, prompt_embeds=torch.zeros(17, 32)), "prompt_embeds"),
])
def test_bad_requests_raise_clear_errors(request_kwargs, message):
    with pytest.raises(ValueError, match=message):
        _engine().add_request(GenerationRequest(**request_kwargs))


@pytest.mark.parametrize("request_kwargs, message", [
    (dict(num_latent_frames=0, prompt="x"), "num_latent_frames: must be a positive integer"),
    (dict(num_latent_frames=3, prompt="   "), "prompt: must not be empty"),
    (dict(num_latent_frames=3), "prompt: give exactly one"),
    (dict(num_latent_frames=3, prompt="x", prompt_embeds=torch.zeros(2, 32)), "prompt: give exactly one"),
    (dict(num_latent_frames=3, prompt="x", seed=-1), "seed"),
    (dict(num_latent_frames=3, prompt="x", step_noise=torch.zeros(1)), "step_noise: only meaningful"),
])
def test_request_validation(request_kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationRequest(**request_kwargs)


def test_text_prompt_without_encoder_is_a_clear_error():
    config = tiny_engine_config()
    engine = Engine(config, strong_model())
    with pytest.raises(ValueError, match="no text encoder"):
        engine.add_request(GenerationRequest(3, prompt="a fox"))


def test_model_mismatches_are_rejected():
    with pytest.raises(ValueError, match="ModelConfig differs"):
        Engine(tiny_engine_config(), strong_model(TINY.__class__(**{**TINY.__dict__, "num_layers": 3})))
    with pytest.raises(ValueError, match="EngineConfig.dtype is 'bfloat16'"):
        Engine(tiny_engine_config(dtype="bfloat16"), strong_model(dtype=torch.float32))
