import torch

from worldcast.config import ScheduleConfig
from worldcast.diffusion.flow_match import FlowMatchSchedule


def _walk(schedule: FlowMatchSchedule, flow_fn, start: torch.Tensor, seed: int = 0):
    """The runner's loop over one block: a list of the samples visited, then the final x0."""
    gen = torch.Generator().manual_seed(seed)
    x, visited = start, []
    for t, t_next in schedule.step_pairs():
        flow = flow_fn(x, t)
        x0 = schedule.x0_from_flow(flow, x, t)
        if t_next is None:
            return visited, x0
        x = schedule.next_sample(x, flow, x0, torch.randn(x.shape, generator=gen), t, t_next)
        visited.append((t_next, x))


def test_euler_follows_the_straight_path_its_noise_started():
    schedule = FlowMatchSchedule(ScheduleConfig(sampler="euler", shift=3.0))
    x0, noise = torch.randn(2, 8), torch.randn(2, 8)
    visited, final = _walk(schedule, lambda x, t: (x - x0) / schedule.sigma(t), noise)  # an exact model
    for t, x in visited:
        assert torch.allclose(x, schedule.add_noise(x0, noise, t), atol=1e-5)
    assert torch.allclose(final, x0, atol=1e-5)


def test_renoise_puts_fresh_noise_on_the_prediction():
    schedule = FlowMatchSchedule(ScheduleConfig(sampler="renoise", shift=3.0))
    x0, noise = torch.randn(2, 8), torch.randn(2, 8)
    visited, final = _walk(schedule, lambda x, t: (x - x0) / schedule.sigma(t), noise)
    gen = torch.Generator().manual_seed(0)
    for t, x in visited:
        assert torch.allclose(x, schedule.add_noise(x0, torch.randn(x.shape, generator=gen), t), atol=1e-5)
    assert torch.allclose(final, x0, atol=1e-5)


def test_the_samplers_differ_for_an_inexact_model():
    x0, noise = torch.randn(2, 8), torch.randn(2, 8)
    blurred = lambda x, t: noise - 0.5 * x0  # noqa: E731 - predicts a shrunken x0
    finals = [_walk(FlowMatchSchedule(ScheduleConfig(sampler=s)), blurred, noise)[1] for s in ("renoise", "euler")]
    assert (finals[0] - finals[1]).abs().max() > 1e-2
