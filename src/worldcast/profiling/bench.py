"""``worldcast bench``: one generation under several engine settings, in one process and one run.

Every setting runs the same request (same model, prompt, seed, length) through a fresh
``Engine`` with a ``Profiler``: first ``warmup`` runs that are thrown away (allocations, lazy
initialisation, compilation), then ``repeats`` measured runs. Figures are medians over the
repeats. The machine's bf16 matmul peak is measured in the same run, before and after the
settings, so FLOP/s can be read as a fraction of what this machine does now (shared machines
vary by 3x from hour to hour).

Settings are the baselines and cache policies the engine has: ``recompute`` (no cache: every
denoising step re-runs the DiT over the visible past), ``paged`` (the paged KV cache, every
frame kept), ``window`` (a sliding window of latent frames), ``sink`` (the window plus the
video's first frames), ``retrieval`` (the window plus block-sparse retrieval of earlier frames),
``int8`` / ``fp8`` (every frame kept, in quantized pages).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import math
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from worldcast.config import EngineConfig
from worldcast.engine.engine import Engine
from worldcast.engine.request import BlockOutput, GenerationRequest
from worldcast.profiling.peak import DEFAULT_SHAPES, matmul_peak
from worldcast.profiling.profiler import Profiler, stage_groups
from worldcast.streaming.mp4 import Mp4Writer

ATTENTIONS = ("cache", "recompute")


@dataclass(frozen=True)
class BenchSetting:
    name: str
    attention: str = "cache"  # "cache" (paged KV cache) or "recompute" (no cache)
    window: int | None = None  # latent frames of context each block sees; None keeps all
    sink: int = 0  # first latent frames kept in every block's context (needs a window)
    quantization: str | None = None  # "int8" / "fp8" page storage
    retrieval: int = 0  # block-sparse retrieval: earlier pages per layer beyond the window
    # A device pool of this share of the pages the whole video needs; what does not fit is
    # offloaded to host memory (CacheConfig.over_budget="offload")
    device_share: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("BenchSetting.name: must not be empty")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"BenchSetting.attention: {self.attention!r}; accepted: {', '.join(ATTENTIONS)}")
        if self.window is not None and self.window <= 0:
            raise ValueError(f"BenchSetting.window: must be positive or None, got {self.window}")
        if self.device_share is not None and not 0 < self.device_share < 1:
            raise ValueError(f"BenchSetting.device_share: must be in (0, 1) or None, got {self.device_share}")

    def engine_config(self, base: EngineConfig, latent_frames: int | None = None) -> EngineConfig:
        """The engine settings of this setting; ``latent_frames`` (the request's) sizes ``device_share``."""
        cache = dataclasses.replace(base.cache, window_frames=self.window, sink_frames=self.sink,
                                    quantization=self.quantization, retrieval_pages=self.retrieval)
        if self.device_share is not None:
            if latent_frames is None:
                raise ValueError(f"BenchSetting {self.name!r}: device_share needs the request's latent_frames")
            pages = max(1, math.ceil(self.device_share * latent_frames))
            cache = dataclasses.replace(cache, num_pages=pages, budget_bytes=None, budget_fraction=None,
                                        over_budget="offload")
        return dataclasses.replace(base, attention=self.attention, cache=cache)


SETTING_NAMES = ("recompute", "paged", "window", "sink", "retrieval", "int8", "fp8", "offload")
RETRIEVAL_PAGES = 3


def standard_settings(window: int, sink: int = 1) -> dict[str, BenchSetting]:
    """Every cache policy the engine has, and the no-cache baseline, by name."""
    return {
        "recompute": BenchSetting("recompute", "recompute",
                                  description="no cache: each step re-runs the DiT over the past"),
        "paged": BenchSetting("paged", description="paged KV cache, every frame kept"),
        "window": BenchSetting(f"window{window}", window=window, description=f"last {window} latent frames"),
        "sink": BenchSetting(f"sink{sink}+window{window}", window=window, sink=sink,
                             description=f"first {sink} and last {window} latent frames"),
        "retrieval": BenchSetting(f"window{window}+top{RETRIEVAL_PAGES}", window=window, retrieval=RETRIEVAL_PAGES,
                                  description=f"last {window} latent frames and the {RETRIEVAL_PAGES} best-matching "
                                              "earlier ones per layer"),
        "int8": BenchSetting("int8", quantization="int8", description="every frame kept, INT8 pages"),
        "fp8": BenchSetting("fp8", quantization="fp8", description="every frame kept, FP8 (e4m3) pages"),
        "offload": BenchSetting("offload50%", device_share=0.5,
                                description="every frame kept, half the pages on the device, the rest "
                                            "offloaded to host memory and streamed back per layer"),
    }


def select_settings(names: list[str], window: int, sink: int = 1) -> list[BenchSetting]:
    """The standard settings named in ``names`` (see ``SETTING_NAMES``), in order, once each."""
    available = standard_settings(window, sink)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"settings: unknown {', '.join(unknown)}; accepted: {', '.join(SETTING_NAMES)}")
    return [available[n] for n in dict.fromkeys(names)]


@dataclass(frozen=True)
class BenchConfig:
    settings: tuple[BenchSetting, ...]
    warmup: int = 1
    repeats: int = 3
    measure_peak: bool = True
    peak_shapes: tuple[tuple[int, int, int], ...] = DEFAULT_SHAPES  # (m, k, n) GEMMs of the peak reading
    reference: str = "paged"  # the setting every other video is compared with (PSNR), if it runs

    def __post_init__(self) -> None:
        if not self.settings:
            raise ValueError("BenchConfig.settings: at least one setting is needed")
        names = [s.name for s in self.settings]
        if len(set(names)) != len(names):
            raise ValueError(f"BenchConfig.settings: names must be unique, got {names}")
        if self.warmup < 0:
            raise ValueError(f"BenchConfig.warmup: must be >= 0, got {self.warmup}")
        if self.repeats < 1:
            raise ValueError(f"BenchConfig.repeats: must be >= 1, got {self.repeats}")


@dataclass(frozen=True)
class Components:
    """What every setting shares: loaded once, so the settings differ only in the engine."""

    model: torch.nn.Module
    text_encoder: object
    decoder: object | None


class Sink:
    """Where a run's frames go; ``write`` and ``close`` are timed as the 'output_encode' stage."""

    def write(self, block: BlockOutput) -> None: ...

    def close(self) -> None: ...


class Mp4Sink(Sink):
    """Each run's frames go to a throwaway H.264 MP4, as ``worldcast generate`` writes them."""

    def __init__(self, fps: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="worldcast-bench-")
        self._writer = Mp4Writer(Path(self._dir.name) / "run.mp4", fps=fps)

    def write(self, block: BlockOutput) -> None:
        self._writer.write(block.frames)

    def close(self) -> None:
        self._writer.close()  # flushes the encoder's look-ahead: part of the cost
        self._dir.cleanup()


def _release_memory() -> None:
    """Hand freed memory back to the OS between runs, so one setting's peak RSS is not another's."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_once(config: EngineConfig, parts: Components, request: GenerationRequest,
             sink_factory: Callable[[], Sink] | None = None) -> tuple[Profiler, torch.Tensor | None]:
    """One profiled generation of ``request`` with ``config``: the profiler and the video's
    frames (N, H, W, 3) uint8 (None without a decoder)."""
    _release_memory()
    profiler = Profiler(config.device)
    engine = Engine(config, parts.model, parts.text_encoder, parts.decoder, profiler=profiler)
    sink = sink_factory() if sink_factory is not None else None
    request_id, frames = None, []
    for block in engine.stream(request):
        request_id = block.request_id
        if block.frames is not None:
            frames.append(block.frames)
            if sink is not None:
                with profiler.stage("output_encode", block.request_id, block.block_index):
                    sink.write(block)
    if sink is not None:
        with profiler.stage("output_encode", request_id):
            sink.close()
    return profiler, torch.cat(frames) if frames else None


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) between two uint8 videos; inf when identical."""
    mse = (a.double() - b.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise_setting(setting: BenchSetting, runs: list[dict], peak: float | None) -> dict:
    """Medians over the measured runs of one setting."""
    def med(key: str) -> float | None:
        return _median([r["summary"][key] for r in runs])

    summaries = [r["summary"] for r in runs]
    stage_names = sorted({k for s in summaries for k in stage_groups(s["stages"])})
    tflops = med("dit_tflops_per_second")
    per_block = [[b["latency"] for b in r["blocks"]] for r in runs]
    return {
        "setting": dataclasses.asdict(setting),
        "time_to_first_frame": med("time_to_first_frame"),
        "block_latency_p50": _median([s["block_latency"]["p50"] for s in summaries]),
        "block_latency_p95": _median([s["block_latency"]["p95"] for s in summaries]),
        "block_latency_max": _median([s["block_latency"]["max"] for s in summaries]),
        "fps": med("fps"),
        "fps_without_decode": med("fps_without_decode"),
        "wall_seconds": med("wall_seconds"),
        "pixel_frames": summaries[0]["pixel_frames"],
        "blocks": summaries[0]["blocks"],
        "stages": {n: _median([stage_groups(s["stages"]).get(n, 0.0) for s in summaries]) for n in stage_names},
        "unaccounted_seconds": med("unaccounted_seconds"),
        "dit_tflops_per_second": tflops,
        "mfu": tflops / peak if tflops is not None and peak else None,
        "kv_session_bytes_max": med("kv_session_bytes_max"),
        "kv_host_bytes_max": med("kv_host_bytes_max"),
        "peak_rss_bytes": med("peak_rss_bytes"),
        "rss_at_start_bytes": med("rss_at_start_bytes"),
        "device_peak_bytes": med("device_peak_bytes"),
        # per block index, median over repeats: the curves of the plots
        "latency_per_block": [statistics.median(v) for v in zip(*per_block)],
        "kv_session_bytes_per_block": [b["kv"]["session_bytes"] for b in runs[-1]["blocks"]],
        "rss_bytes_per_block": [statistics.median(v) for v in
                                zip(*[[b["rss_bytes"] for b in r["blocks"]] for r in runs])],
    }


def run_bench(cfg: BenchConfig, base: EngineConfig, parts: Components, request: GenerationRequest,
              sink_factory: Callable[[], Sink] | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    """Every setting of ``cfg`` on ``request``; returns the report (see ``summarise_setting``)."""
    # all settings validated up front; one the engine refuses for this request is reported, not run
    configs = [s.engine_config(base, request.num_latent_frames) for s in cfg.settings]
    refused = {s.name: reason for s, c in zip(cfg.settings, configs) if (reason := _refusal(c, parts, request))}
    peaks = [matmul_peak(base.torch_dtype, base.device, cfg.peak_shapes)] if cfg.measure_peak else []
    results, videos = [], {}
    for setting, config in zip(cfg.settings, configs):
        if setting.name in refused:
            continue
        runs = []
        for index in range(cfg.warmup + cfg.repeats):
            profiler, frames = run_once(config, parts, request, sink_factory)
            videos[setting.name] = frames  # the same request and seed: every run's video is the same
            if index >= cfg.warmup:
                runs.append(profiler.to_dict())
            if progress is not None:  # told after each run, warm-ups included
                kind = "warm-up" if index < cfg.warmup else f"repeat {index - cfg.warmup + 1}/{cfg.repeats}"
                progress(f"{setting.name}: {kind}")
        results.append((setting, runs))
    if cfg.measure_peak:
        peaks.append(matmul_peak(base.torch_dtype, base.device, cfg.peak_shapes))
    peak = max(peaks) if peaks else None
    return {
        "peak_tflops": peak,
        "peak_tflops_readings": peaks,
        "warmup": cfg.warmup,
        "repeats": cfg.repeats,
        "reference": cfg.reference,
        "request": {"latent_frames": request.num_latent_frames, "seed": request.seed},
        "engine": {"dtype": base.dtype, "device": base.device, "height": base.height, "width": base.width,
                   "frames_per_block": base.frames_per_block, "steps": list(base.schedule.denoising_steps),
                   "compile": base.compile},
        "settings": [{**summarise_setting(s, runs, peak), **_deviation(s, cfg, videos)} for s, runs in results],
        "runs": {s.name: runs for s, runs in results},
        "refused": refused,
    }


def _refusal(config: EngineConfig, parts: Components, request: GenerationRequest) -> str | None:
    """Why an engine with ``config`` refuses ``request`` (e.g. a budget offload cannot meet), or None."""
    engine = Engine(config, parts.model, parts.text_encoder, parts.decoder)
    try:
        engine.abort(engine.add_request(request))
    except ValueError as err:
        return str(err)
    return None


def _deviation(setting: BenchSetting, cfg: BenchConfig, videos: dict[str, torch.Tensor | None]) -> dict:
    """How far a setting's video is from the reference setting's (the full paged cache)."""
    reference = videos.get(cfg.reference)
    frames = videos[setting.name]
    if reference is None or frames is None:
        return {"psnr_vs_reference_db": None}
    return {"psnr_vs_reference_db": psnr(frames, reference)}


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def table(report: dict) -> str:
    """The report's medians as a plain-text table."""
    header = ("setting", "1st frame s", "block p50 ms", "p95 ms", "max ms", "frames/s", "w/o decode",
              "KV MiB", "host KV MiB", "peak RSS MiB", "TFLOP/s", "% peak", "PSNR vs ref")
    rows = [header]
    for s in report["settings"]:
        rows.append((s["setting"]["name"], _fmt(s["time_to_first_frame"], digits=2),
                     _fmt(s["block_latency_p50"], 1e3), _fmt(s["block_latency_p95"], 1e3),
                     _fmt(s["block_latency_max"], 1e3), _fmt(s["fps"]), _fmt(s["fps_without_decode"]),
                     _fmt(s["kv_session_bytes_max"], 2**-20), _fmt(s["kv_host_bytes_max"] or None, 2**-20),
                     _fmt(s["peak_rss_bytes"], 2**-20, 0),
                     _fmt(s["dit_tflops_per_second"], digits=3), _fmt(s["mfu"], 100),
                     _fmt(s["psnr_vs_reference_db"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    peak = report["peak_tflops"]
    lines.append(f"medians of {report['repeats']} runs after {report['warmup']} warm-up; "
                 + (f"bf16 matmul peak this run: {peak:.2f} TFLOP/s" if peak else "peak not measured")
                 + f"; PSNR of each video against the {report['reference']!r} setting's")
    lines += [f"{name}: not run, the engine refuses it: {reason}" for name, reason in report.get("refused", {}).items()]
    return "\n".join(lines)


def write_plots(report: dict, out_dir: Path) -> list[Path]:
    """latency_per_block.png, memory_per_block.png, stages.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for s in report["settings"]:
        ax.plot([v * 1e3 for v in s["latency_per_block"]], marker=".", label=s["setting"]["name"])
    ax.set(xlabel="block index", ylabel="latency (ms)", title="Per-block latency (median over repeats)")
    ax.set_ylim(bottom=0)
    ax.legend()
    paths.append(_save(fig, out_dir / "latency_per_block.png"))

    fig, (kv, rss) = plt.subplots(1, 2, figsize=(11, 4))
    for s in report["settings"]:
        kv.plot([v / 2**20 for v in s["kv_session_bytes_per_block"]], marker=".", label=s["setting"]["name"])
        rss.plot([v / 2**20 for v in s["rss_bytes_per_block"]], marker=".", label=s["setting"]["name"])
    kv.set(xlabel="block index", ylabel="MiB", title="KV cache held by the session")
    rss.set(xlabel="block index", ylabel="MiB", title="Process RSS after each block")
    kv.legend()
    paths.append(_save(fig, out_dir / "memory_per_block.png"))

    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.6 * len(report["settings"])))
    names = [s["setting"]["name"] for s in report["settings"]]
    stages = sorted({k for s in report["settings"] for k in s["stages"]}, key=_stage_order)
    left = [0.0] * len(names)
    for stage in stages:
        widths = [s["stages"].get(stage, 0.0) for s in report["settings"]]
        ax.barh(names, widths, left=left, label=stage)
        left = [a + b for a, b in zip(left, widths)]
    other = [max(0.0, s["unaccounted_seconds"] or 0.0) for s in report["settings"]]
    ax.barh(names, other, left=left, label="other", color="lightgrey")
    ax.set(xlabel="seconds per run (median)", title="Where the time goes")
    ax.legend(ncol=6, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    paths.append(_save(fig, out_dir / "stages.png"))
    return paths


def _stage_order(name: str) -> tuple[int, str]:
    order = ["text_encode", "denoise", "commit", "decode", "output_encode"]
    return (order.index(name) if name in order else len(order), name)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
