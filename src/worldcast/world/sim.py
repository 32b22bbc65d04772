"""The built-in procedural world: a top-down, endlessly scrolling landscape.

A world is a scene (biome x time of day, described in text) and a seed. Terrain is seeded value
noise evaluated at world coordinates, so the camera can go anywhere and come back to the same
place; small moving objects (birds, cars, boats, ...) drift over it; the camera moves each frame
by a discrete action. Everything is a pure function of (scene, seed, camera position, time), so
clips are reproducible and a model's rollout can be compared with the truth.

Coordinates: world units are pixels at ``size`` = 64; a frame of ``size`` pixels shows a
64x64-unit window, so larger renders show the same view in more detail. Camera motion is
``speed`` units per frame (``SPEED`` = 4 by default: 64 units, a frame's width, per second at 16 fps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

FPS = 16
VIEW = 64.0  # world units across a frame
SPEED = 4.0  # camera motion, world units per frame

ACTIONS = ("none", "up", "down", "left", "right")
ACTION_VECTORS = {"none": (0.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0), "left": (-1.0, 0.0),
                  "right": (1.0, 0.0)}

BIOMES = ("forest", "desert", "snow", "ocean", "city")
TIMES = ("day", "dusk", "night")

# Height -> colour ramps (low to high), RGB in [0, 1].
_PALETTES = {
    "forest": [(0.20, 0.35, 0.15), (0.28, 0.50, 0.20), (0.38, 0.60, 0.25), (0.45, 0.40, 0.25)],
    "desert": [(0.80, 0.65, 0.40), (0.88, 0.75, 0.48), (0.93, 0.83, 0.58), (0.75, 0.55, 0.35)],
    "snow": [(0.70, 0.75, 0.82), (0.85, 0.88, 0.93), (0.96, 0.97, 1.00), (0.55, 0.55, 0.60)],
    "ocean": [(0.05, 0.20, 0.45), (0.10, 0.35, 0.60), (0.85, 0.80, 0.55), (0.30, 0.55, 0.25)],
    "city": [(0.35, 0.35, 0.38), (0.45, 0.45, 0.48), (0.55, 0.52, 0.50), (0.65, 0.40, 0.35)],
}
_DETAIL_COLOURS = {  # scattered features: trees, cacti, rocks, foam, rooftops
    "forest": (0.08, 0.22, 0.08), "desert": (0.30, 0.50, 0.25), "snow": (0.35, 0.33, 0.35),
    "ocean": (0.90, 0.95, 1.00), "city": (0.75, 0.25, 0.20),
}
_OBJECT_COLOURS = {  # moving objects: birds, tumbleweeds, skiers, boats, cars
    "forest": (0.95, 0.90, 0.20), "desert": (0.45, 0.30, 0.15), "snow": (0.85, 0.10, 0.10),
    "ocean": (1.00, 1.00, 1.00), "city": (0.95, 0.85, 0.10),
}
_HEIGHT_BIAS = {"forest": 0.0, "desert": 0.0, "snow": 0.0, "ocean": -0.12, "city": 0.0}  # ocean: mostly water
_LIGHT = {"day": ((1.0, 1.0, 1.0), 0.0), "dusk": ((1.0, 0.70, 0.50), 0.05), "night": ((0.30, 0.35, 0.60), 0.0)}


@dataclass(frozen=True)
class Scene:
    biome: str
    time_of_day: str

    def __post_init__(self) -> None:
        if self.biome not in BIOMES:
            raise ValueError(f"biome: unknown {self.biome!r}; accepted: {', '.join(BIOMES)}")
        if self.time_of_day not in TIMES:
            raise ValueError(f"time_of_day: unknown {self.time_of_day!r}; accepted: {', '.join(TIMES)}")

    @property
    def prompt(self) -> str:
        return f"a top-down view of a {self.biome} at {self.time_of_day}"

    @property
    def index(self) -> int:
        return BIOMES.index(self.biome) * len(TIMES) + TIMES.index(self.time_of_day)

    @classmethod
    def all(cls) -> list[Scene]:
        return [cls(b, t) for b in BIOMES for t in TIMES]

    @classmethod
    def from_prompt(cls, prompt: str) -> Scene:
        """The scene a prompt names: the first biome and time-of-day words in it (default: day)."""
        words = re.findall(r"[a-z]+", prompt.lower())
        biome = next((w for w in words if w in BIOMES), None)
        if biome is None:
            raise ValueError(f"prompt: names no biome of the built-in world; use one of {', '.join(BIOMES)}")
        return cls(biome, next((w for w in words if w in TIMES), "day"))


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------

def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Integer lattice -> uniform [0, 1) floats, a fixed function of (ix, iy, seed)."""
    h = (ix.astype(np.int64) * 374761393 + iy.astype(np.int64) * 668265263 + seed * 2147483647) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).astype(np.float32) / float(1 << 24)


def value_noise(x: np.ndarray, y: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1]: lattice values every ``scale`` units, smoothstep-interpolated."""
    fx, fy = x / scale, y / scale
    ix, iy = np.floor(fx), np.floor(fy)
    tx, ty = fx - ix, fy - iy
    tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    v00, v10 = _hash(ix, iy, seed), _hash(ix + 1, iy, seed)
    v01, v11 = _hash(ix, iy + 1, seed), _hash(ix + 1, iy + 1, seed)
    return (v00 * (1 - tx) + v10 * tx) * (1 - ty) + (v01 * (1 - tx) + v11 * tx) * ty


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

class World:
    """Renders the view of a camera at any world position and time."""

    def __init__(self, scene: Scene, seed: int, size: int = 64, num_object_cells: int = 1) -> None:
        if size < 16 or size % 16:
            raise ValueError(f"size: must be a multiple of 16 and at least 16, got {size}")
        self.scene, self.seed, self.size = scene, seed, size
        self.palette = np.array(_PALETTES[scene.biome], dtype=np.float32)
        tint, glow = _LIGHT[scene.time_of_day]
        self.tint, self.glow = np.array(tint, dtype=np.float32), glow
        offsets = (np.arange(size, dtype=np.float32) + 0.5) * (VIEW / size)
        self._grid_x, self._grid_y = np.meshgrid(offsets, offsets)  # (size, size) world units

    def terrain(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Colour (..., 3) of the ground at world coordinates."""
        s = self.seed
        # Features are a few pixels wide or more at 64x64 (no single-pixel texture): a model
        # with a 4x-downsampling VAE can represent them, and they carry the motion signal.
        height = 0.6 * value_noise(x, y, 40.0, s) + 0.4 * value_noise(x, y, 16.0, s + 1)
        height = height + _HEIGHT_BIAS[self.scene.biome]
        ramp = np.clip(height * 1.6 - 0.3, 0, 0.999) * (len(self.palette) - 1)
        lo = np.floor(ramp).astype(np.int64)
        frac = (ramp - lo)[..., None]
        colour = self.palette[lo] * (1 - frac) + self.palette[lo + 1] * frac
        if self.scene.biome == "city":  # a street grid every 24 units
            street = (np.mod(x, 24.0) < 4.0) | (np.mod(y, 24.0) < 4.0)
            colour = np.where(street[..., None], np.float32(0.18), colour)
        # Scattered details: one round feature in some 12x12-unit cells.
        cell = 12.0
        cx, cy = np.floor(x / cell), np.floor(y / cell)
        present = _hash(cx, cy, s + 3) < 0.4
        px, py = cx * cell + 3.5 + 5.0 * _hash(cx, cy, s + 4), cy * cell + 3.5 + 5.0 * _hash(cx, cy, s + 5)
        inside = present & ((x - px) ** 2 + (y - py) ** 2 < 3.0**2)
        return np.where(inside[..., None], np.array(_DETAIL_COLOURS[self.scene.biome], np.float32), colour)

    def objects(self, x: np.ndarray, y: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(mask, colour) of the moving objects: one per 32-unit cell, drifting at its own
        velocity (wrapping inside its cell), so some are always in view."""
        cell = 32.0
        cx, cy = np.floor(x / cell), np.floor(y / cell)
        s = self.seed + 10
        vx, vy = (_hash(cx, cy, s) - 0.5) * 1.6, (_hash(cx, cy, s + 1) - 0.5) * 1.6  # units per frame
        ox = np.mod(_hash(cx, cy, s + 2) * cell + vx * t, cell) + cx * cell
        oy = np.mod(_hash(cx, cy, s + 3) * cell + vy * t, cell) + cy * cell
        mask = (x - ox) ** 2 + (y - oy) ** 2 < 3.5**2
        return mask, np.array(_OBJECT_COLOURS[self.scene.biome], np.float32)

    def render(self, camera: tuple[float, float], t: float) -> np.ndarray:
        """The (size, size, 3) uint8 view whose top-left corner is at ``camera`` at frame ``t``."""
        x, y = self._grid_x + camera[0], self._grid_y + camera[1]
        colour = self.terrain(x, y)
        mask, object_colour = self.objects(x, y, t)
        colour = np.where(mask[..., None], object_colour, colour)
        colour = colour * self.tint + self.glow
        return (np.clip(colour, 0, 1) * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Actions and clips
# ---------------------------------------------------------------------------------------------

def parse_actions(text: str) -> list[str]:
    """``"right*32,up*16,none"`` -> a per-frame action list."""
    actions: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = part.partition("*")
        name = name.strip().lower()
        if name not in ACTIONS:
            raise ValueError(f"actions: unknown action {name!r} in {part!r}; accepted: {', '.join(ACTIONS)}")
        try:
            n = int(count) if count else 1
        except ValueError:
            raise ValueError(f"actions: {part!r}: the repeat count must be a whole number") from None
        if n <= 0:
            raise ValueError(f"actions: {part!r}: the repeat count must be positive")
        actions.extend([name] * n)
    if not actions:
        raise ValueError("actions: empty")
    return actions


def camera_path(actions: list[str], start: tuple[float, float] = (0.0, 0.0), speed: float = SPEED) -> np.ndarray:
    """(T, 2) camera positions: frame t shows the world after actions[0..t-1] (frame 0 = start)."""
    steps = np.array([ACTION_VECTORS[a] for a in actions[:-1]], dtype=np.float64).reshape(-1, 2) * speed
    return np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)]) + np.asarray(start)


def rollout(world: World, actions: list[str], start: tuple[float, float] = (0.0, 0.0), t0: int = 0,
            speed: float = SPEED) -> np.ndarray:
    """Frames (T, size, size, 3) uint8 of a camera driven by ``actions`` (one per frame)."""
    path = camera_path(actions, start, speed)
    return np.stack([world.render(tuple(p), t0 + i) for i, p in enumerate(path)])


def random_actions(rng: np.random.Generator, num_frames: int, mean_hold: float = 8.0) -> list[str]:
    """Piecewise-constant random actions, each held for a geometric number of frames."""
    actions: list[str] = []
    while len(actions) < num_frames:
        hold = int(rng.geometric(1 / mean_hold))
        actions.extend([ACTIONS[rng.integers(len(ACTIONS))]] * hold)
    return actions[:num_frames]


@dataclass
class Clip:
    frames: np.ndarray  # (T, size, size, 3) uint8
    actions: list[str]  # (T,)
    scene: Scene

    @property
    def prompt(self) -> str:
        return self.scene.prompt


def sample_clip(seed: int, num_frames: int = 33, size: int = 64, speed: float = SPEED) -> Clip:
    """A random clip: scene, world seed, start position, start time and actions from ``seed``
    (any length; the model's VAE takes 1 + (temporal stride) k frames)."""
    if num_frames < 1:
        raise ValueError(f"num_frames: must be positive, got {num_frames}")
    rng = np.random.default_rng(seed)
    scene = Scene.all()[rng.integers(len(Scene.all()))]
    world = World(scene, seed=int(rng.integers(1 << 30)), size=size)
    start = tuple(rng.uniform(-5000, 5000, size=2))
    actions = random_actions(rng, num_frames)
    return Clip(rollout(world, actions, start, t0=int(rng.integers(10_000)), speed=speed), actions, scene)
