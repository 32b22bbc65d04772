"""Stand-ins that make the pipeline run end to end before real weights are loaded.

Neither is a learned model: the text encoder hashes words to fixed random vectors and the
decoder projects latent channels to RGB with a fixed random matrix. Output made with them is
noise-like by design; the CLI says so.
"""

from __future__ import annotations

import re
import zlib

import torch


class HashingTextEncoder:
    """Maps each word to a random vector seeded by its CRC32: same words, same embedding."""

    def __init__(self, text_dim: int, max_tokens: int) -> None:
        self.text_dim, self.max_tokens = text_dim, max_tokens

    def encode(self, prompt: str) -> torch.Tensor:
        """prompt -> (L, text_dim) float32, L = min(words, max_tokens)."""
        words = re.findall(r"\w+", prompt.lower())[: self.max_tokens] or [""]
        rows = []
        for word in words:
            gen = torch.Generator().manual_seed(zlib.crc32(word.encode()))
            rows.append(torch.randn(self.text_dim, generator=gen))
        return torch.stack(rows)


class LatentPreviewDecoder:
    """Latents -> uint8 RGB frames with the frame counts of a causal video VAE.

    The first latent frame gives one pixel frame and every later one ``temporal_stride``
    frames (1 + 4k pixel frames for 1 + k latent frames, as Wan's VAE), so streaming code
    written against it is right for the real VAE too.
    """

    def __init__(self, latent_channels: int, stride: tuple[int, int, int], seed: int = 0) -> None:
        self.temporal_stride, self.height_stride, self.width_stride = stride
        gen = torch.Generator().manual_seed(seed)
        self.projection = torch.randn(3, latent_channels, generator=gen) / latent_channels**0.5

    def new_state(self) -> dict[str, bool]:
        return {"started": False}

    @staticmethod
    def export_state(state: dict[str, bool]) -> dict[str, bool]:
        return dict(state)

    @staticmethod
    def import_state(data: dict[str, bool]) -> dict[str, bool]:
        return dict(data)

    def decode_block(self, latents: torch.Tensor, state: dict[str, bool]) -> torch.Tensor:
        """(C, f, h, w) latents -> (n, H, W, 3) uint8 frames; ``state`` tracks the first frame."""
        rgb = torch.einsum("rc,cfhw->fhwr", self.projection, latents.float().cpu())
        repeats = torch.full((rgb.shape[0],), self.temporal_stride)
        if not state["started"]:
            repeats[0] = 1
            state["started"] = True
        rgb = rgb.repeat_interleave(repeats, dim=0)
        rgb = rgb.repeat_interleave(self.height_stride, 1).repeat_interleave(self.width_stride, 2)
        return ((torch.tanh(rgb) + 1) * 127.5).round().to(torch.uint8)
