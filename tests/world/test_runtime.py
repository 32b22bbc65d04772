import json

import numpy as np
import pytest

from tiny import random_world_dir
from worldcast.world.report import EvalConfig, evaluate_world, long_frames, summary_lines
from worldcast.world.runtime import WorldModel, WorldSettings


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return WorldModel(random_world_dir(tmp_path_factory.mktemp("world")))


def test_world_model_generates_frames_with_its_trained_window(world):
    assert world.settings.window == world.spec.context_frames == 6
    frames = world.generate("a top-down view of a forest at day", ["right"] * 40, 35, seed=1)
    assert frames.shape == (35, 64, 64, 3) and frames.dtype == np.uint8
    again = world.generate("a top-down view of a forest at day", ["right"] * 40, 35, seed=1)
    assert np.array_equal(frames, again)


def test_world_model_rejects_bad_lengths_and_actions(world):
    with pytest.raises(ValueError, match="frames: 19 does not fill whole blocks; use 5 \\+ 6k"):
        world.request("a forest", [], 19)
    with pytest.raises(ValueError, match="actions: unknown \\['jump'\\]"):
        world.request("a forest", ["jump"], 11)
    with pytest.raises(ValueError, match="window_frames"):
        WorldModel(world.directory, WorldSettings(window=-1))


def test_missing_weights_say_how_to_train_them(tmp_path, monkeypatch):
    from worldcast.world import runtime

    monkeypatch.setattr(runtime, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="worldcast train vae"):
        WorldModel()


def test_evaluation_report_and_files(world, tmp_path):
    cfg = EvalConfig(frames=11, clips_per_scene=1, long_seconds=2.0, chunk_seconds=1.0,
                     long_scenes=("a top-down view of a city at night",), classifier_per_scene=8)
    report = evaluate_world(world, cfg, tmp_path)
    clips = report["clips"]
    assert clips["clips"] == 15 and 0 <= clips["action_accuracy"] <= 1
    assert clips["simulator_action_accuracy"] >= 0.9  # the estimator reads the simulator's own clips
    (run,) = report["long"]
    assert run["frames"] == long_frames(world, 2.0) == 35  # the first whole-block count from 2 s
    assert [c["seconds"] for c in run["chunks"]] == [[0.0, 1.0], [1.0, 35 / 16]]  # the 3-frame tail joins
    assert json.loads((tmp_path / "report.json").read_text())["clips"]["clips"] == 15
    for name in ("strip.png", "clips.mp4", "long_0.mp4"):
        assert (tmp_path / name).stat().st_size > 0
    assert any("action following" in line for line in summary_lines(report))


def test_a_directory_from_the_earlier_4x_vae_runs_with_its_own_strides(tmp_path):
    import dataclasses

    from worldcast.world.model import WorldModelSpec
    from worldcast.world.train import save_random_world

    base = WorldModelSpec()
    dit = dataclasses.replace(base.dit, actions_per_frame=4, in_dim=8, out_dim=8)
    old = dataclasses.replace(base, vae_temporal_downsample=(True, True), vae_temporal_kernel=3, vae_time_pack=1,
                              clip_frames=33, dit=dit)
    world = WorldModel(save_random_world(tmp_path / "old", spec=old), WorldSettings(guidance=1.0))
    assert world.spec.temporal_stride == 4 and world.spec.context_frames == 6
    assert not world.vae.frame_wise and world.vae.config.time_pack == 1
    frames = world.generate("a top-down view of a forest at day", ["right"] * 8, 9, seed=1)
    assert frames.shape == (9, 64, 64, 3)


def test_the_default_world_packs_frame_wise_latents_in_pairs(world):
    assert world.vae.frame_wise and world.spec.temporal_stride == 2 and world.vae.config.time_pack == 2
    assert world.dit.config.in_dim == 2 * world.spec.z_dim


def test_a_camera_following_world_directory_loads_with_its_positions(tmp_path):
    import dataclasses

    from worldcast.world.model import WorldModelSpec, spec_for
    from worldcast.world.sim import SPEED
    from worldcast.world.train import save_random_world

    spec = WorldModelSpec()
    # SPEED px per frame over 4 x 2 pixels per token (4 px: half a token, a whole one per latent frame)
    step = SPEED / 8
    assert dict(zip(("none", "up", "down", "left", "right"), spec.dit.action_camera)) == {
        "none": (0.0, 0.0), "up": (-step, 0.0), "down": (step, 0.0), "left": (0.0, -step), "right": (0.0, step)}
    assert WorldModelSpec(camera_rope=False).dit.action_camera == ()
    with pytest.raises(ValueError, match="does not match the simulator's camera"):
        dataclasses.replace(spec, size=128)  # same DiT, twice the pixels per world unit
    directory = save_random_world(tmp_path / "camera", spec=spec)
    assert spec_for(directory).camera_rope and spec_for(directory).dit == spec.dit
    frames = WorldModel(directory).generate("a top-down view of a city at day", ["left"] * 40, 35, seed=1)
    assert frames.shape == (35, 64, 64, 3)
