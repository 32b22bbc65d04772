from worldcast import progress
from worldcast.cli import main


def test_bars_hide_when_stderr_is_not_a_terminal():
    progress.silence(False)
    assert progress.bar(range(3)).disable  # pytest captures stderr: not a TTY


def test_quiet_and_json_silence_every_bar(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    progress.silence(False)
    assert not progress.bar(range(3)).disable  # a "terminal": bars show
    for flag in ("--quiet", "--json"):
        main(["generate", "--model", "tiny", "--prompt", "a fox", "--frames", "9", "--height", "32", "--width", "48",
              "--out", str(tmp_path / "v.mp4"), flag])
        assert progress.bar(range(3)).disable
    progress.silence(False)
