import av
import pytest

from worldcast.cli import main


def test_generate_writes_an_mp4_with_correct_frames_and_rate(tmp_path, capsys):
    out = tmp_path / "video.mp4"
    assert main(["generate", "--prompt", "a fox", "--frames", "21", "--out", str(out),
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
    assert main(["generate", "--prompt", "a fox", "--frames", "13", "--out", str(out), "--quiet",
                 "--attention", "recompute", "--family", "causvid", "--height", "32", "--width", "32",
                 "--frames-per-block", "1", "--independent-first-frame", "--dtype", "float32"]) == 0
    assert out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--frames", "20"], "frames: 20 is not 1 + 4k"),
    (["--frames", "17"], "frames: 17 pixel frames are 5 latent frames, which do not fill whole blocks of 3 "
                         "latent frames; accepted values are 9, 21, 33, 45"),
    (["--height", "100"], "EngineConfig.height: must be a multiple of 16"),
    (["--steps", "500,750"], "strictly decreasing"),
    (["--prompt", " "], "prompt: must not be empty"),
])
def test_bad_arguments_exit_2_with_the_field_named(tmp_path, capsys, argv, message):
    base = {"--prompt": "a fox", "--out": str(tmp_path / "v.mp4")}
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
