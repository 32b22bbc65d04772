"""Command line: ``worldcast generate``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from worldcast import __version__
from worldcast.config import DTYPES, CacheConfig, EngineConfig
from worldcast.engine.engine import Engine
from worldcast.engine.request import GenerationRequest
from worldcast.models.placeholder import HashingTextEncoder, LatentPreviewDecoder
from worldcast.models.registry import PRESETS, SCHEDULES, preset, random_model
from worldcast.streaming.mp4 import Mp4Writer

log = logging.getLogger("worldcast")

RANDOM_WEIGHTS_NOTICE = (
    "worldcast: NOTE: running with RANDOM weights. The DiT, the text encoder (word hashing) and "
    "the decoder (a fixed random latent-to-RGB projection) are untrained placeholders, so the "
    "video is noise-like. It exercises the real block loop, schedule and KV cache end to end."
)


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
    gen.add_argument("--frames", type=int, default=33,
                     help="pixel frames, 1 + 4k (33 -> 9 latent frames = 3 blocks of 3)")
    gen.add_argument("--out", type=Path, default=Path("out/video.mp4"), help="output MP4 path")
    gen.add_argument("--model", default="tiny", choices=sorted(PRESETS),
                     help="architecture preset (random weights until checkpoint loading lands)")
    gen.add_argument("--family", default="self_forcing", choices=sorted(SCHEDULES),
                     help="sampling schedule of a model family")
    gen.add_argument("--steps", type=_number_list, default=None,
                     help="override the denoising steps, e.g. 1000,750,500,250")
    gen.add_argument("--height", type=int, default=None, help="pixels (default: per model)")
    gen.add_argument("--width", type=int, default=None, help="pixels (default: per model)")
    gen.add_argument("--frames-per-block", type=int, default=3, help="latent frames per block")
    gen.add_argument("--independent-first-frame", action="store_true",
                     help="generate the first latent frame as its own block")
    gen.add_argument("--attention", default="cache", choices=["cache", "recompute"],
                     help="paged KV cache, or the no-cache baseline that recomputes the past")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--compile", action="store_true",
                     help="torch.compile the DiT blocks (slow first block, faster after)")
    gen.add_argument("--fps", type=int, default=16)
    gen.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser


DEFAULT_SIZE = {"tiny": (128, 128)}


def _engine_config(args: argparse.Namespace) -> EngineConfig:
    model = preset(args.model)
    height, width = DEFAULT_SIZE.get(args.model, (480, 832))
    schedule = SCHEDULES[args.family]
    if args.steps is not None:
        schedule = dataclasses.replace(schedule, denoising_steps=args.steps)
    return EngineConfig(
        model=model, schedule=schedule, cache=CacheConfig(),
        height=args.height or height, width=args.width or width,
        frames_per_block=args.frames_per_block, independent_first_frame=args.independent_first_frame,
        attention=args.attention, dtype=args.dtype, device=args.device, compile=args.compile)


def _check_block_layout(config: EngineConfig, decoder: LatentPreviewDecoder, frames: int,
                        latent_frames: int) -> None:
    """Say in pixel frames (what the user typed) when the video does not fill whole blocks."""
    try:
        config.block_sizes(latent_frames)
    except ValueError:
        first = 1 if config.independent_first_frame else 0
        valid = [decoder.pixel_frames(first + k * config.frames_per_block) for k in range(1, 5)]
        raise ValueError(
            f"frames: {frames} pixel frames are {latent_frames} latent frames, which do not fill "
            f"whole blocks of {config.frames_per_block} latent frames; accepted values are "
            f"{', '.join(map(str, valid))}, ...") from None


def generate(args: argparse.Namespace) -> int:
    config = _engine_config(args)
    print(RANDOM_WEIGHTS_NOTICE, file=sys.stderr)
    decoder = LatentPreviewDecoder(config.model.in_dim, config.vae_stride, seed=args.seed)
    latent_frames = decoder.latent_frames(args.frames)
    _check_block_layout(config, decoder, args.frames, latent_frames)
    request = GenerationRequest(latent_frames, prompt=args.prompt, seed=args.seed)
    model = random_model(config.model, seed=0, dtype=config.torch_dtype, device=config.device)
    engine = Engine(config, model, HashingTextEncoder(config.model.text_dim, config.model.text_len), decoder)
    start = time.perf_counter()
    bar = tqdm(total=args.frames, unit="frame", disable=args.quiet or not sys.stderr.isatty())
    with Mp4Writer(args.out, fps=args.fps) as writer:
        for block in engine.stream(request):
            writer.write(block.frames)
            bar.update(len(block.frames))
    bar.close()
    elapsed = time.perf_counter() - start
    if not args.quiet:
        print(f"wrote {writer.frames_written} frames ({config.width}x{config.height}, {args.fps} fps) "
              f"to {args.out} in {elapsed:.2f} s ({writer.frames_written / elapsed:.1f} frames/s)",
              file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return generate(args)
    except ValueError as err:
        parser.exit(2, f"worldcast: error: {err}\n")


if __name__ == "__main__":
    sys.exit(main())
