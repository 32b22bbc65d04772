"""MP4 sink: H.264 through PyAV, frames appended as blocks arrive."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import torch


class Mp4Writer:
    """Writes (n, H, W, 3) uint8 frames to an H.264 MP4 with exact pts at ``fps``.

    Frame i is encoded with pts i in time base 1/fps (the MP4 muxer stores it in its own finer
    time base), so the container carries the true frame times whatever the encoder's internal
    rate control does.
    """

    def __init__(self, path: str | Path, fps: int, crf: int = 18) -> None:
        if fps <= 0:
            raise ValueError(f"fps: must be positive, got {fps}")
        self.path = Path(path)
        self.fps, self.crf = fps, crf
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self.frames_written = 0

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, height: int, width: int) -> None:
        if height % 2 or width % 2:
            raise ValueError(f"frames: H.264 (yuv420p) needs even height and width, got {height}x{width}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = self._time_base = Fraction(1, self.fps)
        stream.options = {"crf": str(self.crf)}
        self._stream = stream

    def write(self, frames: torch.Tensor) -> None:
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames: expected (n, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
        if self._container is None:
            self._open(frames.shape[1], frames.shape[2])
        for array in frames.cpu().numpy():
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = self.frames_written
            # The encoder's time base, fixed: the muxer rewrites the stream's (to 1/16384 for
            # MP4) once the header is out, and pts read against that collapsed to 0 — past the
            # encoder's 40-frame lookahead that broke muxing (pts < dts, EINVAL).
            frame.time_base = self._time_base
            self._container.mux(self._stream.encode(frame))
            self.frames_written += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None
