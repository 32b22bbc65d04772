"""``worldcast eval world``: the built-in world model measured against the simulator on held-out
seeds — action following, prompt adherence, long-rollout drift — plus a PNG strip and MP4s to
look at.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from worldcast import progress
from worldcast.world.classifier import SceneClassifier, simulator_frames
from worldcast.world.evaluate import action_accuracy, estimate_actions, strided_action_accuracy
from worldcast.world.quality import Bounds, chunks, rollout_stats
from worldcast.world.runtime import WorldModel
from worldcast.world.sim import ACTIONS, FPS, SPEED, Scene, World, random_actions, rollout
from worldcast.world.train import HELD_OUT_SEEDS

log = logging.getLogger(__name__)

EVAL_SEEDS = HELD_OUT_SEEDS + 100_000  # apart from the VAE latent-statistics clips


@dataclass(frozen=True)
class EvalConfig:
    frames: int | None = None  # per action/prompt clip; None: about 5 s (the first whole-block count from 80)
    clips_per_scene: int = 2
    long_seconds: float = 60.0
    long_scenes: tuple[str, ...] = ("a top-down view of a forest at day", "a top-down view of a city at dusk",
                                    "a top-down view of a snow at night")
    chunk_seconds: float = 10.0
    reference_seeds: int = 3  # simulator worlds that set the long-rollout bounds
    classifier_per_scene: int = 60  # simulator frames per scene the classifier trains on
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clips_per_scene < 1:
            raise ValueError(f"clips_per_scene: must be >= 1, got {self.clips_per_scene}")
        if self.long_seconds < 0 or self.chunk_seconds <= 0:
            raise ValueError("long_seconds / chunk_seconds: must be >= 0 / > 0")
        for prompt in self.long_scenes:
            Scene.from_prompt(prompt)


def long_frames(model: WorldModel, seconds: float) -> int:
    """The smallest valid pixel-frame count covering ``seconds`` at 16 fps."""
    step = model.spec.temporal_stride * model.spec.frames_per_block
    first = step - model.spec.temporal_stride + 1
    return first + step * max(0, int(np.ceil((seconds * FPS - first) / step)))


def _clip_plan(cfg: EvalConfig, frames: int) -> list[tuple[Scene, list[str], int]]:
    """(scene, actions, seed) per evaluation clip, fixed by the held-out seed range."""
    plan = []
    for i in range(cfg.clips_per_scene * len(Scene.all())):
        rng = np.random.default_rng(EVAL_SEEDS + cfg.seed * 1_000 + i)
        plan.append((Scene.all()[i % len(Scene.all())], random_actions(rng, frames - 1), i))
    return plan


def evaluate_clips(model: WorldModel, cfg: EvalConfig, classifier: SceneClassifier) -> tuple[dict, list]:
    """Action following and prompt adherence over ``clips_per_scene`` clips of every scene."""
    rows, samples = [], []
    length = cfg.frames or long_frames(model, 5.0)
    for scene, actions, seed in progress.bar(_clip_plan(cfg, length), desc="eval clips"):
        frames = model.generate(scene.prompt, actions, length, seed=seed)
        truth = rollout(World(scene, seed=EVAL_SEEDS + seed), actions + ["none"])
        stride = model.spec.temporal_stride
        rows.append({"scene": scene.prompt, "seed": seed,
                     "action_accuracy": action_accuracy(frames, actions, SPEED),
                     "simulator_action_accuracy": action_accuracy(truth, actions, SPEED),
                     "latent_step_action_accuracy": strided_action_accuracy(frames, actions, SPEED, stride),
                     "scene_accuracy": classifier.accuracy(frames, scene)})
        samples.append((scene, frames, truth, actions))
    per_action = _per_action_accuracy(samples)
    summary = {
        "clips": len(rows), "frames_per_clip": length,
        "action_accuracy": float(np.mean([r["action_accuracy"] for r in rows])),
        "simulator_action_accuracy": float(np.mean([r["simulator_action_accuracy"] for r in rows])),
        "latent_step_action_accuracy": float(np.nanmean([r["latent_step_action_accuracy"] for r in rows])),
        "action_accuracy_by_action": per_action,
        "scene_accuracy": float(np.mean([r["scene_accuracy"] for r in rows])),
        "clip_rows": rows,
    }
    return summary, samples


def _per_action_accuracy(samples: list) -> dict[str, float]:
    hits: dict[str, list[bool]] = {a: [] for a in ACTIONS}
    for _, frames, _, actions in samples:
        for estimated, commanded in zip(estimate_actions(frames, SPEED), actions):
            hits[commanded].append(estimated == commanded)
    return {a: float(np.mean(h)) for a, h in hits.items() if h}


def evaluate_long(model: WorldModel, cfg: EvalConfig, classifier: SceneClassifier, prompt: str,
                  seed: int) -> tuple[dict, np.ndarray]:
    """One long rollout: per-chunk statistics, whether each is inside the simulator's bounds,
    drift from the first chunk, and per-chunk action and scene accuracy."""
    scene = Scene.from_prompt(prompt)
    n = long_frames(model, cfg.long_seconds)
    actions = random_actions(np.random.default_rng(EVAL_SEEDS + 500_000 + seed), n - 1)
    frames = model.generate(prompt, actions, n, seed=seed)
    reference = [s for k in range(cfg.reference_seeds)
                 for s in rollout_stats(rollout(World(scene, seed=EVAL_SEEDS + 600_000 + k), actions + ["none"]),
                                        actions, cfg.chunk_seconds)]
    bounds = Bounds.from_reference(reference)
    stats = rollout_stats(frames, actions, cfg.chunk_seconds)
    rows = []
    for k, (window, s) in enumerate(zip(chunks(n, cfg.chunk_seconds), stats)):
        inside = bounds.check(s)
        rows.append({"chunk": k, "seconds": [window.start / FPS, window.stop / FPS], **s.as_dict(),
                     "in_bounds": inside, "all_in_bounds": all(inside.values()),
                     "drift": {name: v - getattr(stats[0], name) for name, v in s.as_dict().items()},
                     "action_accuracy": action_accuracy(frames[window], actions[window.start:window.stop - 1], SPEED),
                     "scene_accuracy": classifier.accuracy(frames[window], scene)})
    return {"prompt": prompt, "frames": n, "seconds": n / FPS, "bounds": asdict(bounds), "chunks": rows}, frames


def evaluate_world(model: WorldModel, cfg: EvalConfig, out_dir: Path | None = None) -> dict:
    """The full report; with ``out_dir``, also report.json, strip.png, clips.mp4 and long.mp4."""
    classifier = SceneClassifier.fit(per_scene=cfg.classifier_per_scene, seed=cfg.seed)
    check_frames, check_labels = simulator_frames(10, EVAL_SEEDS + 900_000 + cfg.seed)
    classifier_check = float(np.mean([p.index == y for p, y in zip(classifier.predict(check_frames), check_labels)]))
    clips, samples = evaluate_clips(model, cfg, classifier)
    report = {"config": asdict(cfg), "model": str(model.directory), "window": model.settings.window,
              "classifier_accuracy_on_simulator": classifier_check, "clips": clips, "long": []}
    long_videos = []
    if cfg.long_seconds > 0:
        for i, prompt in enumerate(progress.bar(cfg.long_scenes, desc="eval long")):
            result, frames = evaluate_long(model, cfg, classifier, prompt, seed=1_000 + i)
            report["long"].append(result)
            long_videos.append(frames)
    if out_dir is not None:
        write_outputs(out_dir, report, samples, long_videos)
    return report


def write_outputs(out_dir: Path, report: dict, samples: list, long_videos: list[np.ndarray]) -> None:
    from worldcast.world.media import write_mp4, write_strip

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    shown = samples[: len(Scene.all())]  # one clip per scene
    write_strip(out_dir / "strip.png", [(s.prompt, f, t) for s, f, t, _ in shown[::3]], step=8)
    write_mp4(out_dir / "clips.mp4", [f for _, f, _, _ in shown[:5]])
    for i, frames in enumerate(long_videos):
        write_mp4(out_dir / f"long_{i}.mp4", [frames])


def summary_lines(report: dict) -> list[str]:
    """The report as a few human-readable lines."""
    clips = report["clips"]
    lines = [
        f"action following: {clips['action_accuracy']:.1%} of transitions "
        f"(simulator ceiling {clips['simulator_action_accuracy']:.1%}; target >= 80%)",
        "  by action: " + ", ".join(f"{a} {v:.0%}" for a, v in clips["action_accuracy_by_action"].items()),
        f"  over latent-frame steps (frames t -> t + 4, one action throughout): "
        f"{clips['latent_step_action_accuracy']:.1%}",
        f"prompt adherence: {clips['scene_accuracy']:.1%} of frames labelled with the prompted scene "
        f"(classifier on simulator frames: {report['classifier_accuracy_on_simulator']:.1%}; target >= 80%)",
    ]
    for run in report["long"]:
        lines.append(f"long rollout '{run['prompt']}', {run['seconds']:.1f} s:")
        lines.append("  chunk  seconds     sharp  mean RGB         std   speed  in-bounds  actions  scene")
        for c in run["chunks"]:
            lines.append(f"  {c['chunk']:>5}  {c['seconds'][0]:>4.0f}-{c['seconds'][1]:<4.0f}  {c['sharpness']:>6.2f}  "
                         f"{c['mean_r']:>4.0f} {c['mean_g']:>4.0f} {c['mean_b']:>4.0f}  {c['std_rgb']:>6.1f}  "
                         f"{c['speed']:>5.2f}  {'yes' if c['all_in_bounds'] else 'NO ':>9}  "
                         f"{c['action_accuracy']:>6.0%}  {c['scene_accuracy']:>5.0%}")
    return lines
