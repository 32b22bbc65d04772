"""Pictures of the built-in world for people: PNG frame strips and side-by-side MP4s.

Frames are 64x64, so both are enlarged with nearest-neighbour (every model pixel stays visible).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldcast.streaming.mp4 import Mp4Writer
from worldcast.world.sim import FPS

LABEL_HEIGHT = 14


def _enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    """(..., H, W, 3) -> (..., H*scale, W*scale, 3), nearest neighbour."""
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def write_strip(path: Path, rows: list[tuple[str, np.ndarray, np.ndarray | None]], step: int = 8,
                columns: int = 10, scale: int = 2) -> None:
    """A PNG: per (label, generated, reference) a caption, then the generated frames 0, step,
    2*step, ... in one row and, when given, the reference (simulator) frames below them."""
    from PIL import Image, ImageDraw

    blocks = []
    for label, generated, reference in rows:
        picked = [generated[i] for i in range(0, len(generated), step)][:columns]
        width = len(picked) * generated.shape[2] * scale
        caption = Image.new("RGB", (width, LABEL_HEIGHT), "white")
        ImageDraw.Draw(caption).text((2, 1), f"{label}  (top: model, every {step} frames; bottom: simulator)"
                                     if reference is not None else label, fill="black")
        parts = [np.asarray(caption), _enlarge(np.concatenate(picked, axis=1), scale)]
        if reference is not None:
            parts.append(_enlarge(np.concatenate([reference[i] for i in range(0, len(generated), step)][:columns],
                                                 axis=1), scale))
        blocks.append(np.concatenate(parts, axis=0))
    width = max(b.shape[1] for b in blocks)
    padded = [np.pad(b, ((0, 2), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(padded, axis=0)).save(path)


def write_mp4(path: Path, videos: list[np.ndarray], scale: int = 4, fps: int = FPS) -> None:
    """Videos (T, H, W, 3) side by side (cut to the shortest), enlarged ``scale`` x."""
    length = min(len(v) for v in videos)
    frames = _enlarge(np.concatenate([v[:length] for v in videos], axis=2), scale)
    with Mp4Writer(path, fps=fps) as writer:
        for start in range(0, length, 64):
            writer.write(torch.from_numpy(np.ascontiguousarray(frames[start:start + 64])))
