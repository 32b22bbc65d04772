"""Per-request state: positions as Python ints, the page table, noise, decoder state."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from worldcast.cache.block_pool import PageTable
from worldcast.engine.request import GenerationRequest
from worldcast.models.wan.dit import TextContext


@dataclass
class Session:
    request_id: int
    request: GenerationRequest
    block_sizes: list[int]  # latent frames per block
    latent_shape: tuple[int, int, int]  # (C, h, w) of one latent frame
    text: TextContext
    pages: PageTable | None  # None in recompute mode
    decoder_state: object | None = None
    prefix_blocks: int = 0  # leading blocks committed from request.prefix_latents
    window: int | None = None  # latent frames of context a block sees (None: all)
    sink: int = 0  # first latent frames every block also sees (kept past the window)
    retrieval: int = 0  # earlier frames outside sink and window each layer may retrieve (all kept)
    actions: torch.Tensor | None = None  # (frames, actions_per_frame) action ids per latent frame
    next_block: int = 0
    frames_done: int = 0
    # Earlier blocks' clean latents (1, C, f, h, w) with their first frame: every block in
    # recompute mode (it re-runs them), the blocks whose pages are still held in cache mode (a
    # prompt switch can re-cache them). Latents are tiny next to their K/V pages.
    history: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    recache_pending: bool = False  # re-run the held frames under a new prompt before the next block
    uncond_text: TextContext | None = None  # guidance's unconditional branch (the negative prompt)
    # Offload (CacheConfig.over_budget="offload"): only the sink and the latest ``resident``
    # frames stay on the device; older held frames move to ``host`` pages, and attention
    # streams them back per layer through ``staging`` (device pages lent for it; see
    # cache/offload.py), of which the session needs ``staging_size``.
    resident: int | None = None
    host: PageTable | None = None
    staging: list[int] = field(default_factory=list)
    staging_size: int = 0
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.request.seed)

    @property
    def num_frames(self) -> int:
        return sum(self.block_sizes)

    @property
    def finished(self) -> bool:
        return self.next_block == len(self.block_sizes)

    @property
    def prefix_frames(self) -> int:
        return sum(self.block_sizes[: self.prefix_blocks])

    @property
    def in_prefix(self) -> bool:
        return self.next_block < self.prefix_blocks

    def frame_actions(self, start: int, count: int) -> torch.Tensor | None:
        """Action ids (1, count, actions_per_frame) of latent frames start .. start + count - 1."""
        return None if self.actions is None else self.actions[None, start:start + count]

    def prefix_block(self) -> torch.Tensor:
        """The current prefix block's latents (1, C, f, h, w), on CPU."""
        start, f = self.frames_done, self.current_block_frames
        return self.request.prefix_latents[None, :, start:start + f]

    @property
    def current_block_frames(self) -> int:
        return self.block_sizes[self.next_block]

    @property
    def max_held_frames(self) -> int:
        """The most frames this session keeps at once: its window plus a block, or everything."""
        if self.window is None or self.retrieval:
            return self.num_frames
        return min(self.num_frames, self.sink + self.window + max(self.block_sizes))

    @property
    def max_pages(self) -> int:
        """The most device pages this session holds at once (offloaded frames are on the host)."""
        if self.resident is None:
            return self.max_held_frames
        return self.sink + self.resident + max(self.block_sizes) + self.staging_size

    def _visible(self) -> list[tuple[int, int]]:
        """Frame ranges [a, b) the current block sees besides itself, in order."""
        start = self.frames_done
        if self.window is None:
            first = self.pages.first_frame if not self.host else min(self.pages.first_frame, self.host.first_frame)
            return [(first, start)]
        recent = max(0, start - self.window)
        sink = min(self.sink, recent)  # sink frames the window does not already cover
        return [(0, sink), (max(sink, recent), start)]

    def page_split(self) -> tuple[list[int], list[int]]:
        """(device pages of the context frames the current block sees, pages of the block itself)."""
        start, end = self.frames_done, self.frames_done + self.current_block_frames
        if not self.host:
            return [p for a, b in self._visible() for p in self.pages.frames(a, b)], self.pages.frames(start, end)
        context = [self.pages.page(f) for a, b in self._visible() for f in range(a, b) if f in self.pages]
        return context, self.pages.frames(start, end)

    def host_split(self) -> tuple[list[int], int]:
        """(host pages of the offloaded context frames, in frame order; how many device context
        pages come before them — the sink's). Offloaded frames lie between sink and resident ones."""
        if not self.host:
            return [], 0
        frames = [f for a, b in self._visible() for f in range(a, b)]
        missing = [f for f in frames if f not in self.pages and f not in self.host]
        if missing:
            raise IndexError(f"frames {missing} are neither resident nor offloaded")
        host = [f for f in frames if f in self.host]
        if not host:
            return [], 0
        return [self.host.page(f) for f in host], sum(1 for f in frames if f < host[0])

    def frames_to_offload(self) -> list[int]:
        """Resident frames outside the sink and the latest ``resident`` ones: to move to the host."""
        if self.resident is None:
            return []
        limit = self.frames_done - self.resident
        return [f for f in self.pages.held_frames if self.sink <= f < limit]

    def retrieval_candidates(self) -> list[int]:
        """Pages of the held frames outside the current block's sink and window: what
        block-sparse retrieval chooses from."""
        if not self.retrieval or self.window is None:
            return []
        start = self.frames_done
        return self.pages.frames(self.sink, max(self.sink, start - self.window))

    def evict_stale(self) -> None:
        """Free the pages no later block will see (between the sink and the window) and forget
        the latents of blocks with no frame left."""
        if self.pages is not None and self.window is not None and not self.retrieval:
            self.pages.evict(self.sink, self.frames_done - self.window)
            if self.host is not None:
                self.host.evict(self.sink, self.frames_done - self.window)
            held = set(self.held_frames)
            self.history = [(start, x) for start, x in self.history
                            if any(start + i in held for i in range(x.shape[2]))]

    def block_noise(self, num_steps: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Initial noise (1, C, f, h, w) and the re-noising draws for the current block, on CPU.

        Drawn per block (initial, then one per step after the first) so a video's first blocks
        do not depend on how long it is.
        """
        C, h, w = self.latent_shape
        start, f = self.frames_done - self.prefix_frames, self.current_block_frames
        if self.request.noise is not None:
            initial = self.request.noise[None, :, start:start + f]
            if self.request.step_noise is not None:
                return initial, [n[None, :, start:start + f] for n in self.request.step_noise]
        else:
            initial = torch.randn(1, C, f, h, w, generator=self.generator)
        steps = [torch.randn(1, C, f, h, w, generator=self.generator) for _ in range(num_steps - 1)]
        return initial, steps

    @property
    def held_frames(self) -> list[int]:
        """Frames whose keys/values are kept, on the device or offloaded, in order."""
        return sorted(self.pages.held_frames + (self.host.held_frames if self.host is not None else []))

    @property
    def clean_latents(self) -> list[torch.Tensor]:
        return [latents for _, latents in self.history]

    def advance(self, latents: torch.Tensor) -> None:
        self.history.append((self.frames_done, latents))
        self.frames_done += latents.shape[2]
        self.next_block += 1

    def held_blocks(self) -> list[tuple[int, torch.Tensor]]:
        """(first frame, latents) of each run of still-cached frames of the earlier blocks, in
        order: a block whose middle was evicted (sink on one side, window on the other) gives
        two runs."""
        held = set(self.pages.held_frames)
        runs = []
        for start, latents in self.history:
            i = 0
            while i < latents.shape[2]:
                if start + i not in held:
                    i += 1
                    continue
                j = i
                while j < latents.shape[2] and start + j in held:
                    j += 1
                runs.append((start + i, latents[:, :, i:j]))
                i = j
        return runs

    def release(self) -> None:
        if self.pages is not None:
            self.pages.release()
            self.pages.pool.free(self.staging)
            self.staging = []
        if self.host is not None:
            self.host.release()
