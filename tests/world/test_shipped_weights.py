"""The weights that ship in the package: what `worldcast generate` runs with no --model."""

import json

import numpy as np
import pytest

from worldcast.world.classifier import SceneClassifier
from worldcast.world.evaluate import strided_action_accuracy
from worldcast.world.model import WorldModelSpec, read_config
from worldcast.world.runtime import WEIGHTS_DIR, WorldModel
from worldcast.world.sim import SPEED, Scene

MAX_BYTES = 30 * 2**20  # the budget for the shipped weights


def test_the_weights_ship_within_budget_with_a_model_card():
    files = sorted(p.name for p in WEIGHTS_DIR.iterdir())
    assert {"dit.safetensors", "dit.json", "vae.safetensors", "vae.json", "MODEL_CARD.md"} <= set(files)
    assert sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir()) <= MAX_BYTES
    card = (WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    for needed in ("worldcast train", "action following", "prompt adherence", "real time"):
        assert needed in card


def test_the_shipped_configs_are_the_world_spec():
    from worldcast.config import ModelConfig
    from worldcast.models.wan.vae import VAEConfig

    spec = WorldModelSpec()
    assert read_config(WEIGHTS_DIR, "dit", ModelConfig) == spec.dit
    vae = read_config(WEIGHTS_DIR, "vae", VAEConfig)
    assert vae.temporal_downsample == spec.vae_temporal_downsample and vae.z_dim == spec.z_dim
    assert (vae.temporal_kernel, vae.time_pack) == (spec.vae_temporal_kernel, spec.vae_time_pack)
    assert json.loads((WEIGHTS_DIR / "vae.json").read_text())["latent_std"] != [1.0] * spec.z_dim  # measured


@pytest.mark.slow
def test_the_shipped_world_draws_the_scene_and_follows_the_camera():
    """Trained weights, not random ones: a generated clip is read as its scene by the
    evaluation's classifier, and its camera goes where the actions say (over latent steps)."""
    world = WorldModel()
    classifier = SceneClassifier.fit(per_scene=20)
    for prompt, action in [("a top-down view of a snow at night", "right"),
                           ("a top-down view of a ocean at day", "up")]:
        frames = world.generate(prompt, [action] * 34, 35, seed=3)
        assert frames.shape == (35, 64, 64, 3)
        assert classifier.accuracy(frames, Scene.from_prompt(prompt)) >= 0.5
        moves = strided_action_accuracy(frames, [action] * 34, speed_pixels=SPEED, stride=world.spec.temporal_stride)
        assert moves >= 0.5, f"{prompt}, {action}: camera followed in {moves:.0%} of latent steps"
    assert np.std(frames) > 10  # not a flat frame
