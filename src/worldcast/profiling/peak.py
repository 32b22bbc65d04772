"""The machine's matmul peak, measured (not looked up) so figures are relative to this run."""

from __future__ import annotations

import time

import torch

DEFAULT_SHAPES = ((2048, 2048, 2048), (4096, 4096, 4096), (4096, 1536, 8960), (4096, 8960, 1536))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(m: int, k: int, n: int, dtype: torch.dtype, device: torch.device | str,
                  repeats: int = 5) -> float:
    """Best-of-``repeats`` TFLOP/s of an (m, k) @ (k, n) matmul after one warm-up."""
    device = torch.device(device)
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e12


def matmul_peak(dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu",
                shapes: tuple[tuple[int, int, int], ...] = DEFAULT_SHAPES, repeats: int = 5) -> float:
    """Highest TFLOP/s over a few large GEMMs: what dense matmuls reach on this machine now."""
    return max(matmul_tflops(m, k, n, dtype, device, repeats) for m, k, n in shapes)
