"""Reading state dicts from disk and fitting them to modules, with errors that name the key.

Layout-specific knowledge (which file, which prefix, which rename) lives in
``models.wan.loading``; this module only knows files and tensors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that does not fit: missing, unexpected or mis-shaped keys, unreadable files."""


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read JSON ({err})") from err


def read_safetensors(path: Path) -> StateDict:
    """One ``.safetensors`` file, or every shard listed by a ``*.safetensors.index.json``."""
    if path.name.endswith(".index.json"):
        index = json.loads(path.read_text())
        shards = sorted(set(index["weight_map"].values()))
        state: StateDict = {}
        for shard in shards:
            state.update(load_file(str(path.parent / shard)))
        return state
    return load_file(str(path))


def read_torch(path: Path) -> dict:
    """A pickled ``.pt``/``.pth``, loaded with ``weights_only=True`` (no code runs)."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(f"{path}: not a readable weights-only torch checkpoint ({err})") from err


def read_state_dict(path: Path) -> dict:
    if path.name.endswith((".safetensors", ".safetensors.index.json")):
        return read_safetensors(path)
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        return read_torch(path)
    raise CheckpointError(f"{path}: unknown checkpoint file type; expected .safetensors, "
                          ".safetensors.index.json, .pt, .pth or .bin")


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """Drop ``prefix`` from every key that has it (keys without it are kept unchanged)."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def rename_by_rules(key: str, rules: list[tuple[str, str]]) -> str:
    """Apply every (regex, replacement) rule in order: how key-name maps are written here."""
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``module`` strictly. Raises ``CheckpointError`` naming the first few
    missing or unexpected keys and every shape mismatch with both shapes."""
    expected = module.state_dict()
    given = dict(state)
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = [f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(set(given) & set(expected)) if given[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {missing[:5]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:5]}")
    if mismatched:
        problems.append("shape mismatch: " + "; ".join(mismatched[:10]))
    if problems:
        raise CheckpointError(f"{source}: does not fit {type(module).__name__}: " + " | ".join(problems))
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(given[key])
