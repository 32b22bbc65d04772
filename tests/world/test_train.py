import csv
import dataclasses

import torch

from tiny import TINY
from worldcast.world.model import WorldModelSpec
from worldcast.world.train import (
    TrainConfig,
    drop_conditions,
    encode_latent_clips,
    group_actions,
    sample_windows,
    train_dit,
    train_vae,
)

SPEC = WorldModelSpec(size=32, vae_dim=4, z_dim=4, dit=dataclasses.replace(
    TINY, in_dim=8, out_dim=8, num_actions=5, actions_per_frame=2, text_dim=8, text_len=4), clip_frames=17)


def _rows(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_group_actions_matches_the_engine_rule():
    actions = torch.arange(12)[None]  # pixel frames 0..11
    grouped = group_actions(actions, latent_frames=3, per_frame=4)
    assert grouped.tolist() == [[[0, 0, 0, 0], [0, 1, 2, 3], [4, 5, 6, 7]]]


def test_vae_training_runs_logs_and_resumes(tmp_path):
    vae = train_vae(SPEC, TrainConfig(steps=2, batch_size=1, checkpoint_every=1), tmp_path)
    assert len(_rows(tmp_path / "vae_loss.csv")) == 2
    assert (tmp_path / "vae_checkpoint.pt").exists()
    assert len(vae.config.latent_std) == 4 and min(vae.config.latent_std) > 0
    assert vae.frame_wise and vae.config.latent_channels == SPEC.dit.in_dim
    train_vae(SPEC, TrainConfig(steps=3, batch_size=1, checkpoint_every=1), tmp_path)
    assert [int(r["step"]) for r in _rows(tmp_path / "vae_loss.csv")] == [1, 2, 3]  # resumed at 2


def test_vae_training_refuses_a_vae_that_compresses_time(tmp_path):
    import pytest

    temporal = dataclasses.replace(SPEC, vae_temporal_kernel=3, vae_temporal_downsample=(False, True), vae_time_pack=1,
                                   dit=dataclasses.replace(SPEC.dit, in_dim=4, out_dim=4))
    with pytest.raises(ValueError, match="train vae: trains frame-wise VAEs"):
        train_vae(temporal, TrainConfig(steps=1, batch_size=1), tmp_path)


def test_dit_training_runs_with_actions_and_text(tmp_path):
    vae = train_vae(SPEC, TrainConfig(steps=1, batch_size=1), tmp_path)
    from worldcast.world.sim import Scene
    embeds = {scene.prompt: torch.randn(3, 8) for scene in Scene.all()}
    model = train_dit(SPEC, TrainConfig(steps=2, batch_size=2, data_clips=3, data_windows=2), vae, embeds, tmp_path)
    losses = [float(r["loss"]) for r in _rows(tmp_path / "dit_loss.csv")]
    assert len(losses) == 2 and all(value > 0 for value in losses)
    assert not model.training


def test_condition_dropout_empties_prompts_and_nulls_actions_at_its_rates():
    from worldcast.models.wan.dit import NULL_ACTION

    torch.manual_seed(0)
    prompts, actions = ["a forest"] * 4000, torch.randint(0, 5, (4000, 9, 4))
    cfg = TrainConfig(steps=1, text_drop=0.1, action_drop=0.3)
    kept_prompts, kept_actions = drop_conditions(prompts, actions, cfg)
    text_dropped = torch.tensor([p == "" for p in kept_prompts])
    action_dropped = (kept_actions == NULL_ACTION).all(dim=(1, 2))
    assert abs(text_dropped.float().mean() - 0.1) < 0.02 and abs(action_dropped.float().mean() - 0.3) < 0.03
    assert torch.equal(kept_actions[~action_dropped], actions[~action_dropped])  # the rest untouched
    assert (kept_actions >= 0).all(dim=(1, 2)).logical_or(action_dropped).all()  # whole windows, never parts
    assert drop_conditions(prompts, actions, TrainConfig(steps=1)) == (prompts, actions)  # off by default


def test_learning_rate_warms_up_then_decays_to_the_floor():
    from worldcast.world.train import learning_rate

    cfg = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    rates = [learning_rate(cfg, s) for s in range(100)]
    assert rates[0] == 1e-4 and rates[9] == 1e-3  # linear warm-up
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # then never rises
    assert abs(learning_rate(cfg, 100) - 1e-4) < 1e-12  # ends at min_lr_ratio x lr


def test_bad_training_config_names_the_field():
    import pytest

    with pytest.raises(ValueError, match="TrainConfig.text_drop"):
        TrainConfig(steps=1, text_drop=1.0)
    with pytest.raises(ValueError, match="TrainConfig.lr"):
        TrainConfig(steps=1, lr=0)
    with pytest.raises(ValueError, match="TrainConfig.min_lr_ratio"):
        TrainConfig(steps=1, min_lr_ratio=2)


def test_dit_clips_are_encoded_once_and_cut_into_block_aligned_windows(tmp_path):
    vae = train_vae(SPEC, TrainConfig(steps=1, batch_size=1), tmp_path)
    cfg = TrainConfig(steps=1, data_clips=3, data_windows=3)
    cache = tmp_path / "dit_data.pt"
    data = encode_latent_clips(SPEC, cfg, vae, cache=cache, batch=2)
    latent_frames = SPEC.clip_latent_frames + 2 * SPEC.frames_per_block  # three windows
    assert data.latents.shape[:3] == (3, 8, latent_frames) and data.actions.shape[:2] == (3, latent_frames)
    assert len(data.prompts) == 3 and data.actions[:, 0].eq(0).all()  # the first latent: no move yet
    stamp = cache.stat().st_mtime_ns
    again = encode_latent_clips(SPEC, cfg, vae, cache=cache)
    assert torch.equal(again.latents, data.latents) and cache.stat().st_mtime_ns == stamp  # reused
    torch.manual_seed(0)
    x0, actions, prompts = sample_windows(data, SPEC, batch=64)
    assert x0.shape == (64, 8, SPEC.clip_latent_frames, 8, 8) and len(prompts) == 64
    windows = {w: data.latents[:, :, w * SPEC.frames_per_block:][:, :, :SPEC.clip_latent_frames].float()
               for w in range(3)}
    found = {w for b in range(64) for w, lat in windows.items() if any(torch.equal(x0[b], c) for c in lat)}
    assert found == {0, 1, 2}  # every block-aligned window is drawn, the first among them


def test_dit_data_settings_are_validated():
    import pytest

    with pytest.raises(ValueError, match="TrainConfig.data_windows"):
        TrainConfig(steps=1, data_windows=1)
    with pytest.raises(ValueError, match="TrainConfig.data_clips"):
        TrainConfig(steps=1, data_clips=0)
