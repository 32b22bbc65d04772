
import pytest

from tiny import benchmark_module, random_world_dir


@pytest.mark.slow
def test_the_probe_reports_every_noise_level_and_condition(tmp_path):
    result = benchmark_module("world_dit_probe").probe(str(random_world_dir(tmp_path / "world")), clips=2)
    assert [round(r["sigma"], 2) for r in result["rows"]] == [1.0, 0.9, 0.75, 0.5]
    conditions = {"conditioned", "actions none", "actions of another clip", "another scene's prompt"}
    assert all(conditions < set(r) and all(r[c] > 0 for c in conditions) for r in result["rows"])
    assert result["baselines"]["zeros"] > 0 and result["baselines"]["copy last context frame"] > 0



@pytest.mark.slow
def test_the_vae_bound_scores_the_simulator_itself_perfectly(tmp_path):
    result = benchmark_module("world_vae_bound").bound(str(random_world_dir(tmp_path / "world")), clips=2, frames=9)
    assert result["prompt_sim"] == 1.0 and result["motion_sim"] == 1.0  # the measures are sound
    assert result["psnr_db"] < 20 and result["prompt"] < 1.0  # random weights reconstruct nothing
