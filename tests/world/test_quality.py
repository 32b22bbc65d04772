import numpy as np
import pytest

from worldcast.world.quality import Bounds, chunk_stats, chunks, rollout_stats, sharpness
from worldcast.world.sim import SPEED, Scene, World, parse_actions, rollout


def test_chunks_cover_the_video_in_ten_second_pieces():
    assert [(c.start, c.stop) for c in chunks(330)] == [(0, 160), (160, 330)]  # a 10-frame tail joins the last
    assert [(c.start, c.stop) for c in chunks(250)] == [(0, 160), (160, 250)]  # 90 frames are a chunk
    assert [(c.start, c.stop) for c in chunks(161)] == [(0, 161)]


def test_simulator_statistics_and_bounds():
    actions = parse_actions("right*20,none*10,down*20")
    frames = rollout(World(Scene("desert", "day"), seed=3), actions + ["none"])
    stats = chunk_stats(frames, actions)
    assert stats.speed == pytest.approx(SPEED, rel=0.1)  # the camera speed, read back from pixels
    bounds = Bounds.from_reference(rollout_stats(frames, actions, seconds=1.0))
    assert all(bounds.check(stats).values())
    blurred = np.repeat(frames.mean(axis=(1, 2), keepdims=True), 64, 1).repeat(64, 2).astype(np.uint8)
    assert sharpness(blurred) == 0.0
    checked = bounds.check(chunk_stats(blurred, actions))
    assert not checked["sharpness"] and not checked["std_rgb"]
