"""Opt-in profiler: what a generation cost, stage by stage and block by block.

Give an ``Engine`` a ``Profiler`` and it records, without changing what is generated:

* a span for every stage — text encoding, each denoising step, the context commit, VAE decode,
  and whatever the caller wraps in ``profiler.stage(...)`` (the CLI wraps MP4 encoding);
* one ``BlockRecord`` per block: when it finished, its latency as the user sees it (since the
  session's previous block, or since the request arrived), the pixel frames it delivered (each
  frame counted once, however many denoising steps made it), the DiT FLOPs it ran, KV-cache bytes
  and process / device memory after it.

Timers read ``time.perf_counter``; on CUDA every reading first synchronises the device, so a
span measures the kernels it launched rather than the launch. Without a profiler the engine
reads the plain clock and records nothing (no synchronisation, no memory readings).

``summary()`` turns the records into the figures people quote (time to first frame, per-block
latency percentiles, frames per second with and without decode, a stage breakdown, memory,
achieved FLOP/s); ``write_json`` and ``write_chrome_trace`` export them (the trace opens in
chrome://tracing or https://ui.perfetto.dev).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from worldcast.profiling import memory


@dataclass(frozen=True)
class Span:
    """One timed stage, in seconds since the profiler started."""

    name: str
    start: float
    end: float
    request_id: int | None = None
    block: int | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class KVUsage:
    """KV-cache bytes after a block."""

    session_bytes: int = 0  # pages the session holds (used: each holds a committed frame)
    session_reserved_bytes: int = 0  # pages the scheduler set aside for it (allocated to it)
    pool_bytes: int = 0  # the pool's storage
    pool_used_bytes: int = 0  # pages all sessions hold
    host_bytes: int = 0  # the session's pages offloaded to host memory (CacheConfig.over_budget="offload")


@dataclass(frozen=True)
class BlockRecord:
    request_id: int
    block_index: int
    latent_frames: int
    pixel_frames: int  # frames delivered to the caller (0 without a decoder, or for a prefix)
    finished: float  # seconds since the profiler started
    latency: float  # since this session's previous block, or since its request arrived
    stages: dict[str, float]  # seconds per stage of this block (engine stages only)
    flops: int  # DiT FLOPs of the block's forwards (analytical, see profiling.flops)
    kv: KVUsage
    rss_bytes: int
    device_bytes: int | None


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated ``q``-th percentile (0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Profiler:
    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.spans: list[Span] = []
        self.blocks: list[BlockRecord] = []
        self._arrived: dict[int, float] = {}  # request id -> arrival time
        self._last_block: dict[int, float] = {}  # request id -> when its last block finished
        memory.reset_device_peak(self.device)
        self.rss_at_start = memory.current_rss()
        self._kernel_peak = memory.reset_peak_rss()  # True: VmHWM now covers only this run
        self._origin = time.perf_counter()

    # -- timing ---------------------------------------------------------------------------------
    def clock(self) -> float:
        """Seconds since the profiler started, after the device has finished its queued work."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self._origin

    @contextmanager
    def stage(self, name: str, request_id: int | None = None, block: int | None = None) -> Iterator[None]:
        """Time a stage outside the engine (e.g. writing frames to a file)."""
        start = self.clock()
        try:
            yield
        finally:
            self.spans.append(Span(name, start, self.clock(), request_id, block))

    def add_span(self, span: Span) -> None:
        self.spans.append(span)

    # -- events from the engine -----------------------------------------------------------------
    def request_arrived(self, request_id: int, at: float) -> None:
        self._arrived[request_id] = at

    def block_done(self, request_id: int, block_index: int, latent_frames: int, pixel_frames: int,
                   spans: list[Span], flops: int, kv: KVUsage) -> BlockRecord:
        finished = self.clock()
        previous = self._last_block.get(request_id, self._arrived.get(request_id, 0.0))
        self._last_block[request_id] = finished
        stages: dict[str, float] = {}
        for span in spans:
            stages[span.name] = stages.get(span.name, 0.0) + span.seconds
            self.spans.append(span)
        record = BlockRecord(request_id, block_index, latent_frames, pixel_frames, finished, finished - previous,
                             stages, flops, kv, memory.current_rss(), memory.device_allocated(self.device))
        self.blocks.append(record)
        return record

    # -- results --------------------------------------------------------------------------------
    def peak_rss(self) -> tuple[int, str]:
        """(bytes, how it was measured) of the process's peak RSS during the profiled run."""
        sampled = max([self.rss_at_start] + [b.rss_bytes for b in self.blocks])
        kernel = memory.peak_rss() if self._kernel_peak else None
        if kernel is not None:
            return max(kernel, sampled), "kernel peak RSS (VmHWM), reset when profiling started"
        return sampled, "highest RSS read after each block"

    def summary(self, peak_tflops: float | None = None) -> dict:
        """The run's figures. ``peak_tflops``: the machine's measured matmul peak, for the
        achieved fraction of it (model FLOPs utilisation)."""
        if not self.blocks:
            raise ValueError("profiler: no blocks were recorded; run a generation with this profiler first")
        start = min(self._arrived.values(), default=0.0)
        end = max([b.finished for b in self.blocks] + [s.end for s in self.spans])
        wall = end - start
        stages = self._stage_totals()
        frames = sum(b.pixel_frames for b in self.blocks)
        decode = stages.get("decode", 0.0)
        dit_seconds = sum(v for k, v in stages.items() if k.startswith("step_") or k == "commit")
        flops = sum(b.flops for b in self.blocks)
        latencies = [b.latency for b in self.blocks]
        first_frame = [b.finished for b in self.blocks if b.pixel_frames > 0]
        peak_rss, peak_source = self.peak_rss()
        tflops = flops / dit_seconds / 1e12 if dit_seconds > 0 else None
        return {
            "device": str(self.device),
            "requests": len(self._arrived),
            "blocks": len(self.blocks),
            "latent_frames": sum(b.latent_frames for b in self.blocks),
            "pixel_frames": frames,
            "wall_seconds": wall,
            "time_to_first_frame": first_frame[0] - start if first_frame else None,
            "block_latency": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                              "max": max(latencies), "mean": statistics.fmean(latencies)},
            "fps": frames / wall if frames and wall > 0 else None,
            "fps_without_decode": frames / (wall - decode) if frames and wall > decode else None,
            "stages": stages,
            "unaccounted_seconds": wall - sum(stages.values()),
            "dit_flops": flops,
            "dit_tflops_per_second": tflops,
            "peak_tflops": peak_tflops,
            "mfu": tflops / peak_tflops if tflops is not None and peak_tflops else None,
            "kv_session_bytes_max": max(b.kv.session_bytes for b in self.blocks),
            "kv_session_reserved_bytes_max": max(b.kv.session_reserved_bytes for b in self.blocks),
            "kv_pool_bytes_max": max(b.kv.pool_bytes for b in self.blocks),
            "kv_pool_used_bytes_max": max(b.kv.pool_used_bytes for b in self.blocks),
            "kv_host_bytes_max": max(b.kv.host_bytes for b in self.blocks),
            "rss_at_start_bytes": self.rss_at_start,
            "peak_rss_bytes": peak_rss,
            "peak_rss_measured_by": peak_source,
            "device_peak_bytes": memory.device_peak(self.device),
        }

    def _stage_totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for span in self.spans:
            totals[span.name] = totals.get(span.name, 0.0) + span.seconds
        return totals

    def to_dict(self, peak_tflops: float | None = None) -> dict:
        return {"summary": self.summary(peak_tflops),
                "blocks": [asdict(b) for b in self.blocks],
                "spans": [asdict(s) for s in self.spans]}

    def write_json(self, path: str | Path, peak_tflops: float | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(peak_tflops), indent=2))
        return path

    def chrome_trace(self) -> dict:
        """Trace Event Format: one track per request (track 0: work outside any request), stages
        as complete ('X') events, memory and KV bytes as counters ('C')."""
        def track(request_id: int | None) -> int:
            return 0 if request_id is None else request_id + 1

        events: list[dict] = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "worldcast"}}]
        for request_id in sorted({s.request_id for s in self.spans}, key=track):
            name = "engine" if request_id is None else f"request {request_id}"
            events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": track(request_id),
                           "args": {"name": name}})
        for span in sorted(self.spans, key=lambda s: s.start):
            events.append({"name": span.name, "ph": "X", "pid": 0, "tid": track(span.request_id),
                           "ts": span.start * 1e6, "dur": span.seconds * 1e6,
                           "args": {"request": span.request_id, "block": span.block}})
        for b in self.blocks:
            events.append({"name": "memory", "ph": "C", "pid": 0, "ts": b.finished * 1e6,
                           "args": {"rss_MiB": b.rss_bytes / 2**20, "kv_pool_used_MiB": b.kv.pool_used_bytes / 2**20}})
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def write_chrome_trace(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.chrome_trace()))
        return path


def stage_groups(stages: dict[str, float]) -> dict[str, float]:
    """Stage seconds with the per-step stages ("step_0", "step_1", ...) folded into "denoise"."""
    groups: dict[str, float] = {}
    for name, seconds in stages.items():
        key = "denoise" if name.startswith("step_") else name
        groups[key] = groups.get(key, 0.0) + seconds
    return groups


def profile_lines(summary: dict) -> list[str]:
    """A profile summary as a few human-readable lines."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1e3:.1f} ms"

    lat = summary["block_latency"]
    lines = [f"profile: {summary['blocks']} blocks, {summary['pixel_frames']} frames in "
             f"{summary['wall_seconds']:.2f} s; first frame after {ms(summary['time_to_first_frame'])}",
             f"  block latency p50 {ms(lat['p50'])}, p95 {ms(lat['p95'])}, max {ms(lat['max'])}"]
    if summary["fps"] is not None:
        lines.append(f"  {summary['fps']:.1f} frames/s ({summary['fps_without_decode']:.1f} without VAE decode)")
    stages = stage_groups(summary["stages"])
    total = summary["wall_seconds"]
    parts = [f"{k} {v:.2f} s ({v / total:.0%})" for k, v in sorted(stages.items(), key=lambda kv: -kv[1])]
    lines.append("  stages: " + ", ".join(parts) + f", other {summary['unaccounted_seconds']:.2f} s")
    if summary["dit_tflops_per_second"] is not None:
        mfu = (f" = {summary['mfu']:.1%} of the {summary['peak_tflops']:.2f} TFLOP/s matmul peak"
               if summary["mfu"] else "")
        lines.append(f"  DiT {summary['dit_tflops_per_second']:.3f} TFLOP/s{mfu}")
    host = summary["kv_host_bytes_max"]
    offloaded = f" (+ {host / 2**20:.1f} MiB offloaded to host memory)" if host else ""
    lines.append(f"  KV cache {summary['kv_session_bytes_max'] / 2**20:.1f} MiB held at most{offloaded}; peak RSS "
                 f"{summary['peak_rss_bytes'] / 2**20:.0f} MiB")
    return lines
