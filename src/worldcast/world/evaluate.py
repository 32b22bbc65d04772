"""Measuring generated worlds against the simulator: camera motion from the pixels.

Phase correlation finds the translation between consecutive frames (the ground moves opposite
to the camera); the dominant axis and sign name the action. The same estimator run on the
simulator's own frames gives the ceiling a model can reach.
"""

from __future__ import annotations

import numpy as np

from worldcast.world.sim import ACTION_VECTORS


def _gray(frame: np.ndarray) -> np.ndarray:
    g = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return g - g.mean()


def estimate_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Translation (dx, dy) in pixels that maps frame ``a`` onto frame ``b`` (phase correlation,
    Hann-windowed, with a parabolic sub-pixel peak)."""
    h, w = a.shape[:2]
    window = np.outer(np.hanning(h), np.hanning(w))
    fa, fb = np.fft.fft2(_gray(a) * window), np.fft.fft2(_gray(b) * window)
    cross = fb * np.conj(fa)
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    py, px = np.unravel_index(np.argmax(corr), corr.shape)

    def refine(values: np.ndarray, i: int) -> float:
        left, mid, right = values[(i - 1) % len(values)], values[i], values[(i + 1) % len(values)]
        denom = left - 2 * mid + right
        return i + (0.5 * (left - right) / denom if denom != 0 else 0.0)

    dx, dy = refine(corr[py], px), refine(corr[:, px], py)
    dx = dx - w if dx > w / 2 else dx
    dy = dy - h if dy > h / 2 else dy
    return float(dx), float(dy)


def estimate_actions(frames: np.ndarray, speed_pixels: float, threshold: float = 0.5) -> list[str]:
    """The action behind each transition of (T, H, W, 3) frames: ``none`` when the ground moved
    less than ``threshold`` x the commanded speed, else the direction the camera went."""
    actions = []
    for a, b in zip(frames[:-1], frames[1:]):
        dx, dy = estimate_shift(a, b)
        camera = (-dx, -dy)  # the ground moves against the camera
        if max(abs(camera[0]), abs(camera[1])) < threshold * speed_pixels:
            actions.append("none")
        elif abs(camera[0]) >= abs(camera[1]):
            actions.append("right" if camera[0] > 0 else "left")
        else:
            actions.append("down" if camera[1] > 0 else "up")
    return actions


def action_accuracy(frames: np.ndarray, actions: list[str], speed_pixels: float) -> float:
    """Fraction of transitions t -> t+1 whose estimated action is the commanded ``actions[t]``."""
    estimated = estimate_actions(frames, speed_pixels)
    commanded = actions[: len(estimated)]
    unknown = sorted(set(commanded) - set(ACTION_VECTORS))
    if unknown or len(commanded) < len(estimated):
        raise ValueError(f"actions: need {len(estimated)} known actions (one per transition), "
                         f"got {len(commanded)}{f', unknown {unknown}' if unknown else ''}")
    return float(np.mean([e == c for e, c in zip(estimated, commanded)]))
