"""Action conditioning: per-pixel-frame actions grouped per latent frame, through the cache."""

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import Engine, GenerationRequest

ACTION_MODEL = TINY.__class__(**{**TINY.__dict__, "num_actions": 5})


def _engine(**changes):
    model = strong_model(ACTION_MODEL)
    torch.manual_seed(5)
    for p in model.action_embedding.parameters():  # make actions matter in the random model
        p.data.normal_(0, 1.0)
    return Engine(tiny_engine_config(model=ACTION_MODEL, **changes), model)


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


def test_cached_equals_recompute_with_actions(prompt_embeds):
    actions = _actions(lambda i: (i // 3) % 5)
    outs = [_engine(attention=mode).generate(GenerationRequest(9, prompt_embeds=prompt_embeds, seed=3,
                                                               actions=actions)).latents
            for mode in ("cache", "recompute")]
    assert (outs[0] - outs[1]).abs().max() < 1e-4


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
