"""Prompt adherence: a small scene classifier trained on simulator frames.

It labels a frame with one of the world's scene kinds (biome x time of day) from its colour
statistics — a soft 3D colour histogram plus per-channel mean and spread — with a softmax
regression. Colour, not layout, is what tells scenes apart in this world, and colour survives
the blur a small generative model adds; training frames are blurred and noised at random so that
a blurry but right-coloured frame is still read right. Fitting takes a few seconds and is
deterministic, so the evaluation trains its own classifier instead of shipping one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from worldcast.world.sim import Scene, World

BINS = 5  # per colour channel
CLASSIFIER_SEEDS = 3_000_000_000  # apart from the training and held-out clip seeds


def frame_features(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 frames -> (N, BINS**3 + 6) features: a soft colour histogram (each
    pixel spread linearly over the two nearest bins per channel), square-rooted, and the
    per-channel mean and standard deviation."""
    x = torch.as_tensor(frames).float().div(255).flatten(1, 2)  # (N, P, 3)
    pos = x * (BINS - 1)  # bin coordinate per channel
    lo = pos.floor().clamp(0, BINS - 2)
    frac = pos - lo
    hist = torch.zeros(x.shape[0], BINS**3)
    for corner in range(8):  # the 8 neighbouring bins of each pixel, trilinear weights
        bits = torch.tensor([(corner >> k) & 1 for k in range(3)], dtype=torch.float32)
        weight = torch.where(bits.bool(), frac, 1 - frac).prod(-1)  # (N, P)
        b = (lo + bits).long()
        index = b[..., 0] * BINS * BINS + b[..., 1] * BINS + b[..., 2]
        hist.scatter_add_(1, index, weight)
    hist = (hist / x.shape[1]).sqrt()
    return torch.cat([hist, x.mean(1), x.std(1)], dim=1)


def _degrade(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random box blur (none, 3x3 or 5x5) and pixel noise: (N, H, W, 3) uint8 -> uint8."""
    x = frames.permute(0, 3, 1, 2).float()
    out = torch.empty_like(x)
    for i in range(len(x)):
        k = int(torch.randint(0, 3, (), generator=generator)) * 2 + 1
        out[i] = F.avg_pool2d(x[i:i + 1], k, stride=1, padding=k // 2, count_include_pad=False)[0] if k > 1 else x[i]
    out = out + torch.randn(out.shape, generator=generator) * 6.0
    return out.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def simulator_frames(per_scene: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, size, size, 3), labels (N,)) from ``per_scene`` random worlds and places per scene."""
    rng = np.random.default_rng(seed)
    frames, labels = [], []
    for scene in Scene.all():
        for _ in range(per_scene):
            world = World(scene, seed=int(rng.integers(1 << 30)), size=size)
            frames.append(world.render(tuple(rng.uniform(-5000, 5000, size=2)), int(rng.integers(10_000))))
            labels.append(scene.index)
    return np.stack(frames), np.array(labels)


class SceneClassifier:
    """Softmax regression on ``frame_features``; ``fit`` trains it on simulator frames."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.weight, self.bias, self.mean, self.std = weight, bias, mean, std

    @classmethod
    def fit(cls, per_scene: int = 60, seed: int = 0, size: int = 64, epochs: int = 400) -> SceneClassifier:
        generator = torch.Generator().manual_seed(seed)
        frames, labels = simulator_frames(per_scene, CLASSIFIER_SEEDS + seed, size)
        frames = torch.from_numpy(frames)
        features = torch.cat([frame_features(frames), frame_features(_degrade(frames, generator))])
        targets = torch.from_numpy(labels).repeat(2)
        mean, std = features.mean(0), features.std(0).clamp_min(1e-4)
        z = (features - mean) / std
        weight = torch.zeros(z.shape[1], len(Scene.all()), requires_grad=True)
        bias = torch.zeros(len(Scene.all()), requires_grad=True)
        optimizer = torch.optim.Adam([weight, bias], lr=0.05)
        for _ in range(epochs):
            loss = F.cross_entropy(z @ weight + bias, targets) + 1e-4 * weight.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return cls(weight.detach(), bias.detach(), mean, std)

    def predict(self, frames: np.ndarray | torch.Tensor) -> list[Scene]:
        """Scene of each (N, H, W, 3) uint8 frame."""
        z = (frame_features(frames) - self.mean) / self.std
        scenes = Scene.all()
        return [scenes[i] for i in (z @ self.weight + self.bias).argmax(1).tolist()]

    def accuracy(self, frames: np.ndarray | torch.Tensor, scene: Scene) -> float:
        """Fraction of frames labelled ``scene``."""
        return float(np.mean([p == scene for p in self.predict(frames)]))
