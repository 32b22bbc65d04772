"""Long-rollout stability: per-chunk frame statistics and bounds taken from the simulator.

A long generation is cut into chunks (10 s by default). Each chunk gets the statistics a
drifting world model loses first — sharpness (mean gradient magnitude), colour (mean and spread
of each channel), motion (camera speed read from the pixels, over frames commanded to move) —
and each is compared with the range the simulator itself spans for the same scene and actions,
so "within bounds" means "looks like the real world does somewhere".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from worldcast.world.evaluate import estimate_shift
from worldcast.world.sim import FPS

STATS = ("sharpness", "mean_r", "mean_g", "mean_b", "std_rgb", "speed")


@dataclass(frozen=True)
class ChunkStats:
    sharpness: float  # mean |grad| of the grey image, grey levels per pixel
    mean_r: float
    mean_g: float
    mean_b: float
    std_rgb: float  # spread of pixel values within frames, averaged over channels and frames
    speed: float  # camera speed read from the pixels, pixels per frame, over moving transitions

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def sharpness(frames: np.ndarray) -> float:
    """Mean absolute finite difference of the grey image, (T, H, W, 3) uint8 -> grey levels/pixel."""
    grey = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float((np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=2)).mean()) / 2)


def camera_speed(frames: np.ndarray, actions: list[str]) -> float:
    """Mean shift magnitude (pixels/frame) over transitions whose action is a move (nan if none)."""
    speeds = [np.hypot(*estimate_shift(a, b)) for a, b, act in zip(frames[:-1], frames[1:], actions)
              if act != "none"]
    return float(np.mean(speeds)) if speeds else float("nan")


def chunk_stats(frames: np.ndarray, actions: list[str]) -> ChunkStats:
    """Statistics of one chunk; ``actions[t]`` moves frame t to t + 1."""
    x = frames.astype(np.float32)
    means = x.mean(axis=(0, 1, 2))
    return ChunkStats(sharpness=sharpness(frames), mean_r=float(means[0]), mean_g=float(means[1]),
                      mean_b=float(means[2]), std_rgb=float(x.std(axis=(1, 2)).mean()),
                      speed=camera_speed(frames, actions))


def chunks(num_frames: int, seconds: float = 10.0) -> list[slice]:
    """Consecutive frame ranges of ``seconds`` each; a remainder shorter than half a chunk joins
    the last one (a few frames are too few for statistics), a longer one is its own chunk."""
    size = int(round(seconds * FPS))
    starts = list(range(0, num_frames - 1, size))
    if len(starts) > 1 and num_frames - starts[-1] < size / 2:
        starts.pop()
    return [slice(s, e) for s, e in zip(starts, [*starts[1:], num_frames])]


def rollout_stats(frames: np.ndarray, actions: list[str], seconds: float = 10.0) -> list[ChunkStats]:
    return [chunk_stats(frames[c], actions[c.start:c.stop - 1]) for c in chunks(len(frames), seconds)]


@dataclass(frozen=True)
class Bounds:
    low: dict[str, float]
    high: dict[str, float]

    @classmethod
    def from_reference(cls, stats: list[ChunkStats], margin: float = 0.1) -> Bounds:
        """[min, max] of each statistic over reference chunks, widened by ``margin`` x its range
        (and at least ``margin`` x its magnitude, so a near-constant statistic gets some room)."""
        low, high = {}, {}
        for name in STATS:
            values = np.array([getattr(s, name) for s in stats], dtype=np.float64)
            values = values[np.isfinite(values)]
            lo, hi = float(values.min()), float(values.max())
            pad = margin * max(hi - lo, abs(hi))
            low[name], high[name] = lo - pad, hi + pad
        return cls(low, high)

    def check(self, stats: ChunkStats) -> dict[str, bool]:
        """Which statistics are inside the bounds (a nan, e.g. no moving frame, counts as inside)."""
        return {name: bool(not np.isfinite(v) or self.low[name] <= v <= self.high[name])
                for name, v in stats.as_dict().items()}
