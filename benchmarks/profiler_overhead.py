"""What the profiler itself costs: the same generation with and without a ``Profiler``,
alternating, medians of the wall time.

    .venv/bin/python benchmarks/profiler_overhead.py [--model DIR] [--frames 83] [--repeats 7] [--json]

Without --model it times random weights of the built-in world's architecture (64x64, MiniLM,
VAE decode); speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from worldcast.engine.engine import Engine
from worldcast.profiling.profiler import Profiler
from worldcast.world.runtime import WorldModel, WorldSettings
from worldcast.world.train import save_random_world


def measure(directory: Path, frames: int, repeats: int, guidance: float | None = None) -> dict:
    world = WorldModel(directory, WorldSettings(guidance=guidance))
    request = world.request("a top-down view of a forest at day", ["right"] * frames, frames)

    def run(profiled: bool) -> float:
        """One generation through a fresh engine over the same loaded model."""
        engine = Engine(world.config, world.dit, world.text_encoder, world.engine.decoder,
                        profiler=Profiler() if profiled else None)
        start = time.perf_counter()
        for _ in engine.stream(request):
            pass
        return time.perf_counter() - start

    run(False)  # warm-up
    plain, profiled = [], []
    for _ in range(repeats):  # alternate, so drift in machine load hits both alike
        plain.append(run(False))
        profiled.append(run(True))
    return {"frames": frames, "repeats": repeats,
            "plain_median_s": statistics.median(plain), "profiled_median_s": statistics.median(profiled),
            "overhead": statistics.median(profiled) / statistics.median(plain) - 1,
            "plain_s": plain, "profiled_s": profiled}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--frames", type=int, default=83)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--guidance", type=float, default=None, help="default: the model's (runs before 2026-11-26: 1)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    directory = args.model or save_random_world(Path(tempfile.mkdtemp(prefix="worldcast-overhead-")))
    result = measure(directory, args.frames, args.repeats, args.guidance)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.frames} frames: {result['plain_median_s']:.3f} s without a profiler, "
              f"{result['profiled_median_s']:.3f} s with one (median of {args.repeats}): "
              f"{result['overhead']:+.1%}")

if __name__ == "__main__":
    main()
