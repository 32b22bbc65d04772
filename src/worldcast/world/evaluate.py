"""Measuring generated worlds against the simulator: camera motion from the pixels.

Cross-correlation finds the translation between consecutive frames (the ground moves opposite
to the camera); the dominant axis and sign name the action. The same estimator run on the
simulator's own frames gives the ceiling a model can reach.

Plain (not phase-normalised) correlation on purpose: phase correlation weights every frequency
alike, so a decoder's faint fixed-pattern texture, which stays put while the scene moves, wins
the vote and reads as "no motion". On a trained VAE's reconstructions phase correlation read the
motion of frames four apart right 74% of the time and plain correlation 90%; on the simulator's
own frames both read 100%.
"""

from __future__ import annotations

import numpy as np

from worldcast.world.sim import ACTION_VECTORS


def _gray(frame: np.ndarray) -> np.ndarray:
    g = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return g - g.mean()


def _tukey(n: int, alpha: float = 0.3) -> np.ndarray:
    """Flat in the middle, cosine-tapered over ``alpha / 2`` of each end. A Hann window (alpha 1)
    leaves too little of a 64-pixel frame to match shifts of several pixels."""
    x = (np.arange(n) + 0.5) / n
    edge = np.minimum(x, 1 - x) / (alpha / 2)
    return np.where(edge >= 1, 1.0, 0.5 * (1 - np.cos(np.pi * np.clip(edge, 0, 1))))


def estimate_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Translation (dx, dy) in pixels that maps frame ``a`` onto frame ``b`` (cross-correlation of
    the Tukey-windowed grey frames, with a parabolic sub-pixel peak)."""
    h, w = a.shape[:2]
    window = np.outer(_tukey(h), _tukey(w))
    fa, fb = np.fft.fft2(_gray(a) * window), np.fft.fft2(_gray(b) * window)
    corr = np.fft.ifft2(fb * np.conj(fa)).real
    py, px = np.unravel_index(np.argmax(corr), corr.shape)

    def refine(values: np.ndarray, i: int) -> float:
        left, mid, right = values[(i - 1) % len(values)], values[i], values[(i + 1) % len(values)]
        denom = left - 2 * mid + right
        return i + (0.5 * (left - right) / denom if denom != 0 else 0.0)

    dx, dy = refine(corr[py], px), refine(corr[:, px], py)
    dx = dx - w if dx > w / 2 else dx
    dy = dy - h if dy > h / 2 else dy
    return float(dx), float(dy)


def _classify(dx: float, dy: float, min_shift: float) -> str:
    camera = (-dx, -dy)  # the ground moves against the camera
    if max(abs(camera[0]), abs(camera[1])) < min_shift:
        return "none"
    if abs(camera[0]) >= abs(camera[1]):
        return "right" if camera[0] > 0 else "left"
    return "down" if camera[1] > 0 else "up"


def estimate_actions(frames: np.ndarray, speed_pixels: float, threshold: float = 0.5) -> list[str]:
    """The action behind each transition of (T, H, W, 3) frames: ``none`` when the ground moved
    less than ``threshold`` x the commanded speed, else the direction the camera went."""
    return [_classify(*estimate_shift(a, b), threshold * speed_pixels) for a, b in zip(frames[:-1], frames[1:])]


def _check_actions(actions: list[str], needed: int) -> None:
    unknown = sorted(set(actions) - set(ACTION_VECTORS))
    if unknown or len(actions) < needed:
        raise ValueError(f"actions: need {needed} known actions (one per transition), "
                         f"got {len(actions)}{f', unknown {unknown}' if unknown else ''}")


def action_accuracy(frames: np.ndarray, actions: list[str], speed_pixels: float) -> float:
    """Fraction of transitions t -> t+1 whose estimated action is the commanded ``actions[t]``."""
    _check_actions(actions, len(frames) - 1)
    estimated = estimate_actions(frames, speed_pixels)
    return float(np.mean([e == c for e, c in zip(estimated, actions)]))


def strided_action_accuracy(frames: np.ndarray, actions: list[str], speed_pixels: float, stride: int,
                            threshold: float = 0.5) -> float:
    """Like ``action_accuracy`` but over frames ``stride`` apart (t -> t + stride, t a multiple of
    stride), counting only spans with one commanded action throughout; nan when there is none.
    With ``stride`` = the VAE's temporal stride this reads motion at the model's own time step,
    blind to how the decoder spreads it over the frames in between."""
    _check_actions(actions, len(frames) - 1)
    hits = []
    for t in range(0, len(frames) - stride, stride):
        span = set(actions[t:t + stride])
        if len(span) == 1:
            estimated = _classify(*estimate_shift(frames[t], frames[t + stride]), threshold * speed_pixels * stride)
            hits.append(estimated == span.pop())
    return float(np.mean(hits)) if hits else float("nan")
