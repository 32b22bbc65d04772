import importlib.util
from pathlib import Path

from tiny import random_world_dir


def _module():
    path = Path(__file__).parents[2] / "benchmarks" / "profiler_overhead.py"
    spec = importlib.util.spec_from_file_location("profiler_overhead", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_overhead_script_times_both_ways(tmp_path):
    result = _module().measure(random_world_dir(tmp_path / "world"), frames=9, repeats=1)
    assert len(result["plain_s"]) == len(result["profiled_s"]) == 1
    assert result["plain_median_s"] > 0 and result["profiled_median_s"] > 0
