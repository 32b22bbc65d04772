import av
import pytest

from worldcast.cli import main


def test_generate_writes_an_mp4_with_correct_frames_and_rate(tmp_path, capsys):
    out = tmp_path / "video.mp4"
    assert main(["generate", "--model", "tiny", "--prompt", "a fox", "--frames", "21", "--out", str(out),
                 "--height", "64", "--width", "96", "--fps", "16"]) == 0
    err = capsys.readouterr().err
    assert "RANDOM weights" in err and "wrote 21 frames" in err
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == 16
        assert (stream.width, stream.height) == (96, 64)
    assert len(frames) == 21
    assert [f.pts * f.time_base for f in frames[:3]] == [0, pytest.approx(1 / 16), pytest.approx(2 / 16)]


def test_recompute_baseline_and_causvid_schedule_run(tmp_path):
    out = tmp_path / "v.mp4"
    assert main(["generate", "--model", "tiny", "--prompt", "a fox", "--frames", "13", "--out", str(out), "--quiet",
                 "--attention", "recompute", "--family", "causvid", "--height", "32", "--width", "32",
                 "--frames-per-block", "1", "--independent-first-frame", "--dtype", "float32", "--window", "2",
                 "--sampler", "euler"]) == 0
    assert out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--frames", "20"], "frames: 20 is not 1 + 4k"),
    (["--frames", "17"], "frames: 17 pixel frames are 5 latent frames, which do not fill whole blocks of 3 "
                         "latent frames; accepted values near it: 9, 21, 33 (every 12 from 9)"),
    (["--height", "100"], "EngineConfig.height: must be a multiple of 16"),
    (["--steps", "500,750"], "strictly decreasing"),
    (["--prompt", " "], "prompt: must not be empty"),
])
def test_bad_arguments_exit_2_with_the_field_named(tmp_path, capsys, argv, message):
    base = {"--model": "tiny", "--prompt": "a fox", "--out": str(tmp_path / "v.mp4")}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", *[x for kv in base.items() for x in kv]])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _tiny_wan_dir(root):
    """A Wan2.1-T2V-style directory with tiny random components in the official file layout."""
    import json

    import torch
    from safetensors.torch import save_file

    from tiny import TINY, hf_to_wan_t5, strong_model, tiny_umt5
    from worldcast.models.wan.vae import VAEConfig, WanVAE

    root.mkdir()
    config = {"_class_name": "WanModel", "model_type": "t2v", **{
        k: getattr(TINY, k) for k in ("dim", "ffn_dim", "freq_dim", "in_dim", "num_heads", "num_layers",
                                      "out_dim", "text_len", "text_dim", "eps")}}
    (root / "config.json").write_text(json.dumps(config))
    dit = strong_model()
    state = {k: v.contiguous() for k, v in dit.state_dict().items()}
    save_file(state, str(root / "diffusion_pytorch_model.safetensors"))
    torch.save(WanVAE(VAEConfig(dim=8)).state_dict(), root / "Wan2.1_VAE.pth")
    t5, tokenizer = tiny_umt5(TINY.text_dim)
    torch.save({hf_to_wan_t5(k): v for k, v in t5.state_dict().items() if hf_to_wan_t5(k)},
               root / "models_t5_umt5-xxl-enc-bf16.pth")
    tokenizer.save_pretrained(root / "google" / "umt5-xxl")
    return dit


def test_generate_with_a_self_forcing_checkpoint_and_wan_dir(tmp_path, capsys):
    import torch

    dit = _tiny_wan_dir(tmp_path / "Wan2.1-T2V-tiny")
    torch.save({"generator_ema": {f"model.{k}": v for k, v in dit.state_dict().items()}}, tmp_path / "sf.pt")
    out = tmp_path / "sf.mp4"
    assert main(["generate", "--model", str(tmp_path / "sf.pt"), "--wan-dir", str(tmp_path / "Wan2.1-T2V-tiny"),
                 "--prompt", "a red fox in the snow", "--frames", "21", "--height", "32", "--width", "48",
                 "--dtype", "float32", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "RANDOM" not in err and "placeholder" not in err and "wrote 21 frames" in err
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == 21


def test_checkpoint_without_wan_dir_runs_with_placeholders_and_says_so(tmp_path, capsys):
    import torch

    from tiny import strong_model
    torch.save({"generator": {f"model.{k}": v for k, v in strong_model().state_dict().items()}}, tmp_path / "sf.pt")
    assert main(["generate", "--model", str(tmp_path / "sf.pt"), "--prompt", "x", "--frames", "9", "--height", "32",
                 "--width", "32", "--dtype", "float32", "--out", str(tmp_path / "v.mp4")]) == 0
    assert "no VAE or text encoder was found (pass --wan-dir" in capsys.readouterr().err


def test_bad_checkpoint_path_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--model", str(tmp_path / "missing.pt"), "--prompt", "x", "--out", str(tmp_path / "v.mp4")])
    assert exit_info.value.code == 2
    assert "missing.pt: no such file or directory" in capsys.readouterr().err


def _write_png(path, array):
    import struct
    import zlib
    h, w, _ = array.shape
    raw = b"".join(b"\x00" + array[i].tobytes() for i in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def sf_checkpoint(tmp_path):
    import torch
    dit = _tiny_wan_dir(tmp_path / "wan")
    torch.save({"generator_ema": {f"model.{k}": v for k, v in dit.state_dict().items()}}, tmp_path / "sf.pt")
    return ["--model", str(tmp_path / "sf.pt"), "--wan-dir", str(tmp_path / "wan"), "--dtype", "float32",
            "--height", "32", "--width", "48", "--prompt", "a red fox"]


def test_image_to_video(tmp_path, sf_checkpoint, capsys):
    import numpy as np
    image = np.zeros((60, 100, 3), dtype=np.uint8)
    image[:, :50] = (255, 0, 0)
    _write_png(tmp_path / "first.png", image)
    out = tmp_path / "i2v.mp4"
    assert main(["generate", *sf_checkpoint, "--image", str(tmp_path / "first.png"), "--frames", "13",
                 "--out", str(out)]) == 0
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == 13  # 1 latent (the image) + 3 generated latents


def test_video_extension(tmp_path, sf_checkpoint):
    import torch

    from worldcast.streaming.mp4 import Mp4Writer
    with Mp4Writer(tmp_path / "prefix.mp4", fps=16) as writer:
        writer.write(torch.randint(0, 255, (20, 32, 48, 3), dtype=torch.uint8))
    out = tmp_path / "ext.mp4"
    assert main(["generate", *sf_checkpoint, "--video", str(tmp_path / "prefix.mp4"), "--frames", "33",
                 "--out", str(out)]) == 0
    with av.open(str(out)) as container:
        assert len(list(container.decode(video=0))) == 33  # 9 prefix frames (3 latents) + 24 generated


def test_image_needs_the_vae(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--model", "tiny", "--prompt", "x", "--image", str(tmp_path / "x.png"), "--frames", "13",
              "--out", str(tmp_path / "v.mp4")])
    assert "image/video: encoding needs the Wan VAE" in capsys.readouterr().err


@pytest.mark.slow
def test_train_world_model_end_to_end_smoke(tmp_path, capsys):
    out = tmp_path / "world"
    with pytest.raises(SystemExit):  # the recipe's order: vae, then dit
        main(["train", "dit", "--out", str(out), "--steps", "1"])
    assert "run 'worldcast train vae" in capsys.readouterr().err
    assert main(["train", "vae", "--out", str(out), "--steps", "1", "--batch-size", "2"]) == 0
    assert (out / "vae.safetensors").exists() and (out / "vae.json").exists()
    assert main(["train", "dit", "--out", str(out), "--steps", "1", "--batch-size", "1", "--data-clips", "2",
                 "--no-compile"]) == 0
    assert (out / "dit.safetensors").exists() and (out / "dit_loss.csv").exists()
    video = tmp_path / "world.mp4"
    assert main(["generate", "--model", str(out), "--prompt", "a forest at night", "--actions", "right*8,up",
                 "--frames", "23", "--out", str(video), "--quiet"]) == 0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (64, 64)
        assert len(list(container.decode(stream))) == 23


@pytest.fixture
def shipped_world(tmp_path, monkeypatch):
    """Stand-in for the shipped weights: a random world model where the package keeps them."""
    from tiny import random_world_dir
    from worldcast.world import runtime

    directory = random_world_dir(tmp_path / "weights")
    monkeypatch.setattr(runtime, "WEIGHTS_DIR", directory)
    return directory


def test_generate_defaults_to_the_built_in_world(tmp_path, shipped_world, capsys):
    video = tmp_path / "world.mp4"
    assert main(["generate", "--prompt", "a top-down view of a desert at night", "--actions", "left*20",
                 "--frames", "35", "--out", str(video)]) == 0
    err = capsys.readouterr().err
    assert "RANDOM" not in err and "NOTE" not in err and "wrote 35 frames (64x64" in err
    assert main(["generate", "--prompt", "a red fox", "--frames", "11", "--out", str(video), "--quiet"]) == 0
    assert "the prompt names none" in capsys.readouterr().err


def test_eval_world_writes_a_report(tmp_path, shipped_world, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "world", "--frames", "11", "--clips-per-scene", "1", "--long-seconds", "1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "action following:" in printed and "prompt adherence:" in printed and "long rollout" in printed
    assert (out / "report.json").exists() and (out / "strip.png").exists()


def test_without_shipped_weights_generate_falls_back_to_tiny_and_says_so(tmp_path, monkeypatch, capsys):
    from worldcast.world import runtime

    monkeypatch.setattr(runtime, "WEIGHTS_DIR", tmp_path / "no-weights")
    video = tmp_path / "v.mp4"
    assert main(["generate", "--prompt", "a forest", "--frames", "9", "--out", str(video), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "weights are missing from this install" in err and "RANDOM weights" in err
