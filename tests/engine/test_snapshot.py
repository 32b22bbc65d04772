"""Saving a session to disk and restoring it, in this process or another, bit for bit."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tiny import TINY, strong_model, tiny_engine_config
from worldcast import CacheConfig, Engine, GenerationRequest
from worldcast.models.placeholder import LatentPreviewDecoder

EMBEDS = torch.randn(4, TINY.text_dim, generator=torch.Generator().manual_seed(0))


def _engine(**cache):
    config = tiny_engine_config(cache=CacheConfig(**cache))
    return Engine(config, strong_model(), decoder=LatentPreviewDecoder(TINY.in_dim, config.vae_stride))


def _finish(engine, request_id):
    blocks = []
    while request_id in engine.sessions:
        blocks += [b for b in engine.step() if b.request_id == request_id]
    return torch.cat([b.latents for b in blocks], 1), torch.cat([b.frames for b in blocks])


def _request():
    return GenerationRequest(15, prompt_embeds=EMBEDS, seed=3, actions=None)


@pytest.mark.parametrize("cache", [{}, {"window_frames": 3, "sink_frames": 1}, {"quantization": "fp8"},
                                   {"window_frames": 3, "retrieval_pages": 1}])
def test_restore_continues_bit_identically(tmp_path, cache):
    whole = _engine(**cache).generate(_request())
    engine = _engine(**cache)
    rid = engine.add_request(_request())
    before = [engine.step()[0] for _ in range(2)]
    engine.save(rid, tmp_path / "world.snap")
    engine.abort(rid)
    fresh = _engine(**cache)  # a new engine (and model) that never saw the session
    restored = fresh.restore(tmp_path / "world.snap")
    latents, frames = _finish(fresh, restored)
    assert torch.equal(torch.cat([b.latents for b in before] + [latents], 1), whole.latents)
    assert torch.equal(torch.cat([b.frames for b in before] + [frames]), whole.frames)
    assert fresh.pool.num_free == fresh.pool.num_pages


def test_restore_in_another_process(tmp_path):
    engine = _engine()
    rid = engine.add_request(_request())
    engine.step()
    engine.save(rid, tmp_path / "world.snap")
    expected, _ = _finish(engine, rid)
    script = f"""
import sys, torch
sys.path.insert(0, {str(Path(__file__).parents[1])!r})
from test_snapshot import _engine, _finish
engine = _engine()
latents, _ = _finish(engine, engine.restore({str(tmp_path / "world.snap")!r}))
torch.save(latents, {str(tmp_path / "rest.pt")!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parent)
    assert torch.equal(torch.load(tmp_path / "rest.pt"), expected)


def test_corrupt_truncated_and_foreign_files_are_refused_and_nothing_is_allocated(tmp_path):
    engine = _engine()
    rid = engine.add_request(_request())
    engine.step()
    path = engine.save(rid, tmp_path / "world.snap")
    raw = path.read_bytes()
    fresh = _engine()
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF
    cases = {r"corrupt \(checksum": bytes(flipped), "truncated": raw[:-100], "not a worldcast snapshot": b"hello" + raw}
    for message, content in cases.items():
        bad = tmp_path / "bad.snap"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=f"snapshot: .*{message}"):
            fresh.restore(bad)
    other = Engine(tiny_engine_config(cache=CacheConfig(quantization="int8")), strong_model())
    with pytest.raises(ValueError, match="snapshot: made for a different engine: quantization"):
        other.restore(path)
    assert not fresh.sessions and (fresh.pool is None or fresh.pool.num_used == 0)


def test_a_failed_save_leaves_the_earlier_file_intact(tmp_path, monkeypatch):
    engine = _engine()
    rid = engine.add_request(_request())
    engine.step()
    path = engine.save(rid, tmp_path / "world.snap")
    good = path.read_bytes()
    engine.step()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("worldcast.engine.snapshot.os.replace", broken)
    with pytest.raises(OSError, match="disk full"):
        engine.save(rid, path)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["world.snap"]
