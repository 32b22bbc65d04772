"""Camera-following RoPE: spatial positions offset by the camera's path (ModelConfig.action_camera)."""

import dataclasses
import json

import pytest
import torch

from tiny import TINY, strong_model
from worldcast.config import ModelConfig
from worldcast.models.attention import DenseKV
from worldcast.models.wan.dit import NULL_ACTION, TextContext, rope_axis_dims

MOVES = ((0.0, 0.0), (-0.5, 0.0), (0.5, 0.0), (0.0, -0.5), (0.0, 0.5))  # none, up, down, left, right
CAMERA = dataclasses.replace(TINY, num_actions=5, actions_per_frame=2, action_camera=MOVES)


def _inputs(model, frames=3, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, CAMERA.in_dim, frames, 4, 6, generator=g)
    text = model.encode_text(torch.randn(batch, 5, CAMERA.text_dim, generator=g))
    actions = torch.randint(0, 5, (batch, frames, 2), generator=g)
    return x, torch.full((batch, frames), 500.0), text, actions


def test_integer_camera_positions_select_rows_and_columns_of_a_larger_grid():
    model = strong_model(CAMERA)
    frames, h, w = 2, 3, 4
    camera = torch.tensor([[[0.0, 0.0], [1.0, 2.0]]])  # frame 1 one row down, two columns right
    shifted = model.rope(5, frames, h, w, camera)
    big = model.rope(5, frames, h + 1, w + 2)  # (frames * (h+1) * (w+2), D/2)
    big_cos = big.cos.view(frames, h + 1, w + 2, -1)
    expected = torch.stack([big_cos[0, :h, :w], big_cos[1, 1:, 2:]]).reshape(1, frames * h * w, -1)
    torch.testing.assert_close(shifted.cos, expected)
    still = model.rope(5, frames, h, w, torch.zeros(1, frames, 2))
    torch.testing.assert_close(still.cos[0], model.rope(5, frames, h, w).cos)


def test_ground_moving_against_the_camera_keeps_its_positions():
    model = strong_model(CAMERA)
    h, w = 2, 4
    rope = model.rope(0, 2, h, w, torch.tensor([[[0.0, 0.0], [-1.0, 1.0]]]))  # camera: a token up and right
    spatial = rope.cos[0, :, rope_axis_dims(CAMERA.head_dim)[0]:].view(2, h, w, -1)  # (frame, row, col, pairs)
    # ground at screen (r, c + 1) in frame 0 is at screen (r + 1, c) in frame 1: same positions
    torch.testing.assert_close(spatial[1, 1:, :-1], spatial[0, :-1, 1:])
    assert not torch.allclose(spatial[1], spatial[0])


def test_only_camera_differences_matter():
    model = strong_model(CAMERA)
    x, t, text, actions = _inputs(model)
    camera = model.camera_path(actions)
    out = model(x, t, text, DenseKV(None), actions=actions, camera=camera)
    moved_together = model(x, t, text, DenseKV(None), actions=actions, camera=camera + torch.tensor([3.5, -1.25]))
    torch.testing.assert_close(out, moved_together, atol=2e-4, rtol=1e-3)
    last_moved = camera.clone()
    last_moved[:, -1] += torch.tensor([0.0, 1.0])
    other = model(x, t, text, DenseKV(None), actions=actions, camera=last_moved)
    assert (out - other).abs().max() > 1e-3


def test_camera_path_sums_each_latent_frames_moves():
    model = strong_model(CAMERA)
    actions = torch.tensor([[[0, 0], [4, 4], [4, 2], [NULL_ACTION, 1]]])  # frame 3's first action dropped
    expected = torch.tensor([[[0.0, 0.0], [0.0, 1.0], [0.5, 1.5], [0.0, 1.5]]], dtype=torch.float64)
    torch.testing.assert_close(model.camera_path(actions), expected)


def test_a_camera_model_needs_camera_positions():
    model = strong_model(CAMERA)
    x, t, text, actions = _inputs(model)
    with pytest.raises(ValueError, match="camera: this model's RoPE follows the camera"):
        model(x, t, text, DenseKV(None), actions=actions)
    with pytest.raises(ValueError, match=r"camera: expected \(batch, 3, 2\)"):
        model(x, t, text, DenseKV(None), actions=actions, camera=torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="does not follow the camera"):
        strong_model(dataclasses.replace(CAMERA, action_camera=())).camera_path(actions)


def test_action_camera_is_validated_and_read_back_from_json():
    with pytest.raises(ValueError, match="ModelConfig.action_camera: needs one"):
        dataclasses.replace(CAMERA, action_camera=MOVES[:3])
    with pytest.raises(ValueError, match="ModelConfig.action_camera: must be"):
        dataclasses.replace(CAMERA, action_camera=((0.0, float("nan")),) * 5)
    values = json.loads(json.dumps(dataclasses.asdict(CAMERA)))
    values["patch_size"] = tuple(values["patch_size"])
    assert ModelConfig(**values) == CAMERA


def test_guided_batch_shares_one_camera():
    model = strong_model(CAMERA)
    x, t, text, actions = _inputs(model)
    camera = model.camera_path(actions)
    single = model(x, t, text, DenseKV(None), actions=actions, camera=camera)
    pair_text = TextContext([(torch.cat([k, k]), torch.cat([v, v])) for k, v in text.kv])
    pair = model(torch.cat([x, x]), t.repeat(2, 1), pair_text, DenseKV(None), actions=actions.repeat(2, 1, 1),
                 camera=camera)  # (1, F, 2) broadcast over the batch
    torch.testing.assert_close(pair[:1], single, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pair[1:], single, atol=1e-5, rtol=1e-4)
