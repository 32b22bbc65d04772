"""Progress bars for long CLI work (generation, training, evaluation, bench).

Shown on a terminal; silent when stderr is not one (tqdm's ``disable=None``) and when the CLI
was given ``--quiet`` or ``--json``, so scripts and logs get clean output.
"""

from __future__ import annotations

from collections.abc import Iterable

from tqdm import tqdm

_silenced = False


def silence(silenced: bool = True) -> None:
    """Turn every progress bar of this process off (``--quiet``, ``--json``) or back on."""
    global _silenced
    _silenced = silenced


def bar(iterable: Iterable | None = None, **kwargs: object) -> tqdm:
    """A tqdm bar that respects ``silence`` and hides itself when stderr is not a terminal."""
    return tqdm(iterable, disable=True if _silenced else None, **kwargs)
