import pytest

from tiny import TINY
from worldcast import CacheConfig, EngineConfig, ModelConfig, ScheduleConfig


@pytest.mark.parametrize("kwargs, field", [
    (dict(dim=100, num_heads=12), "ModelConfig.num_heads"),
    (dict(num_layers=0), "ModelConfig.num_layers"),
    (dict(patch_size=(2, 2, 2)), "ModelConfig.patch_size"),
    (dict(eps=0.0), "ModelConfig.eps"),
    (dict(num_actions=-1), "ModelConfig.num_actions"),
    (dict(actions_per_frame=0), "ModelConfig.actions_per_frame"),
])
def test_model_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    (dict(denoising_steps=()), "denoising_steps"),
    (dict(denoising_steps=(500, 750)), "strictly decreasing"),
    (dict(denoising_steps=(1200,)), "denoising_steps"),
    (dict(denoising_steps=(999.5,)), "whole numbers"),
    (dict(shift=0), "ScheduleConfig.shift"),
    (dict(sampler="ddim"), "ScheduleConfig.sampler"),
    (dict(context_noise=1000), "context_noise"),
])
def test_schedule_config_errors(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ScheduleConfig(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    (dict(height=100), "EngineConfig.height"),
    (dict(width=0), "EngineConfig.width"),
    (dict(frames_per_block=0), "EngineConfig.frames_per_block"),
    (dict(attention="sparse"), "EngineConfig.attention"),
    (dict(dtype="int4"), "EngineConfig.dtype"),
    (dict(device="quantum"), "EngineConfig.device"),
])
def test_engine_config_errors(kwargs, field):
    with pytest.raises(ValueError, match=field):
        EngineConfig(model=TINY, **{"height": 32, "width": 32, **kwargs})


def test_cache_config_errors():
    with pytest.raises(ValueError, match="CacheConfig.num_pages"):
        CacheConfig(num_pages=0)
    with pytest.raises(ValueError, match="CacheConfig.dtype"):
        CacheConfig(dtype="float8")


def test_block_sizes():
    cfg = EngineConfig(model=TINY, height=32, width=32)
    assert cfg.block_sizes(9) == [3, 3, 3]
    cfg1 = EngineConfig(model=TINY, height=32, width=32, independent_first_frame=True)
    assert cfg1.block_sizes(7) == [1, 3, 3]
    with pytest.raises(ValueError, match="num_latent_frames: 8 .* accepted values are 3, 6, 9"):
        cfg.block_sizes(8)
    with pytest.raises(ValueError, match="accepted values are 4, 7"):
        cfg1.block_sizes(9)


def test_derived_sizes_follow_the_spec():
    cfg = EngineConfig(height=480, width=832)  # Wan2.1-1.3B at 480p
    assert (cfg.latent_height, cfg.latent_width, cfg.tokens_per_frame) == (60, 104, 1560)
