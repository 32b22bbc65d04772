"""Reading images and videos as frames, and fitting them to the engine's resolution."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F


def read_frames(path: str | Path, max_frames: int | None = None) -> torch.Tensor:
    """Decode an image or a video (anything FFmpeg reads) -> (n, H, W, 3) uint8."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    frames = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (av.FFmpegError, IndexError) as err:
        raise ValueError(f"{path}: cannot decode as an image or video ({err})") from None
    if not frames:
        raise ValueError(f"{path}: no video frames")
    return torch.from_numpy(np.stack(frames))


def fit_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop to the target aspect ratio, then resize (antialiased): (n, H, W, 3) uint8 ->
    (1, 3, n, height, width) float32 in [-1, 1], the VAE's input."""
    n, H, W, _ = frames.shape
    target = width / height
    if target < W / H:
        crop = round(H * target)
        frames = frames[:, :, (W - crop) // 2:(W - crop) // 2 + crop]
    else:
        crop = round(W / target)
        frames = frames[:, (H - crop) // 2:(H - crop) // 2 + crop]
    x = frames.permute(0, 3, 1, 2).float()  # (n, 3, h, w)
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return (x / 127.5 - 1).clamp(-1, 1).permute(1, 0, 2, 3)[None]
