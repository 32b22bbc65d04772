"""Classifier-free guidance: an unconditional branch (negative prompt, no actions) per step."""

import dataclasses

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import Engine, GenerationRequest, ScheduleConfig
from worldcast.models.placeholder import HashingTextEncoder
from worldcast.profiling.profiler import Profiler

ACTION_MODEL = dataclasses.replace(TINY, num_actions=5)
NEGATIVE = torch.randn(3, TINY.text_dim, generator=torch.Generator().manual_seed(9))


def _engine(scale, steps=(1000.0, 750.0, 500.0, 250.0), model=TINY):
    schedule = ScheduleConfig(denoising_steps=steps, guidance_scale=scale)
    net = strong_model(model)
    if model.num_actions:
        torch.manual_seed(5)
        for p in net.action_embedding.parameters():  # make actions matter in the random model
            p.data.normal_(0, 1.0)
    return Engine(tiny_engine_config(model=model, schedule=schedule), net)


def _request(prompt_embeds, negative=NEGATIVE, **kw):
    return GenerationRequest(6, prompt_embeds=prompt_embeds, negative_prompt_embeds=negative, seed=3, **kw)


def test_guided_flow_is_uncond_plus_scale_times_the_difference(prompt_embeds):
    """One denoising step from t=1000 (sigma 1): x0 = noise - flow, so the first block's x0 moves
    linearly with the scale: equal steps between scales 1, 2 and 3."""
    first = [_engine(s, steps=(1000.0,)).generate(_request(prompt_embeds)).latents[:, :3] for s in (1.0, 2.0, 3.0)]
    step = first[1] - first[0]
    assert step.abs().max() > 1e-2  # the unconditional branch differs from the conditional one
    torch.testing.assert_close(first[2] - first[1], step, atol=1e-4, rtol=1e-4)


def test_the_unconditional_branch_drops_the_prompt_and_the_actions(prompt_embeds):
    same = _request(prompt_embeds, negative=prompt_embeds)  # negative prompt = prompt: only actions differ
    plain = _engine(1.0).generate(same).latents
    torch.testing.assert_close(_engine(3.0).generate(same).latents, plain, atol=1e-5, rtol=1e-5)
    actions = tuple([1, 2, 3, 4] * 5)
    with_actions = _request(prompt_embeds, negative=prompt_embeds, actions=actions)
    plain = _engine(1.0, model=ACTION_MODEL).generate(with_actions).latents
    guided = _engine(3.0, model=ACTION_MODEL).generate(with_actions).latents
    assert (guided - plain).abs().max() > 1e-2  # uncond saw NULL_ACTION, not these actions


def test_guidance_runs_two_passes_per_step_and_says_so_in_flops(prompt_embeds):
    flops = []
    for scale in (1.0, 2.0):
        profiler = Profiler()
        engine = Engine(tiny_engine_config(schedule=ScheduleConfig(guidance_scale=scale)), strong_model(),
                        profiler=profiler)
        engine.generate(_request(prompt_embeds))
        flops.append(profiler.summary()["dit_flops"])
    assert flops[1] * 5 == flops[0] * 9  # 4 steps + commit, against 2 x 4 steps + commit


def test_the_default_negative_prompt_is_the_empty_one():
    encoder = HashingTextEncoder(TINY.text_dim, TINY.text_len)
    engine = Engine(tiny_engine_config(schedule=ScheduleConfig(guidance_scale=2.0)), strong_model(), encoder)
    default = engine.generate(GenerationRequest(6, prompt="a fox", seed=1)).latents
    empty = engine.generate(GenerationRequest(6, prompt="a fox", seed=1,
                                              negative_prompt_embeds=encoder.encode(""))).latents
    other = engine.generate(GenerationRequest(6, prompt="a fox", seed=1, negative_prompt="a dog")).latents
    assert torch.equal(default, empty) and not torch.equal(default, other)


def test_a_guided_session_restores_bit_identically(tmp_path, prompt_embeds):
    whole = _engine(2.0).generate(_request(prompt_embeds)).latents
    engine = _engine(2.0)
    rid = engine.add_request(_request(prompt_embeds))
    first = engine.step()[0].latents
    engine.save(rid, tmp_path / "s.snap")
    fresh = _engine(2.0)
    restored = fresh.restore(tmp_path / "s.snap")
    rest = [b.latents for b in fresh.step()]
    assert restored not in fresh.sessions and torch.equal(torch.cat([first, *rest], 1), whole)


def test_guidance_errors_are_clear(prompt_embeds):
    with pytest.raises(ValueError, match="ScheduleConfig.guidance_scale: must be a positive number"):
        ScheduleConfig(guidance_scale=0)
    with pytest.raises(ValueError, match="ScheduleConfig.guidance_scale: guidance needs attention='cache'"):
        tiny_engine_config(schedule=ScheduleConfig(guidance_scale=2.0), attention="recompute")
    engine = Engine(tiny_engine_config(schedule=ScheduleConfig(guidance_scale=2.0)), strong_model())
    with pytest.raises(ValueError, match="negative_prompt_embeds: guidance .* no text encoder"):
        engine.add_request(GenerationRequest(6, prompt_embeds=prompt_embeds))
    with pytest.raises(ValueError, match=r"negative_prompt_embeds: expected \(tokens <= 16, 32\)"):
        engine.add_request(_request(prompt_embeds, negative=torch.zeros(3, 7)))
    with pytest.raises(ValueError, match="negative_prompt: give at most one"):
        GenerationRequest(6, prompt="a", negative_prompt="b", negative_prompt_embeds=NEGATIVE)


def test_cli_guidance_and_negative_prompt(tmp_path):
    from worldcast.cli import main

    args = ["generate", "--model", "tiny", "--prompt", "a fox", "--height", "32", "--width", "48", "--quiet",
            "--frames", "9", "--guidance", "3", "--negative-prompt", "blurry"]
    assert main(args + ["--out", str(tmp_path / "a.mp4")]) == 0
    with pytest.raises(SystemExit) as exc:
        main(args + ["--attention", "recompute", "--out", str(tmp_path / "b.mp4")])
    assert exc.value.code == 2


def test_the_batched_branches_equal_two_separate_passes(prompt_embeds):
    """Guidance runs conditional and unconditional as one batch of two over the block, both
    reading the same cached past; the same as running them one after the other."""
    engine = _engine(3.0, model=ACTION_MODEL)
    rid = engine.add_request(_request(prompt_embeds, actions=tuple([1, 2, 3, 4] * 5)))
    engine.step()  # one block cached: the next one has context
    session = engine.sessions[rid]
    session.pages.append_frames(session.current_block_frames)
    x = torch.randn(1, TINY.in_dim, 3, 4, 6, generator=torch.Generator().manual_seed(1))
    runner = engine.runner
    inputs = runner._block_inputs(session)
    guided = runner._guided_flow(session, x, 750.0, inputs)
    cond = runner._forward(session, x, 750.0, inputs)
    blank = dataclasses.replace(session, text=session.uncond_text, actions=torch.full_like(session.actions, -1))
    uncond = runner._forward(blank, x, 750.0, inputs)
    torch.testing.assert_close(guided, uncond + 3.0 * (cond - uncond), atol=1e-5, rtol=1e-5)
    assert (cond - uncond).abs().max() > 1e-2
