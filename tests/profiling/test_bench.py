import dataclasses
import json

import pytest

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, GenerationRequest
from worldcast.cache import KVCacheSpec
from worldcast.cli import main
from worldcast.models.placeholder import HashingTextEncoder, LatentPreviewDecoder
from worldcast.profiling.bench import (
    BenchConfig,
    BenchSetting,
    Components,
    Mp4Sink,
    run_bench,
    select_settings,
    standard_settings,
    table,
    write_plots,
)


def _parts(config):
    return Components(strong_model(dtype=config.torch_dtype), HashingTextEncoder(TINY.text_dim, TINY.text_len),
                      LatentPreviewDecoder(TINY.in_dim, config.vae_stride))


@pytest.fixture(scope="module")
def report():
    config = tiny_engine_config()
    settings = select_settings(["recompute", "paged", "window"], window=3)
    cfg = BenchConfig(tuple(settings), warmup=1, repeats=2, measure_peak=False)
    return run_bench(cfg, config, _parts(config), GenerationRequest(12, prompt="a fox"),
                     sink_factory=lambda: Mp4Sink(fps=16))


def test_every_setting_runs_its_repeats_with_one_record_per_block(report):
    assert [s["setting"]["name"] for s in report["settings"]] == ["recompute", "paged", "window3"]
    for s in report["settings"]:
        runs = report["runs"][s["setting"]["name"]]
        assert len(runs) == 2  # the warm-up is not kept
        assert all(len(r["blocks"]) == 4 for r in runs)
        assert s["blocks"] == 4 and s["pixel_frames"] == 45
        assert len(s["latency_per_block"]) == 4
        assert s["stages"]["output_encode"] > 0 and s["stages"]["denoise"] > 0


def test_medians_are_over_the_repeats(report):
    paged = report["settings"][1]
    fps = sorted(r["summary"]["fps"] for r in report["runs"]["paged"])
    assert paged["fps"] == pytest.approx(sum(fps) / 2)  # median of two = their mean


def test_cache_memory_differs_by_policy(report):
    recompute, paged, window = report["settings"]
    page = max(paged["kv_session_bytes_per_block"]) // 12
    assert recompute["kv_session_bytes_max"] == 0
    assert paged["kv_session_bytes_per_block"] == [3 * page, 6 * page, 9 * page, 12 * page]
    assert window["kv_session_bytes_per_block"] == [3 * page] * 4  # flat: the window evicts
    # recomputing the past costs more DiT FLOPs than reading it from the cache
    assert sum(r["summary"]["dit_flops"] for r in report["runs"]["recompute"]) > \
        sum(r["summary"]["dit_flops"] for r in report["runs"]["paged"])


def test_each_video_is_compared_with_the_full_cache(report):
    recompute, paged, window = report["settings"]
    assert paged["psnr_vs_reference_db"] == float("inf")  # the reference itself
    assert recompute["psnr_vs_reference_db"] > 50  # the same model, recomputed: equal to float error
    assert window["psnr_vs_reference_db"] < recompute["psnr_vs_reference_db"]  # the window forgets


def test_offload_setting_keeps_device_memory_down_and_the_video_identical():
    deep = dataclasses.replace(TINY, num_layers=8)  # with 2 layers staging would cost what offload saves
    config = tiny_engine_config(model=deep)
    parts = Components(strong_model(deep), HashingTextEncoder(TINY.text_dim, TINY.text_len),
                       LatentPreviewDecoder(TINY.in_dim, config.vae_stride))
    settings = select_settings(["paged", "offload"], window=3)
    report = run_bench(BenchConfig(tuple(settings), warmup=0, repeats=1, measure_peak=False), config, parts,
                       GenerationRequest(15, prompt="a fox"))
    paged, offload = report["settings"]
    assert offload["setting"]["name"] == "offload50%" and offload["psnr_vs_reference_db"] == float("inf")
    page = paged["kv_session_bytes_max"] // 15
    assert offload["kv_session_bytes_max"] <= 8 * page < paged["kv_session_bytes_max"]  # ceil(15 / 2) pages
    assert offload["kv_host_bytes_max"] > 0 and paged["kv_host_bytes_max"] == 0
    assert "host KV MiB" in table(report) and report["refused"] == {}


def test_a_setting_the_engine_refuses_is_reported_not_run():
    config = tiny_engine_config()  # two layers: offload cannot make anything fit
    settings = select_settings(["paged", "offload"], window=3)
    report = run_bench(BenchConfig(tuple(settings), warmup=0, repeats=1, measure_peak=False), config,
                       _parts(config), GenerationRequest(15, prompt="a fox"))
    assert [s["setting"]["name"] for s in report["settings"]] == ["paged"]
    assert "offloading cannot make it fit" in report["refused"]["offload50%"]
    assert "offload50%: not run" in table(report)


def test_table_and_plots(report, tmp_path):
    text = table(report)
    assert all(name in text for name in ("recompute", "paged", "window3"))
    assert "peak not measured" in text
    paths = write_plots(report, tmp_path)
    assert sorted(p.name for p in paths) == ["latency_per_block.png", "memory_per_block.png", "stages.png"]
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_peak_is_measured_in_the_same_run_when_asked():
    config = tiny_engine_config()
    cfg = BenchConfig((BenchSetting("paged"),), warmup=0, repeats=1, measure_peak=True,
                      peak_shapes=((256, 256, 256),))
    report = run_bench(cfg, config, _parts(config), GenerationRequest(3, prompt="a fox"))
    assert len(report["peak_tflops_readings"]) == 2 and report["peak_tflops"] == max(report["peak_tflops_readings"])
    s = report["settings"][0]
    assert s["mfu"] == pytest.approx(s["dit_tflops_per_second"] / report["peak_tflops"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(settings=()), "BenchConfig.settings"),
    (dict(settings=(BenchSetting("a"), BenchSetting("a"))), "unique"),
    (dict(settings=(BenchSetting("a"),), repeats=0), "BenchConfig.repeats"),
    (dict(settings=(BenchSetting("a"),), warmup=-1), "BenchConfig.warmup"),
])
def test_bench_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BenchConfig(**kwargs)


def test_setting_validation_and_selection():
    with pytest.raises(ValueError, match="BenchSetting.attention"):
        BenchSetting("x", attention="flash")
    with pytest.raises(ValueError, match="BenchSetting.window"):
        BenchSetting("x", window=0)
    assert [s.name for s in select_settings(["window", "paged", "paged"], 6)] == ["window6", "paged"]
    assert list(standard_settings(6, 2)) == ["recompute", "paged", "window", "sink", "retrieval", "int8", "fp8",
                                             "offload"]
    sink = standard_settings(6, 2)["sink"]
    assert (sink.name, sink.window, sink.sink) == ("sink2+window6", 6, 2)
    with pytest.raises(ValueError, match="settings: unknown nope"):
        select_settings(["nope"], 6)


def test_cli_bench_writes_json_and_plots(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["bench", "--model", "tiny", "--frames", "9", "--height", "32", "--width", "48", "--warmup", "0",
                 "--repeats", "1", "--no-peak", "--settings", "recompute,window", "--bench-window", "3",
                 "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["setting"]["name"] for s in report["settings"]] == ["recompute", "window3"]
    assert json.loads((out / "bench.json").read_text())["frames"] == 9
    assert (out / "stages.png").exists()


def test_cli_bench_rejects_bad_settings(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--model", "tiny", "--settings", "paged,fast", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "settings: unknown fast" in capsys.readouterr().err


def test_cli_generate_profile_trace_and_json(tmp_path, capsys):
    profile, trace = tmp_path / "profile.json", tmp_path / "trace.json"
    code = main(["generate", "--model", "tiny", "--prompt", "a fox", "--frames", "9", "--height", "32",
                 "--width", "48", "--out", str(tmp_path / "v.mp4"), "--profile", str(profile),
                 "--trace", str(trace), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 9
    assert summary["profile"]["pixel_frames"] == 9 and summary["profile"]["peak_tflops"] > 0
    data = json.loads(profile.read_text())
    assert [b["pixel_frames"] for b in data["blocks"]] == [9]
    assert {"output_encode", "decode", "commit", "text_encode"} <= set(data["summary"]["stages"])
    assert any(e["ph"] == "X" for e in json.loads(trace.read_text())["traceEvents"])


def test_cli_bench_without_shipped_weights_times_the_world_architecture_and_says_so(tmp_path, monkeypatch, capsys):
    from worldcast.world import runtime

    monkeypatch.setattr(runtime, "WEIGHTS_DIR", tmp_path / "no-weights")
    out = tmp_path / "bench"
    assert main(["bench", "--frames", "11", "--warmup", "0", "--repeats", "1", "--no-peak", "--settings", "paged",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "RANDOM weights of its architecture" in captured.err
    report = json.loads((out / "bench.json").read_text())
    assert report["engine"]["height"] == 64 and report["settings"][0]["pixel_frames"] == 11
    assert "paged" in captured.out  # the table


def test_every_standard_setting_configures_the_engine_it_names():
    base = tiny_engine_config()
    configs = {n: s.engine_config(base, latent_frames=21) for n, s in standard_settings(window=3, sink=1).items()}
    assert configs["recompute"].attention == "recompute"
    assert configs["paged"].cache.window_frames is None and configs["paged"].cache.quantization is None
    assert (configs["sink"].cache.window_frames, configs["sink"].cache.sink_frames) == (3, 1)
    assert configs["int8"].cache.quantization == "int8" and configs["fp8"].cache.quantization == "fp8"
    assert (configs["offload"].cache.num_pages, configs["offload"].cache.over_budget) == (11, "offload")
    with pytest.raises(ValueError, match="device_share needs the request's latent_frames"):
        standard_settings(window=3)["offload"].engine_config(base)


def test_cli_bench_runs_the_sink_and_quantized_settings(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--model", "tiny", "--frames", "33", "--height", "32", "--width", "48", "--dtype", "float32",
                 "--warmup", "0", "--repeats", "1", "--no-peak", "--settings", "sink,int8,fp8", "--bench-window", "3",
                 "--bench-sink", "1", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    by_name = {s["setting"]["name"]: s for s in report["settings"]}
    assert set(by_name) == {"sink1+window3", "int8", "fp8"}
    config = tiny_engine_config(height=32, width=48)
    page = KVCacheSpec.from_engine_config(config).bytes_per_page
    int8_page = KVCacheSpec.from_engine_config(
        dataclasses.replace(config, cache=CacheConfig(quantization="int8"))).bytes_per_page
    assert by_name["sink1+window3"]["kv_session_bytes_per_block"] == [3 * page, 4 * page, 4 * page]  # 1 + 3 kept
    assert by_name["int8"]["kv_session_bytes_per_block"] == [3 * int8_page, 6 * int8_page, 9 * int8_page]
    assert by_name["fp8"]["kv_session_bytes_per_block"] == by_name["int8"]["kv_session_bytes_per_block"]
