from fractions import Fraction

import av
import pytest
import torch

from worldcast.streaming.mp4 import Mp4Writer


def test_long_video_written_in_blocks_keeps_every_frame_and_timestamp(tmp_path):
    """Past the encoder's default 40-frame lookahead the flush used to fail (pts < dts)."""
    path = tmp_path / "long.mp4"
    generator = torch.Generator().manual_seed(0)
    with Mp4Writer(path, fps=16) as writer:
        for n in (9,) + (12,) * 10:  # a block layout: 129 frames
            writer.write(torch.randint(0, 256, (n, 32, 48, 3), dtype=torch.uint8, generator=generator))
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.video[0]))
    assert len(frames) == 129
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 16) for i in range(129)]


def test_bad_frames_are_rejected(tmp_path):
    with Mp4Writer(tmp_path / "x.mp4", fps=16) as writer, pytest.raises(ValueError, match="uint8"):
        writer.write(torch.zeros(2, 16, 16, 3))
    with pytest.raises(ValueError, match="fps"):
        Mp4Writer(tmp_path / "y.mp4", fps=0)
