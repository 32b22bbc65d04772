"""Smoke tests of the benchmark scripts (tiny sizes): they run and report what they claim."""

import pytest

from tiny import benchmark_module, random_world_dir


def test_the_overhead_script_times_both_ways(tmp_path):
    result = benchmark_module("profiler_overhead").measure(random_world_dir(tmp_path / "world"), frames=11, repeats=1)
    assert len(result["plain_s"]) == len(result["profiled_s"]) == 1
    assert result["plain_median_s"] > 0 and result["profiled_median_s"] > 0


@pytest.mark.slow
def test_the_long_run_keeps_kv_flat_with_a_window_and_sink(tmp_path):
    result = benchmark_module("long_run").measure(blocks=8, window=3, sink=1, directory=tmp_path / "world")
    assert len(result["latency_ms"]) == 8 and result["pool_pages"] == 1 + 3 + 3
    page = result["bytes_per_page"]
    assert result["kv_held_bytes"] == [3 * page] + [4 * page] * 7  # sink + window from block 1 on


@pytest.mark.slow
def test_the_kv_quantization_script_compares_with_the_unquantized_run(tmp_path):
    result = benchmark_module("kv_quant_quality").measure(random_world_dir(tmp_path / "world"), seconds=1.0,
                                                  prompt="a top-down view of a forest at day", actions="right*8",
                                                  seed=0)
    rows = {r["format"]: r for r in result["rows"]}
    assert set(rows) == {"unquantized", "int8", "fp8"}
    assert rows["int8"]["ratio_to_bf16"] < 0.53 and rows["unquantized"]["ratio_to_bf16"] == 1.0
    assert rows["int8"]["psnr_db"] > 20  # close to the unquantized run, not identical to it


@pytest.mark.slow
def test_the_revisit_script_compares_window_retrieval_and_full_cache(tmp_path):
    result = benchmark_module("revisit").measure(random_world_dir(tmp_path / "world"), out_frames=24, k=2,
                                        prompt="a top-down view of a city at day", seeds=(0,))
    assert [r["setting"] for r in result["rows"]] == ["window", "window + retrieval of 2", "full cache"]
    assert result["pairs_per_video"] > 0 and all(r["pairs"] == result["pairs_per_video"] for r in result["rows"])
