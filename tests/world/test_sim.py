import numpy as np
import pytest

from worldcast.world.sim import (
    BIOMES,
    TIMES,
    Scene,
    World,
    camera_path,
    parse_actions,
    rollout,
    sample_clip,
)


def test_same_seed_same_world_and_revisits_match():
    world = World(Scene("forest", "day"), seed=7)
    a = world.render((120.0, -40.0), t=5)
    assert np.array_equal(a, World(Scene("forest", "day"), seed=7).render((120.0, -40.0), t=5))
    assert not np.array_equal(a, World(Scene("forest", "day"), seed=8).render((120.0, -40.0), t=5))
    # Going right and coming back shows the same ground (objects aside, they move with time).
    frames = rollout(world, parse_actions("right*20,left*20,none"), start=(0.0, 0.0))
    ground = [world.terrain(world._grid_x + c[0], world._grid_y + c[1]) for c in camera_path(parse_actions(
        "right*20,left*20,none"))[[0, -1]]]
    assert np.array_equal(ground[0], ground[1])
    assert frames.shape == (41, 64, 64, 3) and frames.dtype == np.uint8


def test_camera_moves_the_ground_by_exactly_the_speed():
    world = World(Scene("desert", "day"), seed=1, size=64)
    g = world._grid_x, world._grid_y
    before = world.terrain(g[0] + 100, g[1] + 100)
    after = world.terrain(g[0] + 102, g[1] + 100)  # one "right" step at speed 2 = 2 pixels at size 64
    assert np.array_equal(before[:, 2:], after[:, :-2])


def test_scene_kinds_look_different():
    means = {}
    for scene in Scene.all():
        frame = World(scene, seed=3).render((0.0, 0.0), 0).astype(float)
        means[scene] = frame.mean(axis=(0, 1))
    for biome in BIOMES:  # night is darker than day
        assert means[Scene(biome, "night")].sum() < 0.7 * means[Scene(biome, "day")].sum()
    day = [means[Scene(b, "day")] for b in BIOMES]
    assert min(np.abs(a - b).sum() for i, a in enumerate(day) for b in day[i + 1:]) > 20


def test_prompts_round_trip_and_bad_scenes():
    for scene in Scene.all():
        assert Scene.from_prompt(scene.prompt) == scene
    assert Scene.from_prompt("Snowy? no: a SNOW field") == Scene("snow", "day")
    with pytest.raises(ValueError, match="biome: unknown 'moon'"):
        Scene("moon", "day")
    with pytest.raises(ValueError, match="names no biome"):
        Scene.from_prompt("a castle")
    assert len(Scene.all()) == len(BIOMES) * len(TIMES)


def test_parse_actions():
    assert parse_actions("right*2, up,none*1") == ["right", "right", "up", "none"]
    for bad, message in (("jump*2", "unknown action 'jump'"), ("up*x", "whole number"), ("up*0", "positive"),
                         ("", "empty")):
        with pytest.raises(ValueError, match=message):
            parse_actions(bad)


def test_clips_are_reproducible_and_vae_shaped():
    a, b = sample_clip(11, num_frames=17, size=32), sample_clip(11, num_frames=17, size=32)
    assert np.array_equal(a.frames, b.frames) and a.actions == b.actions and a.prompt == b.prompt
    assert a.frames.shape == (17, 32, 32, 3) and len(a.actions) == 17
    with pytest.raises(ValueError, match="num_frames: must be positive"):
        sample_clip(0, num_frames=0)
