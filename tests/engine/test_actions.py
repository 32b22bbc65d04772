"""Action conditioning: per-pixel-frame actions grouped per latent frame, through the cache."""

import dataclasses

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import Engine, GenerationRequest

ACTION_MODEL = TINY.__class__(**{**TINY.__dict__, "num_actions": 5})
# RoPE following the camera: none, up, down, left, right move half a token per pixel frame
CAMERA_MODEL = dataclasses.replace(ACTION_MODEL, action_camera=((0, 0), (-0.5, 0), (0.5, 0), (0, -0.5), (0, 0.5)))


def _engine(model_config=ACTION_MODEL, **changes):
    model = strong_model(model_config)
    torch.manual_seed(5)
    for p in model.action_embedding.parameters():  # make actions matter in the random model
        p.data.normal_(0, 1.0)
    return Engine(tiny_engine_config(model=model_config, **changes), model)


def _actions(pattern, frames=9):
    return [pattern(i) for i in range(4 * (frames - 1))]


def test_actions_condition_the_frames_they_lead_to(prompt_embeds):
    engine = _engine()
    still = engine.generate(GenerationRequest(9, prompt_embeds=prompt_embeds, seed=1, actions=_actions(lambda i: 0)))
    # Change only the actions leading into the last block (latent frames 6-8, pixel actions 20..):
    # earlier blocks cannot see them; every frame of the last block can (attention is
    # bidirectional inside a block).
    moved = engine.generate(GenerationRequest(9, prompt_embeds=prompt_embeds, seed=1,
                                              actions=_actions(lambda i: 4 if i >= 20 else 0)))
    diff = (still.latents - moved.latents).abs().amax(dim=(0, 2, 3))  # per latent frame
    assert diff[:6].max() == 0 and diff[6:].min() > 1e-3


def test_no_actions_means_none(prompt_embeds):
    engine = _engine()
    a = engine.generate(GenerationRequest(6, prompt_embeds=prompt_embeds, seed=2)).latents
    b = engine.generate(GenerationRequest(6, prompt_embeds=prompt_embeds, seed=2, actions=[0] * 20)).latents
    assert torch.equal(a, b)


@pytest.mark.parametrize("model_config", [ACTION_MODEL, CAMERA_MODEL], ids=["embedding", "camera rope"])
def test_cached_equals_recompute_with_actions(prompt_embeds, model_config):
    actions = _actions(lambda i: (i // 3) % 5)
    outs = [_engine(model_config, attention=mode).generate(GenerationRequest(9, prompt_embeds=prompt_embeds, seed=3,
                                                                             actions=actions)).latents
            for mode in ("cache", "recompute")]
    assert (outs[0] - outs[1]).abs().max() < 1e-4


def test_the_camera_path_moves_the_cached_past_relative_to_the_block(prompt_embeds):
    # Same action embeddings everywhere (the embedding is zeroed): only the positions differ,
    # and a camera that moved before the last block changes that block, not the ones before it.
    engine = _engine(CAMERA_MODEL)
    for p in engine.runner.model.action_embedding.parameters():
        p.data.zero_()
    still = engine.generate(GenerationRequest(9, prompt_embeds=prompt_embeds, seed=1, actions=_actions(lambda i: 0)))
    moved = engine.generate(GenerationRequest(9, prompt_embeds=prompt_embeds, seed=1,
                                              actions=_actions(lambda i: 4 if i >= 20 else 0)))
    diff = (still.latents - moved.latents).abs().amax(dim=(0, 2, 3))
    assert diff[:6].max() == 0 and diff[6:].min() > 1e-3


def test_a_fork_keeps_its_past_actions(prompt_embeds):
    engine = _engine(CAMERA_MODEL)
    still = _actions(lambda i: 0)
    parent = engine.add_request(GenerationRequest(9, prompt_embeds=prompt_embeds, seed=1, actions=still))
    engine.step()  # latent frames 0-2 made: pixel actions 0-7 are the past
    engine.fork(parent, actions=tuple(_actions(lambda i: 4 if i >= 8 else 0)))  # a new future is fine
    with pytest.raises(ValueError, match="a fork keeps its past; the first 8 per-pixel-frame actions"):
        engine.fork(parent, actions=tuple(_actions(lambda i: 4 if i >= 7 else 0)))


@pytest.mark.parametrize("actions, message", [
    ([0] * 10, "need at least 20 per-pixel-frame actions"),
    ([5] * 20, "ids must be below 5"),
])
def test_bad_actions(prompt_embeds, actions, message):
    with pytest.raises(ValueError, match=message):
        _engine().add_request(GenerationRequest(6, prompt_embeds=prompt_embeds, actions=actions))


def test_actions_for_a_model_without_them(prompt_embeds):
    engine = Engine(tiny_engine_config(), strong_model())
    with pytest.raises(ValueError, match="not action-conditioned"):
        engine.add_request(GenerationRequest(3, prompt_embeds=prompt_embeds, actions=[1] * 8))
    with pytest.raises(ValueError, match="non-negative integer"):
        GenerationRequest(3, prompt_embeds=prompt_embeds, actions=[-1])
