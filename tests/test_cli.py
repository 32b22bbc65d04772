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
