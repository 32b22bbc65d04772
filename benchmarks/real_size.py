"""One 3-latent-frame block at 480x832 through a Wan2.1-1.3B-sized DiT and the full-size Wan VAE.

Random weights (no downloads): the point is time per stage and memory at the real size, on
this CPU, the DiT in bf16, the VAE in float32 as Wan runs it (or --vae-dtype bfloat16). Prompt embeddings are random
(tokens x 4096) in place of umT5-XXL, whose 5.7B-parameter encoder is not part of the block loop.

    .venv/bin/python benchmarks/real_size.py            # ~5-10 minutes on 2 cores
    .venv/bin/python benchmarks/real_size.py --height 240 --width 416 --compile
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from contextlib import contextmanager

import torch

from worldcast import Engine, EngineConfig, GenerationRequest
from worldcast.models.registry import preset, random_model
from worldcast.models.wan.vae import VAEFrameDecoder, WanVAE


class RSSSampler:
    """Peak resident memory per labelled stage, sampled from /proc every 20 ms."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self.label = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peaks[self.label] = max(self.peaks.get(self.label, 0), self.rss())

    @contextmanager
    def stage(self, label: str):
        self.label = label
        self.peaks[label] = self.rss()
        yield
        self.peaks[label] = max(self.peaks[label], self.rss())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=832)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--vae-dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--json")
    args = p.parse_args()
    sampler = RSSSampler()
    times: dict[str, float] = {}

    with sampler.stage("build DiT + VAE"):
        start = time.perf_counter()
        model_config = preset("wan2.1-t2v-1.3b")
        dit = random_model(model_config, dtype=torch.bfloat16)
        vae = WanVAE().eval().to(getattr(torch, args.vae_dtype)).to_channels_last()
        times["build DiT + VAE"] = time.perf_counter() - start
    config = EngineConfig(model=model_config, height=args.height, width=args.width, dtype="bfloat16",
                          compile=args.compile)
    engine = Engine(config, dit, decoder=VAEFrameDecoder(vae))
    request = GenerationRequest(3, prompt_embeds=torch.randn(64, model_config.text_dim), seed=0)
    with sampler.stage("prompt (text MLP + cross-attn K/V)"):
        start = time.perf_counter()
        engine.add_request(request)
        times["prompt (text MLP + cross-attn K/V)"] = time.perf_counter() - start
    with sampler.stage("block (denoise + commit + decode)"):
        start = time.perf_counter()
        (block,) = engine.step()
        total = time.perf_counter() - start
    sampler.stop()
    times.update(block.timings)
    print(f"Wan2.1-1.3B-sized DiT (bf16) + Wan VAE ({args.vae_dtype}), {args.width}x{args.height}, "
          f"one block of 3 latent frames -> {len(block.frames)} pixel frames, {config.tokens_per_frame} tokens/frame, "
          f"threads={torch.get_num_threads()}, compile={args.compile}")
    for stage, seconds in times.items():
        print(f"  {stage:<40} {seconds:8.2f} s")
    print(f"  {'block total (wall)':<40} {total:8.2f} s")
    print("peak resident memory by stage:")
    for stage, peak in sampler.peaks.items():
        if stage != "start":
            print(f"  {stage:<40} {peak / 2**30:8.2f} GiB")
    kv = engine.spec.bytes_per_page * engine.pool.num_pages
    page_mib = engine.spec.bytes_per_page / 2**20
    print(f"KV cache: {engine.pool.num_pages} pages x {page_mib:.1f} MiB = {kv / 2**30:.2f} GiB")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "seconds": times, "block_total_s": total,
                       "peak_rss_bytes": sampler.peaks, "kv_bytes": kv}, fh, indent=2)


if __name__ == "__main__":
    main()
