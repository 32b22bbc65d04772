import json

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.models.placeholder import HashingTextEncoder, LatentPreviewDecoder
from worldcast.profiling.flops import dit_forward_flops
from worldcast.profiling.profiler import Profiler, percentile, profile_lines

STEPS = 4  # the default schedule's denoising steps


def _engine(profiler=None, decoder=True, **changes):
    config = tiny_engine_config(**changes)
    return Engine(config, strong_model(dtype=config.torch_dtype), HashingTextEncoder(TINY.text_dim, TINY.text_len),
                  LatentPreviewDecoder(TINY.in_dim, config.vae_stride) if decoder else None, profiler=profiler)


def test_one_record_per_block_and_every_frame_counted_once():
    profiler = Profiler()
    blocks = list(_engine(profiler).stream(GenerationRequest(12, prompt="a fox")))
    assert [(r.request_id, r.block_index) for r in profiler.blocks] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert [r.latent_frames for r in profiler.blocks] == [3, 3, 3, 3]
    assert [r.pixel_frames for r in profiler.blocks] == [len(b.frames) for b in blocks] == [9, 12, 12, 12]
    summary = profiler.summary()
    assert summary["blocks"] == 4
    assert summary["pixel_frames"] == 45  # 1 + 4 * 11: each frame once, not once per denoising step
    assert summary["fps"] == pytest.approx(45 / summary["wall_seconds"])
    assert summary["fps_without_decode"] > summary["fps"]


def test_each_stage_is_recorded_per_block_and_they_add_up_to_the_wall_time():
    profiler = Profiler()
    engine = _engine(profiler)
    with torch.no_grad():
        for block in engine.stream(GenerationRequest(9, prompt="a fox")):
            with profiler.stage("output_encode", block.request_id, block.block_index):
                block.frames.float().mean()  # stands in for writing the frames somewhere
    names = [s.name for s in profiler.spans if s.block == 1]
    assert names == ["step_0", "step_1", "step_2", "step_3", "commit", "decode", "output_encode"]
    assert sum(s.name == "text_encode" for s in profiler.spans) == 1
    summary = profiler.summary()
    staged = sum(summary["stages"].values())
    # What no stage covers (page bookkeeping, drawing noise, the generator hand-off) is small.
    assert 0 <= summary["unaccounted_seconds"] <= 0.25 * summary["wall_seconds"] + 0.01
    assert staged == pytest.approx(summary["wall_seconds"] - summary["unaccounted_seconds"])
    spans = sorted(profiler.spans, key=lambda s: s.start)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(spans, spans[1:])), "stages must not overlap"


def test_latency_is_per_block_since_the_previous_one_and_first_frame_is_the_first_block():
    profiler = Profiler()
    list(_engine(profiler).stream(GenerationRequest(9, prompt="a fox")))
    records = profiler.blocks
    arrived = profiler._arrived[0]
    assert records[0].latency == pytest.approx(records[0].finished - arrived)
    assert records[2].latency == pytest.approx(records[2].finished - records[1].finished)
    summary = profiler.summary()
    assert summary["time_to_first_frame"] == pytest.approx(records[0].finished - arrived)
    assert summary["block_latency"]["max"] == max(r.latency for r in records)


def test_interleaved_sessions_each_get_their_own_latencies():
    profiler = Profiler()
    engine = _engine(profiler)
    a = engine.add_request(GenerationRequest(6, prompt="a fox"))
    b = engine.add_request(GenerationRequest(6, prompt="the snow", seed=1))
    while engine.sessions:
        engine.step()
    by_request = {r: [x for x in profiler.blocks if x.request_id == r] for r in (a, b)}
    assert [len(v) for v in by_request.values()] == [2, 2]
    # a's second block waited for b's first: its latency spans both
    assert by_request[a][1].latency == pytest.approx(by_request[a][1].finished - by_request[a][0].finished)
    assert by_request[a][1].latency > by_request[b][0].stages["step_0"]
    assert profiler.summary()["requests"] == 2


def test_flops_count_cached_context_and_the_recompute_baseline_the_whole_past():
    cached, recomputed = Profiler(), Profiler()
    list(_engine(cached).stream(GenerationRequest(9, prompt="a fox")))
    list(_engine(recomputed, attention="recompute").stream(GenerationRequest(9, prompt="a fox")))
    tokens = (32 // 8 // 2) * (48 // 8 // 2)  # latent 4x6, patch 2x2

    def forward(queries, keys):
        return dit_forward_flops(TINY, queries * tokens, keys * tokens).total

    # cache: 4 steps + commit over the block, keys = context + block
    assert [r.flops for r in cached.blocks] == [(STEPS + 1) * forward(3, 3 + c) for c in (0, 3, 6)]
    # recompute: 4 steps, each over every visible frame
    assert [r.flops for r in recomputed.blocks] == [STEPS * forward(n, n) for n in (3, 6, 9)]


def test_kv_bytes_follow_the_pages_held():
    profiler = Profiler()
    engine = _engine(profiler, cache=CacheConfig(window_frames=3))
    list(engine.stream(GenerationRequest(12, prompt="a fox")))
    page = engine.spec.bytes_per_page
    # window 3: after each block the session keeps its last 3 frames
    assert [r.kv.session_bytes for r in profiler.blocks] == [3 * page] * 4
    assert all(r.kv.session_reserved_bytes == 6 * page for r in profiler.blocks)  # window + one block
    assert all(r.kv.pool_bytes == engine.pool.num_pages * page for r in profiler.blocks)
    assert profiler.summary()["kv_session_bytes_max"] == 3 * page
    recompute = Profiler()
    list(_engine(recompute, attention="recompute").stream(GenerationRequest(6, prompt="a fox")))
    assert all(r.kv.session_bytes == 0 for r in recompute.blocks)


def test_memory_readings_are_present_and_the_peak_covers_them():
    profiler = Profiler()
    list(_engine(profiler).stream(GenerationRequest(6, prompt="a fox")))
    summary = profiler.summary()
    assert all(r.rss_bytes > 0 for r in profiler.blocks)
    assert summary["peak_rss_bytes"] >= max(r.rss_bytes for r in profiler.blocks)
    assert summary["device_peak_bytes"] is None  # CPU: RSS covers it


def test_profiling_does_not_change_the_video():
    plain = _engine().generate(GenerationRequest(6, prompt="a fox", seed=3))
    profiled = _engine(Profiler()).generate(GenerationRequest(6, prompt="a fox", seed=3))
    assert torch.equal(plain.latents, profiled.latents)
    assert torch.equal(plain.frames, profiled.frames)


def test_without_a_profiler_blocks_still_carry_their_timings():
    blocks = list(_engine().stream(GenerationRequest(6, prompt="a fox")))
    assert set(blocks[1].timings) == {"step_0", "step_1", "step_2", "step_3", "commit", "decode"}


def test_mfu_is_achieved_flops_over_the_given_peak():
    profiler = Profiler()
    list(_engine(profiler, decoder=False).stream(GenerationRequest(6, prompt="a fox")))
    summary = profiler.summary(peak_tflops=2.0)
    dit_seconds = sum(v for k, v in summary["stages"].items() if k.startswith("step_") or k == "commit")
    assert summary["dit_tflops_per_second"] == pytest.approx(summary["dit_flops"] / dit_seconds / 1e12)
    assert summary["mfu"] == pytest.approx(summary["dit_tflops_per_second"] / 2.0)
    assert summary["pixel_frames"] == 0 and summary["fps"] is None  # no decoder: nothing delivered
    assert summary["time_to_first_frame"] is None


def test_json_and_chrome_trace_exports(tmp_path):
    profiler = Profiler()
    list(_engine(profiler).stream(GenerationRequest(6, prompt="a fox")))
    data = json.loads(profiler.write_json(tmp_path / "p.json", peak_tflops=1.0).read_text())
    assert data["summary"]["blocks"] == 2 and len(data["blocks"]) == 2
    assert len(data["spans"]) == len(profiler.spans)
    trace = json.loads(profiler.write_chrome_trace(tmp_path / "t.json").read_text())
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(complete) == len(profiler.spans)
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in complete)
    assert sum(e["ph"] == "C" for e in trace["traceEvents"]) == 2  # a memory counter per block
    assert any("frames/s" in line for line in profile_lines(data["summary"]))


def test_summary_without_blocks_says_so():
    with pytest.raises(ValueError, match="no blocks"):
        Profiler().summary()


def test_percentile_interpolates():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0], 100) == 2.0
