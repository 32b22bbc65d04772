"""Flow-matching noise schedule for few-step causal video models.

Conventions (rectified flow, as in Wan2.1 / Self-Forcing / CausVid):

    x_t   = (1 - sigma) * x0 + sigma * noise          sigma in [0, 1]
    flow  = noise - x0                                  (what the DiT predicts)
    x0    = x_t - sigma * flow

The model is conditioned on the timestep ``t = sigma * num_train_timesteps``. The training
table holds ``num_train_timesteps`` shifted sigmas::

    s_i     = 1 - i / T                 i = 0 .. T-1   (linspace(1, 0, T+1) without its last)
    sigma_i = shift * s_i / (1 + (shift - 1) * s_i)
    t_i     = T * sigma_i

A *warped* step list maps each nominal step ``k`` (e.g. 1000, 750, 500, 250) to ``t_{T-k}``,
the table entry that many positions from the end, which is how Self-Forcing places its 4 steps
on the shifted schedule: [1000, 750, 500, 250] -> [1000.0, 937.5, 833.3, 625.0] at shift 5.
Sigmas for arbitrary timesteps are looked up as the nearest table entry (as the references do).
The table is computed in float32, as the references compute it, so warped steps carry the same
values (833.3333129882812, not 833.3333333333334) into the timestep embedding.
"""

from __future__ import annotations

import torch

from worldcast.config import ScheduleConfig


class FlowMatchSchedule:
    """Timesteps, sigmas and the update rules. Knows nothing of the model."""

    def __init__(self, config: ScheduleConfig) -> None:
        self.config = config
        T = config.num_train_timesteps
        s = torch.linspace(1.0, 0.0, T + 1, dtype=torch.float32)[:-1]
        sigmas = config.shift * s / (1 + (config.shift - 1) * s)
        self.table_sigmas = sigmas.double()  # (T,)
        self.table_timesteps = (sigmas * T).double()  # (T,)
        self.timesteps = self._step_list()  # (num_steps,) float64

    def _step_list(self) -> torch.Tensor:
        steps = torch.tensor(self.config.denoising_steps, dtype=torch.float64)
        if not self.config.warp:
            return steps
        extended = torch.cat([self.table_timesteps, torch.zeros(1, dtype=torch.float64)])
        return extended[(self.config.num_train_timesteps - steps).long()]

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def step_pairs(self) -> list[tuple[float, float | None]]:
        """(current timestep, next timestep or None for the last step)."""
        ts = [float(t) for t in self.timesteps]
        return list(zip(ts, ts[1:] + [None]))

    def sigma(self, timestep: float) -> float:
        """Sigma of the table entry nearest to ``timestep``; exactly 0 for timestep 0."""
        if timestep == 0:
            return 0.0
        index = torch.argmin((self.table_timesteps - timestep).abs())
        return float(self.table_sigmas[index])

    def x0_from_flow(self, flow: torch.Tensor, x_t: torch.Tensor, timestep: float) -> torch.Tensor:
        sigma = self.sigma(timestep)
        return (x_t.float() - sigma * flow.float()).to(x_t.dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timestep: float) -> torch.Tensor:
        sigma = self.sigma(timestep)
        return ((1 - sigma) * x0.float() + sigma * noise.float()).to(x0.dtype)

    def next_sample(self, x_t: torch.Tensor, flow: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
                    timestep: float, next_timestep: float) -> torch.Tensor:
        """The sample at ``next_timestep`` by the configured rule: ``renoise`` puts fresh
        ``noise`` on the predicted ``x0``; ``euler`` moves along the predicted ``flow``,
        x + (sigma_next - sigma) * flow (``noise`` unused)."""
        if self.config.sampler == "euler":
            step = self.sigma(next_timestep) - self.sigma(timestep)
            return (x_t.float() + step * flow.float()).to(x_t.dtype)
        return self.add_noise(x0, noise, next_timestep)
