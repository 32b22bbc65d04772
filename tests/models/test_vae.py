"""The Wan VAE: official key layout, frame counts, streaming decode, and the causal state
checked against an independent whole-sequence formulation."""

import pytest
import torch
import torch.nn.functional as F

from worldcast.models.wan.vae import (
    AttentionBlock,
    CausalConv3d,
    Resample,
    ResidualBlock,
    VAEConfig,
    WanVAE,
)

TINY_VAE = VAEConfig(dim=8, z_dim=4, latent_mean=(0.1, -0.2, 0.3, 0.0), latent_std=(1.5, 0.5, 2.0, 1.0))


def tiny_vae(seed=0):
    torch.manual_seed(seed)
    vae = WanVAE(TINY_VAE).eval()
    for p in vae.parameters():  # default init is too tame to exercise every path
        p.data.normal_(0, 0.3)
    return vae


def test_official_layout_and_size():
    with torch.device("meta"):
        vae = WanVAE()
    state = vae.state_dict()
    assert len(state) == 194
    assert sum(v.numel() for v in state.values()) == 126_892_531
    assert state["decoder.upsamples.3.time_conv.weight"].shape == (768, 384, 3, 1, 1)
    assert state["decoder.upsamples.11.resample.1.weight"].shape == (96, 192, 3, 3)
    assert state["encoder.downsamples.5.time_conv.weight"].shape == (192, 192, 3, 1, 1)
    assert state["decoder.middle.1.norm.gamma"].shape == (384, 1, 1)
    assert state["encoder.head.2.weight"].shape == (32, 384, 3, 3, 3)
    assert state["conv1.weight"].shape == (32, 32, 1, 1, 1) and state["conv2.weight"].shape == (16, 16, 1, 1, 1)
    assert (vae._encoder_slots, vae._decoder_slots) == (24, 32)  # layers that carry history


def test_streamed_decode_equals_decode_at_once_with_vae_frame_counts():
    vae = tiny_vae()
    z = torch.randn(1, 4, 21, 3, 4)
    full = vae.decode(z)
    assert full.shape == (1, 3, 81, 24, 32)
    state = vae.new_decode_state()
    blocks = [vae.decode_block(z[:, :, i:i + 3], state) for i in range(0, 21, 3)]
    assert [b.shape[2] for b in blocks] == [9] + [12] * 6
    torch.testing.assert_close(torch.cat(blocks, dim=2), full, atol=1e-6, rtol=1e-6)
    assert (state.latent_frames, state.pixel_frames) == (21, 81) == (21, vae.pixel_frames(21))


def test_decoding_each_block_with_a_fresh_state_is_not_the_same():
    """The defect streaming avoids: a fresh cache per block drops frames and changes pixels."""
    vae = tiny_vae()
    z = torch.randn(1, 4, 6, 3, 4)
    fresh = [vae.decode(z[:, :, i:i + 3]) for i in (0, 3)]
    assert [b.shape[2] for b in fresh] == [9, 9]  # 18 frames instead of 21


def test_decode_clamps_and_encode_inverts_frame_counts():
    vae = tiny_vae()
    out = vae.decode(torch.randn(1, 4, 3, 2, 2) * 10)
    assert out.min() >= -1 and out.max() <= 1
    latents = vae.encode(torch.rand(1, 3, 9, 16, 24) * 2 - 1)
    assert latents.shape == (1, 4, 3, 2, 3)
    with pytest.raises(ValueError, match="frames: 8 is not 1 \\+ 4k"):
        vae.encode(torch.zeros(1, 3, 8, 16, 16))


# --- an independent whole-sequence formulation of the causal decoder -----------------------------

def _causal(conv: CausalConv3d, x):
    """The conv over the whole sequence with its front padding as zero frames."""
    return F.conv3d(F.pad(x, conv._pad), conv.weight, conv.bias, conv.stride)


def _frames2d(module, x):
    B, C, T, H, W = x.shape
    y = module(x.permute(0, 2, 1, 3, 4).reshape(B * T, C, H, W))
    return y.reshape(B, T, *y.shape[1:]).permute(0, 2, 1, 3, 4)


def _whole(layer, x):
    if isinstance(layer, ResidualBlock):
        h = layer.shortcut(x)
        for sub in layer.residual:
            x = _causal(sub, x) if isinstance(sub, CausalConv3d) else sub(x)
        return x + h
    if isinstance(layer, AttentionBlock):
        return x + _frames2d(layer._attend, x)
    if isinstance(layer, Resample):
        if layer.mode == "upsample3d":
            # Frame 0 skips the time conv; frames 1.. go through it with zero history, and each
            # output frame's two channel halves become two frames.
            y = _causal(layer.time_conv, x[:, :, 1:])
            B, C2, T, H, W = y.shape
            pairs = torch.stack([y[:, : C2 // 2], y[:, C2 // 2:]], dim=3).reshape(B, C2 // 2, 2 * T, H, W)
            x = torch.cat([x[:, :, :1], pairs], dim=2)
        return _frames2d(layer.resample, x)
    raise TypeError(layer)


def _whole_decode(vae, z):
    mean, std = vae.latent_stats
    x = vae.conv2(z * std + mean)
    d = vae.decoder
    x = _causal(d.conv1, x)
    for layer in [*d.middle, *d.upsamples]:
        x = _whole(layer, x)
    x = _causal(d.head[2], d.head[1](d.head[0](x)))
    return x.clamp(-1, 1)


def test_causal_state_matches_whole_sequence_formulation():
    vae = tiny_vae(seed=3)
    z = torch.randn(1, 4, 5, 3, 3)
    with torch.inference_mode():
        reference = _whole_decode(vae, z)
    torch.testing.assert_close(vae.decode(z), reference, atol=1e-5, rtol=1e-5)


def test_encode_a_single_image():
    assert tiny_vae().encode(torch.rand(1, 3, 1, 16, 16) * 2 - 1).shape == (1, 4, 1, 2, 2)


# --- frame-wise VAEs and time packing ----------------------------------------------------------

FRAME_WISE = VAEConfig(dim=8, z_dim=4, dim_mult=(1, 2, 4), temporal_downsample=(False, False), temporal_kernel=1,
                       time_pack=2, latent_mean=(0.1, -0.2, 0.3, 0.0), latent_std=(1.5, 0.5, 2.0, 1.0))


def frame_wise_vae(seed=0):
    torch.manual_seed(seed)
    vae = WanVAE(FRAME_WISE).eval()
    for p in vae.parameters():
        p.data.normal_(0, 0.3)
    return vae


def test_time_packing_round_trips_and_stacks_frames_along_channels():
    from worldcast.models.wan.vae import pack_time, unpack_time

    z = torch.randn(2, 3, 7, 4, 5)  # 1 + 2 * 3 frames
    packed = pack_time(z, 2)
    assert packed.shape == (2, 6, 4, 4, 5)
    torch.testing.assert_close(packed[:, :3, 0], z[:, :, 0])  # frame 0 with a copy of itself
    torch.testing.assert_close(packed[:, 3:, 0], z[:, :, 0])
    torch.testing.assert_close(packed[:, :3, 2], z[:, :, 3])  # latent frame 2 = frames 3 and 4
    torch.testing.assert_close(packed[:, 3:, 2], z[:, :, 4])
    assert torch.equal(unpack_time(packed, 2, first=True), z)
    assert torch.equal(unpack_time(packed[:, :, 2:], 2, first=False), z[:, :, 3:])


def test_a_frame_wise_vae_has_no_history_and_codes_each_frame_alone():
    vae = frame_wise_vae()
    assert vae.frame_wise and (vae._encoder_slots, vae._decoder_slots) == (0, 0)
    assert vae.state_dict()["decoder.conv1.weight"].shape == (32, 4, 1, 3, 3)
    assert (vae.temporal_stride, FRAME_WISE.latent_channels) == (2, 8)
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    alone = torch.cat([vae.encode_distribution(video[:, :, i:i + 1])[0] for i in range(9)], dim=2)
    torch.testing.assert_close(vae.encode_distribution(video)[0], alone)
    latents = vae.encode(video)
    assert latents.shape == (1, 8, 5, 4, 4)
    frames = vae.decode(latents)
    assert frames.shape == (1, 3, 9, 16, 16)
    mean, std = vae.latent_stats
    own = vae.encode_distribution(video)[0]  # the VAE's own (unpacked, un-normalised) latents
    for i in (0, 4, 8):  # every pixel frame decodes from its own latent frame
        single = vae.decoder(vae.conv2(own[:, :, i:i + 1]), vae.new_decode_state().causal).clamp(-1, 1)
        torch.testing.assert_close(frames[:, :, i:i + 1], single, atol=1e-5, rtol=1e-5)


def test_a_packed_video_streams_block_by_block_like_at_once():
    vae = frame_wise_vae(seed=1)
    latents = torch.randn(1, 8, 7, 3, 4)
    full = vae.decode(latents)
    assert full.shape == (1, 3, 13, 12, 16)
    state = vae.new_decode_state()
    blocks = [vae.decode_block(latents[:, :, i:i + 3], state) for i in (0, 3, 6)]
    assert [b.shape[2] for b in blocks] == [5, 6, 2]
    torch.testing.assert_close(torch.cat(blocks, dim=2), full)
    assert (state.latent_frames, state.pixel_frames) == (7, 13) == (7, vae.pixel_frames(7))


def test_frame_wise_settings_are_validated():
    with pytest.raises(ValueError, match="VAEConfig.temporal_kernel"):
        VAEConfig(temporal_kernel=2)
    with pytest.raises(ValueError, match="VAEConfig.temporal_downsample: a frame-wise VAE"):
        VAEConfig(temporal_kernel=1)  # Wan's default downsamples time twice
    with pytest.raises(ValueError, match="VAEConfig.time_pack"):
        VAEConfig(time_pack=0)
