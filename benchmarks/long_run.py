"""Memory and latency over a very long generation with a sliding window (and sink).

One session of ``--blocks`` blocks of the built-in world's architecture (random weights: speed
and memory do not depend on them) runs through a profiled engine with the window/sink cache; the
script reports per-block latency and KV bytes held, and process RSS, in slices of 100 blocks, so
flat memory and flat latency can be read off (or their absence). The full cache cannot run this
long: 1,000 blocks of 3 latent frames would need 3,000 pages.

    .venv/bin/python benchmarks/long_run.py [--blocks 1000] [--window 6] [--sink 1] [--out docs/bench/long_run]

Frame positions are absolute (as in Self-Forcing and LongLive), so the RoPE table is enlarged to
cover every frame (``rope_max_positions``); a model trained with a shorter table would see
positions it never saw.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path

from worldcast.config import CacheConfig
from worldcast.engine.engine import Engine
from worldcast.profiling.profiler import Profiler
from worldcast.world.model import WorldModelSpec
from worldcast.world.runtime import WorldModel, WorldSettings
from worldcast.world.train import save_random_world


def measure(blocks: int, window: int, sink: int, directory: Path | None = None) -> dict:
    spec = WorldModelSpec()
    latent_frames = blocks * spec.frames_per_block
    spec = dataclasses.replace(spec, dit=dataclasses.replace(spec.dit, rope_max_positions=latent_frames + 8))
    directory = save_random_world(directory or Path(tempfile.mkdtemp(prefix="worldcast-long-")), spec)
    world = WorldModel(directory, WorldSettings(window=window), spec=spec)
    config = dataclasses.replace(world.config, cache=CacheConfig(window_frames=window, sink_frames=sink))
    profiler = Profiler(config.device)
    engine = Engine(config, world.dit, world.text_encoder, world.engine.decoder, profiler=profiler)
    frames = 1 + (latent_frames - 1) * spec.temporal_stride
    for _ in engine.stream(world.request("a top-down view of a forest at day", ["right"] * frames, frames)):
        pass
    records = profiler.blocks
    slices = []
    for first in range(0, len(records), 100):
        part = records[first:first + 100]
        slices.append({"blocks": f"{first}-{first + len(part) - 1}",
                       "latency_median_ms": 1e3 * statistics.median(r.latency for r in part),
                       "latency_max_ms": 1e3 * max(r.latency for r in part),
                       "kv_held_bytes_max": max(r.kv.session_bytes for r in part),
                       "rss_mib_max": max(r.rss_bytes for r in part) / 2**20})
    return {"blocks": blocks, "latent_frames": latent_frames, "pixel_frames": frames, "window": window,
            "sink": sink, "pool_pages": engine.pool.num_pages, "bytes_per_page": engine.spec.bytes_per_page,
            "summary": profiler.summary(), "slices": slices,
            "latency_ms": [1e3 * r.latency for r in records], "kv_held_bytes": [r.kv.session_bytes for r in records],
            "rss_mib": [r.rss_bytes / 2**20 for r in records]}


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, mem) = plt.subplots(1, 2, figsize=(11, 4))
    lat.plot(result["latency_ms"], linewidth=0.6)
    lat.set(xlabel="block index", ylabel="ms", title="Per-block latency")
    lat.set_ylim(bottom=0)
    mem.plot([b / 2**20 for b in result["kv_held_bytes"]], label="KV held by the session")
    mem.plot([r - result["rss_mib"][0] for r in result["rss_mib"]], label="RSS growth since block 0")
    mem.set(xlabel="block index", ylabel="MiB", title="Memory")
    mem.legend()
    fig.suptitle(f"{result['blocks']} blocks, window {result['window']} + sink {result['sink']} latent frames")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", type=int, default=1000)
    p.add_argument("--window", type=int, default=6)
    p.add_argument("--sink", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("out/long_run"))
    args = p.parse_args()
    result = measure(args.blocks, args.window, args.sink)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "long_run.json").write_text(json.dumps(result, indent=2))
    plot(result, args.out / "long_run.png")
    print(f"{result['blocks']} blocks ({result['pixel_frames']} frames), window {args.window} + sink {args.sink}; "
          f"pool {result['pool_pages']} pages of {result['bytes_per_page'] / 2**10:.0f} KiB")
    for s in result["slices"]:
        print(f"  blocks {s['blocks']:>9}: latency median {s['latency_median_ms']:.0f} ms (max "
              f"{s['latency_max_ms']:.0f}), KV held {s['kv_held_bytes_max'] / 2**20:.2f} MiB, "
              f"RSS {s['rss_mib_max']:.0f} MiB")


if __name__ == "__main__":
    main()
