import numpy as np
import pytest

from worldcast.world.evaluate import action_accuracy, estimate_shift
from worldcast.world.sim import Scene, World, random_actions, rollout


def test_cross_correlation_recovers_a_known_shift():
    world = World(Scene("forest", "day"), seed=2)
    a, b = world.render((0.0, 0.0), 0), world.render((3.0, -2.0), 0)  # camera right 3, up 2
    dx, dy = estimate_shift(a, b)
    assert abs(dx + 3) < 0.5 and abs(dy - 2) < 0.5  # the ground moves the other way


@pytest.mark.parametrize("scene", [Scene("forest", "day"), Scene("desert", "night"), Scene("city", "dusk"),
                                   Scene("ocean", "day"), Scene("snow", "dusk")])
def test_the_simulator_follows_its_actions(scene):
    """The estimator's ceiling: on the simulator's own frames nearly every transition is read right."""
    actions = random_actions(np.random.default_rng(0), 64)
    frames = rollout(World(scene, seed=5), actions)
    assert action_accuracy(frames, actions, speed_pixels=2.0) >= 0.9


def test_a_fixed_texture_over_a_dark_moving_scene_does_not_read_as_standing_still():
    """A decoder's faint fixed-pattern texture stays put while the scene moves; phase correlation
    (every frequency weighted alike) read every transition of this night city as 'none'."""
    actions = random_actions(np.random.default_rng(1), 33)
    frames = rollout(World(Scene("city", "night"), seed=3), actions)
    texture = np.random.default_rng(0).normal(0, 4, (64, 64, 1))  # sigma 4 grey levels, static
    assert action_accuracy(np.clip(frames + texture, 0, 255).astype(np.uint8), actions, 2.0) >= 0.9


def test_static_frames_are_read_as_none_and_bad_actions_rejected():
    frames = np.repeat(World(Scene("snow", "day"), seed=1).render((0.0, 0.0), 0)[None], 5, axis=0)
    assert action_accuracy(frames, ["none"] * 5, speed_pixels=2.0) == 1.0
    with pytest.raises(ValueError, match="unknown"):
        action_accuracy(frames, ["fly"] * 5, speed_pixels=2.0)


def test_strided_accuracy_reads_motion_a_stuttering_video_makes_in_jumps():
    from worldcast.world.evaluate import strided_action_accuracy

    actions = ["right"] * 16 + ["up"] * 16
    frames = rollout(World(Scene("forest", "dusk"), seed=4), actions + ["none"])
    assert strided_action_accuracy(frames, actions, 2.0, stride=4) == 1.0
    stutter = frames[(np.arange(len(frames)) // 4) * 4]  # each 4th frame held: moves only in jumps
    assert action_accuracy(stutter, actions, 2.0) <= 0.3
    assert strided_action_accuracy(stutter, actions, 2.0, stride=4) == 1.0
    mixed = ["right", "up"] * 16  # no span of 4 with one action
    assert np.isnan(strided_action_accuracy(frames, mixed, 2.0, stride=4))
