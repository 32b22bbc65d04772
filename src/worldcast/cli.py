"""Command line: ``worldcast generate``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from worldcast import __version__, progress
from worldcast.config import (
    DTYPES,
    KV_QUANTIZATIONS,
    OVER_BUDGET,
    SAMPLERS,
    CacheConfig,
    EngineConfig,
    ModelConfig,
    resolve_dtype,
)
from worldcast.engine.engine import Engine
from worldcast.engine.request import GenerationRequest
from worldcast.models.placeholder import HashingTextEncoder, LatentPreviewDecoder
from worldcast.models.registry import PRESETS, SCHEDULES, guess_family, load_model, preset, random_model
from worldcast.models.wan.vae import VAEFrameDecoder
from worldcast.profiling.bench import SETTING_NAMES
from worldcast.profiling.peak import matmul_peak
from worldcast.profiling.profiler import Profiler, profile_lines
from worldcast.streaming.frames import fit_frames, read_frames
from worldcast.streaming.mp4 import Mp4Writer
from worldcast.world.model import WorldModelSpec, is_world_model_dir, read_config, spec_for
from worldcast.world.runtime import WorldSettings, default_world_dir, load_world_components
from worldcast.world.sim import ACTIONS, BIOMES, TIMES, Scene, parse_actions
from worldcast.world.text import load_minilm

log = logging.getLogger("worldcast")

PLACEHOLDER_NOTICE = (
    "worldcast: NOTE: the DiT weights are real but no VAE or text encoder was found (pass --wan-dir "
    "with the Wan2.1-T2V directory); using the placeholder word-hashing text encoder and random "
    "latent-to-RGB decoder, so the video is not meaningful."
)
RANDOM_WEIGHTS_NOTICE = (
    "worldcast: NOTE: running with RANDOM weights. The DiT, the text encoder (word hashing) and "
    "the decoder (a fixed random latent-to-RGB projection) are untrained placeholders, so the "
    "video is noise-like. It exercises the real block loop, schedule and KV cache end to end."
)


def _budget(text: str) -> dict[str, float | int]:
    """'512M' / '2G' / '1048576' -> budget_bytes; '25%' -> budget_fraction (CacheConfig fields)."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if value.endswith("%"):
            return {"budget_fraction": float(value[:-1]) / 100}
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(value[-1:], 1)
        return {"budget_bytes": int(float(value[:-1] if scale > 1 else value) * scale)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 512M, 2G or 25%, got {text!r}") from None


def _number_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worldcast", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="version", version=f"worldcast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate a video and write it as MP4")
    gen.add_argument("--prompt", required=True, help="text prompt")
    gen.add_argument("--negative-prompt", default=None,
                     help="with --guidance: what the unconditional branch is conditioned on (default: empty)")
    gen.add_argument("--frames", type=int, default=None,
                     help="pixel frames of the output video, whole blocks (Wan models: 1 + 4k with 3-frame blocks, "
                          "e.g. 33, 81; the built-in world: 6k - 1, e.g. 35, 83); with --image or --video, "
                          "including the given frames. Default: the first valid count from 81 (about 5 s)")
    start = gen.add_mutually_exclusive_group()
    start.add_argument("--image", type=Path, default=None,
                       help="image-to-video: this image is the first frame (implies --independent-first-frame)")
    start.add_argument("--video", type=Path, default=None,
                       help="video extension: the video's first frames are encoded and continued")
    gen.add_argument("--out", type=Path, default=Path("out/video.mp4"), help="output MP4 path")
    gen.add_argument("--actions", default=None,
                     help='camera actions per frame for action-conditioned models, e.g. "right*32,up*16" '
                          "(or a file holding that); padded with 'none'")
    _add_model_options(gen)
    gen.add_argument("--fps", type=int, default=16)
    gen.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    gen.add_argument("--profile", type=Path, default=None,
                     help="write a profile (JSON: per-block latency, stage breakdown, memory, FLOP/s) here")
    gen.add_argument("--trace", type=Path, default=None,
                     help="write a Chrome/Perfetto trace of the stages here (open in ui.perfetto.dev)")
    gen.add_argument("--json", action="store_true",
                     help="print a JSON summary on stdout (with the profile's figures when profiling)")

    bench = sub.add_parser("bench", help="time one generation under every cache setting, with baselines",
                           description="Runs the same generation with the no-cache baseline and each cache "
                                       "policy, in one process: warm-up, repeats, medians; writes JSON and plots.")
    bench.add_argument("--prompt", default="a top-down view of a forest at day")
    bench.add_argument("--frames", type=int, default=None,
                       help="pixel frames per run, whole blocks (see 'generate --help'); default: the first valid "
                            "count from 81 (about 5 s)")
    bench.add_argument("--settings", default=",".join(SETTING_NAMES),
                       help="comma-separated: recompute (no cache), paged (full cache), window (sliding window), "
                            "sink (window + first frames), retrieval (window + block-sparse retrieval), int8 / fp8 "
                            "(quantized pages). Default: all")
    bench.add_argument("--bench-window", type=int, default=None,
                       help="latent frames kept by the window/sink settings (default: the model's --window, else 6)")
    bench.add_argument("--bench-sink", type=int, default=1, help="sink frames of the 'sink' setting")
    bench.add_argument("--warmup", type=int, default=1, help="unmeasured runs per setting")
    bench.add_argument("--repeats", type=int, default=3, help="measured runs per setting (medians reported)")
    bench.add_argument("--no-peak", action="store_true", help="skip measuring the matmul peak (no MFU)")
    bench.add_argument("--no-output", action="store_true", help="do not encode the frames to MP4 in each run")
    bench.add_argument("--fps", type=int, default=16, help="frame rate of the (throwaway) MP4 each run writes")
    bench.add_argument("--out", type=Path, default=Path("out/bench"), help="bench.json and PNG plots")
    _add_model_options(bench)
    bench.add_argument("--quiet", action="store_true", help="no progress bar or table")
    bench.add_argument("--json", action="store_true", help="print the report as JSON on stdout")

    train = sub.add_parser("train", help="train the built-in world model (VAE, then DiT)",
                           description="With no flags, each stage runs the built-in world's recipe (docs/world.md).")
    train.add_argument("stage", choices=["vae", "dit"], help="run in this order: vae (frame-wise autoencoder), dit")
    train.add_argument("--out", type=Path, default=Path("out/world"), help="checkpoints, logs and weights")
    train.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    train.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    train.add_argument("--lr", type=float, default=None, help="peak learning rate; default: the recipe's")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--data-clips", type=int, default=None,
                       help="dit: simulator clips encoded once before training; default: the recipe's")
    train.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="dit: torch.compile the transformer blocks; default: the recipe's (on)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--json", action="store_true", help="print what was trained and saved as JSON on stdout")

    evaluate = sub.add_parser("eval", help="measure the built-in world model against its simulator")
    evaluate.add_argument("target", choices=["world"])
    evaluate.add_argument("--model", type=Path, default=None, help="a 'worldcast train' directory (default: shipped)")
    evaluate.add_argument("--out", type=Path, default=Path("out/eval"),
                          help="report.json, strip.png, clips.mp4, long_*.mp4")
    evaluate.add_argument("--frames", type=int, default=None,
                          help="pixel frames per action/prompt clip (default: about 5 s, the first whole-block count)")
    evaluate.add_argument("--clips-per-scene", type=int, default=2)
    evaluate.add_argument("--long-seconds", type=float, default=60.0, help="length of the drift rollouts (0: skip)")
    evaluate.add_argument("--window", type=int, default=None,
                          help="latent frames of context per block (default: the model's trained context)")
    evaluate.add_argument("--sampler", default=None, choices=list(SAMPLERS),
                          help="the denoising update (default: the model's; see 'generate --help')")
    evaluate.add_argument("--guidance", type=float, default=None,
                          help="classifier-free guidance scale (default: the model's; see 'generate --help')")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    evaluate.add_argument("--json", action="store_true", help="print the whole report as JSON on stdout")
    return parser


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """What picks and configures the model and engine (shared by generate and bench)."""
    p.add_argument("--model", default=None,
                   help=f"default: the built-in world model (64x64, camera actions, prompts name a scene "
                        f"such as 'a forest at night'; the random 'tiny' preset while no weights ship). "
                        f"Or a checkpoint (Self-Forcing/CausVid .pt, Wan2.1 "
                        f"or diffusers directory), a directory written by 'worldcast train', or a "
                        f"random-weight preset: {', '.join(sorted(PRESETS))}")
    p.add_argument("--wan-dir", type=Path, default=None,
                   help="Wan2.1-T2V directory with the VAE, umT5 encoder and tokenizer")
    p.add_argument("--family", default=None, choices=sorted(SCHEDULES),
                   help="sampling schedule (default: causvid if the path says so, else self_forcing)")
    p.add_argument("--steps", type=_number_list, default=None,
                   help="override the denoising steps, e.g. 1000,750,500,250")
    p.add_argument("--sampler", default=None, choices=list(SAMPLERS),
                   help="how a denoising step moves on: renoise (x0, then fresh noise: distilled few-step "
                        "models) or euler (follow the flow). Default: the model's")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale: each step also runs the DiT without prompt and actions "
                        "and pushes away from it (2 passes per step); 1 is off. Default: the model's (1 for "
                        "distilled checkpoints)")
    p.add_argument("--height", type=int, default=None, help="pixels (default: per model)")
    p.add_argument("--width", type=int, default=None, help="pixels (default: per model)")
    p.add_argument("--frames-per-block", type=int, default=3, help="latent frames per block")
    p.add_argument("--independent-first-frame", action="store_true",
                   help="generate the first latent frame as its own block")
    p.add_argument("--window", type=int, default=None,
                   help="sliding-window cache: each block sees only the last N latent frames (memory stays "
                        "flat); 0 keeps every frame. Default: the built-in world's trained context, else 0")
    p.add_argument("--sink", type=int, default=0,
                   help="attention sink: the first N latent frames stay in every block's context (needs a window)")
    p.add_argument("--retrieval", type=int, default=0,
                   help="block-sparse retrieval: with --window, each layer also attends to the N earlier latent "
                        "frames whose keys best match the block (frames are then kept: memory grows)")
    p.add_argument("--kv-quant", default=None, choices=list(KV_QUANTIZATIONS),
                   help="store the KV cache as int8 or fp8 (e4m3) with scales: about half the bytes of bf16")
    p.add_argument("--kv-budget", type=_budget, default=None,
                   help="memory budget for the KV cache: bytes with a K/M/G suffix (e.g. 512M) or a share of "
                        "the device's memory (e.g. 25%%); the pool gets as many pages as fit")
    p.add_argument("--over-budget", default="error", choices=list(OVER_BUDGET),
                   help="a video that cannot fit the budget: refuse it with the figures (error), run it with the "
                        "largest sliding window that fits (window), or run it unchanged with its older frames in "
                        "host memory, streamed back per layer (offload); the last two say so")
    p.add_argument("--attention", default="cache", choices=["cache", "recompute"],
                   help="paged KV cache, or the no-cache baseline that recomputes the past")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    p.add_argument("--vae-dtype", default=None, choices=sorted(DTYPES),
                   help="VAE precision; default: bfloat16 for the built-in world (4x faster on CPU, 63 dB "
                        "from float32 with its trained weights), float32 otherwise (as Wan decodes)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the DiT blocks (slow first block, faster after)")


DEFAULT_SIZE = {"tiny": (128, 128)}


def _engine_config(args: argparse.Namespace, model: ModelConfig) -> EngineConfig:
    height, width = DEFAULT_SIZE.get(args.model, (480, 832))
    schedule = SCHEDULES[args.family or guess_family(Path(args.model))]
    vae_stride = (4, 8, 8)
    window = args.window or None
    if is_world_model_dir(args.model):  # the built-in world model: its own sizes, schedule, window
        spec = spec_for(args.model)
        height = width = spec.size
        vae_stride = (spec.temporal_stride, spec.spatial_stride, spec.spatial_stride)
        schedule = SCHEDULES[args.family] if args.family else spec.schedule
        window = spec.context_frames if args.window is None else window
    if args.steps is not None:
        schedule = dataclasses.replace(schedule, denoising_steps=args.steps)
    if args.sampler is not None:
        schedule = dataclasses.replace(schedule, sampler=args.sampler)
    if args.guidance is not None:
        schedule = dataclasses.replace(schedule, guidance_scale=args.guidance)
    return EngineConfig(
        model=model, schedule=schedule,
        cache=CacheConfig(window_frames=window, sink_frames=args.sink, retrieval_pages=args.retrieval,
                          quantization=args.kv_quant,
                          over_budget=args.over_budget, **(args.kv_budget or {})),
        height=args.height or height, width=args.width or width,
        frames_per_block=args.frames_per_block, independent_first_frame=args.independent_first_frame,
        attention=args.attention, dtype=args.dtype, device=args.device, compile=args.compile,
        vae_stride=vae_stride)


def _default_frames(config: EngineConfig, at_least: int) -> int:
    """The first pixel frame count from ``at_least`` that fills whole blocks of this model."""
    frames = at_least
    while True:
        try:
            _latent_frames(config, frames)
            return frames
        except ValueError:
            frames += 1


def _latent_frames(config: EngineConfig, frames: int) -> int:
    """Pixel frames (what the user typed) -> latent frames, or a ValueError said in pixel frames."""
    stride = config.vae_stride[0]
    if frames < 1 or (frames - 1) % stride:
        raise ValueError(f"frames: {frames} is not 1 + {stride}k (e.g. 1, {1 + stride}, {1 + 4 * stride})")
    latent_frames = 1 + (frames - 1) // stride
    try:
        config.block_sizes(latent_frames)
    except ValueError:
        first = 1 if config.independent_first_frame else 0
        valid = [1 + stride * (first + k * config.frames_per_block - 1) for k in range(1, latent_frames + 2)]
        near = [v for v in valid if v < frames][-2:] + [v for v in valid if v > frames][:2]
        raise ValueError(
            f"frames: {frames} pixel frames are {latent_frames} latent frames, which do not fill "
            f"whole blocks of {config.frames_per_block} latent frames; accepted values near it: "
            f"{', '.join(map(str, near))} (every {stride * config.frames_per_block} from {valid[0]})") from None
    return latent_frames


def _components(args: argparse.Namespace, config: EngineConfig) -> tuple:
    """(DiT, text encoder, decoder, notice or None) for a preset (random) or a checkpoint path."""
    if args.model in PRESETS:
        model = random_model(config.model, seed=0, dtype=config.torch_dtype, device=config.device)
        return (model, HashingTextEncoder(config.model.text_dim, config.model.text_len),
                LatentPreviewDecoder(config.model.in_dim, config.vae_stride, seed=args.seed), RANDOM_WEIGHTS_NOTICE)
    if is_world_model_dir(args.model):
        vae_dtype = resolve_dtype(args.vae_dtype or WorldSettings.vae_dtype, "vae_dtype")
        return (*load_world_components(Path(args.model), config.torch_dtype, vae_dtype, config.device), None)
    loaded = load_model(args.model, args.family, args.wan_dir, config.torch_dtype, config.device,
                        resolve_dtype(args.vae_dtype or "float32", "vae_dtype"))
    if loaded.vae is None:
        m = loaded.dit.config
        return (loaded.dit, HashingTextEncoder(m.text_dim, m.text_len),
                LatentPreviewDecoder(m.in_dim, config.vae_stride, seed=args.seed), PLACEHOLDER_NOTICE)
    return loaded.dit, loaded.text_encoder, VAEFrameDecoder(loaded.vae), None


def _prefix_frames(config: EngineConfig, total_latent: int, available_pixel: int) -> int:
    """Latent frames of the given video to keep: the most that fit whole blocks, leave room for
    at least one generated block, and exist in the file."""
    stride = config.vae_stride[0]
    for latent in range(total_latent - config.frames_per_block, 0, -1):
        if 1 + stride * (latent - 1) > available_pixel:
            continue
        try:
            config.block_sizes(latent)
        except ValueError:
            continue
        if (total_latent - latent) % config.frames_per_block == 0:
            return latent
    raise ValueError(f"video: {available_pixel} frame(s) given; no prefix length fits --frames with blocks of "
                     f"{config.frames_per_block} latent frames after it")


def _prefix_latents(args: argparse.Namespace, config: EngineConfig, decoder: object,
                    total_latent: int) -> torch.Tensor | None:
    """Encode --image / --video with the VAE: (C, P, h, w) normalised latents, or None."""
    if args.image is None and args.video is None:
        return None
    if not isinstance(decoder, VAEFrameDecoder):
        raise ValueError("image/video: encoding needs the Wan VAE; load a checkpoint with --wan-dir")
    stride = config.vae_stride[0]
    if args.image is not None:
        pixels = fit_frames(read_frames(args.image, max_frames=1), config.height, config.width)
    else:
        frames = read_frames(args.video)
        keep = _prefix_frames(config, total_latent, len(frames))
        log.info("video: continuing its first %d frames", 1 + stride * (keep - 1))
        pixels = fit_frames(frames[: 1 + stride * (keep - 1)], config.height, config.width)
    return decoder.vae.encode(pixels.to(decoder.vae.conv1.weight.dtype))[0].cpu()


def _actions(args: argparse.Namespace, config: EngineConfig, latent_frames: int) -> tuple[int, ...] | None:
    """--actions -> one id per pixel frame, padded with 'none' to what the video needs."""
    if args.actions is None:
        return None
    names = parse_actions(Path(args.actions).read_text() if Path(args.actions).is_file() else args.actions)
    needed = config.model.actions_per_frame * (latent_frames - 1)
    if len(names) < needed:
        log.info("actions: %d given, padding with 'none' to %d", len(names), needed)
    names = (names + ["none"] * needed)[:needed]
    return tuple(ACTIONS.index(n) for n in names)


NO_WORLD_WEIGHTS_NOTICE = (
    "worldcast: NOTE: the built-in world model's weights are missing from this install "
    "(worldcast/world/weights); falling back to the random 'tiny' preset. Reinstall worldcast, or train "
    "one with 'worldcast train vae' and 'worldcast train dit' and pass --model DIR.")


def _default_model() -> str:
    """The shipped built-in world model, or the random 'tiny' preset (said so) if its weights are missing."""
    try:
        return str(default_world_dir())
    except ValueError:
        print(NO_WORLD_WEIGHTS_NOTICE, file=sys.stderr)
        return "tiny"


def _check_world_prompt(prompt: str) -> None:
    """The world model knows its scenes by name; say so when a prompt names none."""
    try:
        Scene.from_prompt(prompt)
    except ValueError:
        print(f"worldcast: NOTE: the built-in world knows the scenes {', '.join(BIOMES)} at "
              f"{', '.join(TIMES)}; the prompt names none, so the scene will be a blend", file=sys.stderr)


def generate(args: argparse.Namespace) -> int:
    if args.window is not None and args.window < 0:
        raise ValueError(f"window: must be >= 0 (0 keeps every frame), got {args.window}")
    if args.model is None:
        args.model = _default_model()
    if is_world_model_dir(args.model):
        _check_world_prompt(args.prompt)
    base = _base_model_config(args.model)
    if args.image is not None:
        args.independent_first_frame = True  # the image is its own first block
    config = _engine_config(args, base)
    args.frames = args.frames or _default_frames(config, at_least=81)
    total_latent = _latent_frames(config, args.frames)  # fail fast, before loading weights
    model, text_encoder, decoder, notice = _components(args, config)
    if notice:
        print(notice, file=sys.stderr)
    config = dataclasses.replace(config, model=model.config)
    prefix = _prefix_latents(args, config, decoder, total_latent)
    generated = total_latent - (0 if prefix is None else prefix.shape[1])
    request = GenerationRequest(generated, prompt=args.prompt, seed=args.seed, prefix_latents=prefix,
                                negative_prompt=args.negative_prompt,
                                actions=_actions(args, config, total_latent))
    profiler = Profiler(config.device) if args.profile or args.trace or args.json else None
    engine = Engine(config, model, text_encoder, decoder, profiler=profiler)
    stage = profiler.stage if profiler is not None else _untimed
    start = time.perf_counter()
    bar = progress.bar(total=args.frames, unit="frame")
    writer = Mp4Writer(args.out, fps=args.fps)
    try:
        for block in engine.stream(request):
            with stage("output_encode", block.request_id, block.block_index):
                writer.write(block.frames)
            bar.update(len(block.frames))
        with stage("output_encode"):
            writer.close()  # flushes the encoder's look-ahead
    finally:
        writer.close()
        bar.close()
    elapsed = time.perf_counter() - start
    summary = {"out": str(args.out), "frames": writer.frames_written, "width": config.width,
               "height": config.height, "fps": args.fps, "seconds": elapsed,
               "frames_per_second": writer.frames_written / elapsed}
    if profiler is not None:
        peak = matmul_peak(config.torch_dtype, config.device) if args.profile else None
        summary["profile"] = profiler.summary(peak)
        if args.profile:
            profiler.write_json(args.profile, peak)
        if args.trace:
            profiler.write_chrome_trace(args.trace)
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        print(f"wrote {writer.frames_written} frames ({config.width}x{config.height}, {args.fps} fps) "
              f"to {args.out} in {elapsed:.2f} s ({writer.frames_written / elapsed:.1f} frames/s)",
              file=sys.stderr)
        if profiler is not None:
            print("\n".join(profile_lines(summary["profile"])), file=sys.stderr)
    return 0


def _base_model_config(model: str) -> ModelConfig:
    """The architecture named by --model, before any weights load (to validate sizes early)."""
    if is_world_model_dir(model):
        return read_config(Path(model), "dit", ModelConfig)
    return preset(model) if model in PRESETS else ModelConfig()


def bench(args: argparse.Namespace) -> int:
    """Default model: the shipped built-in world; if its weights are missing, random weights of its
    architecture in a temporary directory (speed does not depend on the weights' values)."""
    if args.model is None:
        try:
            args.model = str(default_world_dir())
        except ValueError:
            import tempfile

            from worldcast.world.train import save_random_world

            with tempfile.TemporaryDirectory(prefix="worldcast-bench-world-") as directory:
                args.model = str(save_random_world(Path(directory)))
                return _bench(args, notice=RANDOM_WORLD_BENCH_NOTICE)
    return _bench(args, notice=None)


RANDOM_WORLD_BENCH_NOTICE = (
    "worldcast: NOTE: the built-in world's weights are missing from this install; benchmarking RANDOM "
    "weights of its architecture (64x64, MiniLM text, VAE decode): the timings are those of the trained "
    "model, the video is noise.")


def _bench(args: argparse.Namespace, notice: str | None) -> int:
    from worldcast.profiling.bench import (
        BenchConfig,
        Components,
        Mp4Sink,
        run_bench,
        select_settings,
        table,
        write_plots,
    )

    if args.window is not None and args.window < 0:
        raise ValueError(f"window: must be >= 0 (0 keeps every frame), got {args.window}")
    if args.bench_window is not None and args.bench_window <= 0:
        raise ValueError(f"bench-window: must be positive, got {args.bench_window}")
    if args.bench_sink < 0:
        raise ValueError(f"bench-sink: must be >= 0, got {args.bench_sink}")
    config = _engine_config(args, _base_model_config(args.model))
    args.frames = args.frames or _default_frames(config, at_least=81)
    latent_frames = _latent_frames(config, args.frames)
    window = args.bench_window or config.cache.window_frames or 6
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    cfg = BenchConfig(tuple(select_settings(names, window, args.bench_sink)),
                      warmup=args.warmup, repeats=args.repeats, measure_peak=not args.no_peak)
    model, text_encoder, decoder, loaded_notice = _components(args, config)
    notice = notice or loaded_notice
    if notice and not args.quiet:
        print(notice, file=sys.stderr)
    config = dataclasses.replace(config, model=model.config)
    request = GenerationRequest(latent_frames, prompt=args.prompt, seed=args.seed)
    runs = len(cfg.settings) * (cfg.warmup + cfg.repeats)
    with progress.bar(total=runs, unit="run") as bar:
        def run_done(label: str) -> None:
            bar.set_description(label)
            bar.update(1)

        report = run_bench(cfg, config, Components(model, text_encoder, decoder), request,
                           sink_factory=None if args.no_output else (lambda: Mp4Sink(args.fps)), progress=run_done)
    report["model"] = {"name": args.model, "notice": notice}
    report["frames"] = args.frames
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))
    plots = write_plots(report, args.out)
    if args.json:
        print(json.dumps(report, indent=2))
    elif not args.quiet:
        print(table(report))
        print(f"wrote {args.out / 'bench.json'} and {', '.join(p.name for p in plots)}", file=sys.stderr)
    return 0


@contextmanager
def _untimed(*_: object) -> Iterator[None]:
    yield


def train(args: argparse.Namespace) -> int:
    from worldcast.world.model import load_world_vae
    from worldcast.world.train import DIT_RECIPE, VAE_RECIPE, prompt_embeddings, save_weights, train_dit, train_vae

    spec = WorldModelSpec()
    recipe = {"vae": VAE_RECIPE, "dit": DIT_RECIPE}[args.stage]
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                 "data_clips": args.data_clips, "compile": args.compile}
    cfg = dataclasses.replace(recipe, seed=args.seed, **{k: v for k, v in overrides.items() if v is not None})
    if args.stage == "vae":
        vae = train_vae(spec, cfg, args.out)
        path = save_weights(vae, vae.config, args.out, "vae", dtype=torch.float32)
    else:
        if not (args.out / "vae.safetensors").exists():
            raise ValueError(f"train dit: no trained VAE in {args.out}; "
                             f"run 'worldcast train vae --out {args.out}' first")
        vae = load_world_vae(args.out)
        dit = train_dit(spec, cfg, vae, prompt_embeddings(load_minilm(spec.dit.text_len)), args.out)
        path = save_weights(dit, dit.config, args.out, "dit")
    if args.json:
        print(json.dumps({"stage": args.stage, "saved": str(path), "config": dataclasses.asdict(cfg)}, indent=2))
    elif not args.quiet:
        print(f"saved {path}", file=sys.stderr)
    return 0


def evaluate_world(args: argparse.Namespace) -> int:
    from worldcast.world.report import EvalConfig, evaluate_world, summary_lines
    from worldcast.world.runtime import WorldModel

    cfg = EvalConfig(frames=args.frames, clips_per_scene=args.clips_per_scene, long_seconds=args.long_seconds,
                     seed=args.seed)
    settings = WorldSettings(sampler=args.sampler, guidance=args.guidance)
    if args.window is not None:
        settings = dataclasses.replace(settings, window=args.window or None)
    report = evaluate_world(WorldModel(args.model, settings), cfg, args.out)
    if args.json:
        print(json.dumps(report, indent=2))
    elif not args.quiet:
        print("\n".join(summary_lines(report)))
        print(f"wrote {args.out}/report.json, strip.png, clips.mp4, long_*.mp4", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    progress.silence(args.quiet or args.json)
    try:
        return {"train": train, "eval": evaluate_world, "generate": generate, "bench": bench}[args.command](args)
    except ValueError as err:  # includes CheckpointError
        parser.exit(2, f"worldcast: error: {err}\n")


if __name__ == "__main__":
    sys.exit(main())
