"""Offload: cold pages in host memory, brought back one layer at a time during attention.

When a session's pages do not fit the device budget (``CacheConfig.over_budget="offload"``),
the frames outside its sink and its most recent ``resident`` frames move to host memory
(pinned on CUDA, so copies are asynchronous). Attention still sees every frame it would have
seen: for each layer the host pages' share of that layer is copied into *staging* on the
device while the previous layer computes, so the output is exactly that of an all-resident
cache; only where the bytes live changes.

Staging is made of ordinary pool pages the session holds for the purpose (so it counts
against the budget like any page). A page stores every layer's keys/values of one frame, so
``m`` staging pages hold ``num_layers * m`` frame-slots of one layer each; two slots of
``n`` frame-slots (double buffering: layer l is read from one while layer l + 1 is copied
into the other) take ``ceil(2 n / num_layers)`` pages::

    staging pages  p0 p1 p2          region of layer 0 | layer 1 | layer 2 | ...
    slot 0 (n=4)   [L0:p0 p1 p2][L1:p0]                 slot 1 [L1:p1 p2][L2:p0 p1]

Tensor work only; which frames move is decided by the session (``engine/session.py``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from worldcast.cache.block_pool import PagePool
from worldcast.cache.spec import KVCacheSpec
from worldcast.cache.storage import PagedKVStorage, QuantizedKVStorage, as_slice, make_storage

Storage = PagedKVStorage | QuantizedKVStorage


def staging_pages_needed(host_frames: int, num_layers: int) -> int:
    """Pool pages that hold two one-layer slots of ``host_frames`` frames each."""
    return math.ceil(2 * host_frames / num_layers)


def plan_offload(pool_pages: int, held_frames: int, block: int, sink: int, num_layers: int) -> tuple[int, int] | None:
    """(resident, staging pages) for a session keeping up to ``held_frames`` frames (blocks of at
    most ``block``) in a pool of ``pool_pages``: the most resident frames besides the sink for
    which sink, residents, a block and the staging for the rest fit; None when nothing does
    (with few layers staging costs as much as the pages it replaces)."""
    for resident in range(pool_pages - block - sink, -1, -1):
        offloaded = max(0, held_frames - block - sink - resident)
        staging = staging_pages_needed(offloaded, num_layers)
        if sink + resident + block + staging <= pool_pages:
            return resident, staging
    return None


@dataclass(frozen=True)
class StagingChunk:
    """Host frames ``first .. end - 1`` of a slot live in ``layer``'s region of ``pages``."""

    layer: int
    pages: list[int]
    first: int
    end: int


def staging_chunks(staging: list[int], num_layers: int, slot: int, count: int) -> list[StagingChunk]:
    """Where slot ``slot`` (0 or 1) of ``count`` frames lives in the staging pages: the slot
    takes frame-slots ``slot * count ..`` of the regions laid end to end (layer 0's region of
    every staging page, then layer 1's, ...)."""
    if 2 * count > num_layers * len(staging):
        raise ValueError(f"staging: {len(staging)} page(s) of {num_layers} layer(s) cannot hold two slots of "
                         f"{count} frames")
    chunks, done, flat = [], 0, slot * count
    while done < count:
        layer, offset = divmod(flat, len(staging))
        take = min(len(staging) - offset, count - done)
        chunks.append(StagingChunk(layer, staging[offset:offset + take], done, done + take))
        flat, done = flat + take, done + take
    return chunks


class HostTier:
    """The engine's host memory for offloaded pages: a growing page pool and its storage, and
    the copies between it and the device storage (on a side stream on CUDA)."""

    def __init__(self, spec: KVCacheSpec, device: torch.device | str) -> None:
        self.device = torch.device(device)
        accelerated = self.device.type == "cuda"
        # Retrieval summaries stay with resident pages: offloaded ones are only ever read whole.
        self.spec = dataclasses.replace(spec, key_means=False)
        self.pool = PagePool(1)
        self.storage = make_storage(self.spec, 1, "cpu", pin_memory=accelerated)
        self.stream = torch.cuda.Stream(self.device) if accelerated else None
        self._ready: list[torch.cuda.Event | None] = [None, None]  # per slot: its last copy in is done
        self._offloaded: torch.cuda.Event | None = None  # the last copy out to host memory is done
        self._scratch: dict[tuple[int, int], torch.Tensor] = {}  # pinned gather buffers, per slot and tensor

    def reserve(self, count: int) -> None:
        """Grow so that ``count`` more pages can be allocated."""
        if count > self.pool.num_free:
            size = self.pool.num_pages + count - self.pool.num_free
            self.pool.grow(size)
            self.storage.grow(size)

    def copy_out(self, device: Storage, device_pages: list[int], host_pages: list[int]) -> None:
        """Copy every layer of ``device_pages`` into ``host_pages``. Asynchronous on CUDA (pinned,
        consecutive host pages): later work on the current stream, such as reusing the device
        pages, is ordered after it, and ``prefetch`` waits for it."""
        ids = torch.tensor(device_pages, device=self.device)
        for layer in range(self.spec.num_layers):
            for src, dst in zip(device.raw(layer), self.storage.raw(layer)):
                _copy_rows(dst, host_pages, src.index_select(0, ids))
        if self.stream is not None:
            self._offloaded = torch.cuda.Event()
            self._offloaded.record(torch.cuda.current_stream(self.device))

    def prefetch(self, device: Storage, layer: int, host_pages: list[int], staging: list[int]) -> None:
        """Start copying ``layer``'s share of ``host_pages`` into its staging slot."""
        slot = layer % 2
        chunks = staging_chunks(staging, self.spec.num_layers, slot, len(host_pages))
        if self.stream is None:
            self._copy_in(device, layer, host_pages, chunks, slot)
            return
        # The copy stream waits for what the compute stream has queued: earlier offloads into
        # host memory, and attention still reading this slot (two layers ago).
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            self._copy_in(device, layer, host_pages, chunks, slot)
            self._ready[slot] = torch.cuda.Event()
            self._ready[slot].record(self.stream)

    def staged(self, device: Storage, layer: int, count: int, staging: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``layer``'s keys and values of the ``count`` prefetched frames, (count * S, H, D)."""
        slot = layer % 2
        if self.stream is not None and self._ready[slot] is not None:
            torch.cuda.current_stream(self.device).wait_event(self._ready[slot])
        parts = [device.read(chunk.layer, chunk.pages)
                 for chunk in staging_chunks(staging, self.spec.num_layers, slot, count)]
        if len(parts) == 1:
            return parts[0]
        return torch.cat([k for k, _ in parts]), torch.cat([v for _, v in parts])

    def _copy_in(self, device: Storage, layer: int, host_pages: list[int], chunks: list[StagingChunk],
                 slot: int) -> None:
        index = as_slice(host_pages)
        for i, src in enumerate(self.storage.raw(layer)):
            rows = src[index] if isinstance(index, slice) else self._gather(src, host_pages, slot, i)
            for chunk in chunks:
                _copy_rows(device.raw(chunk.layer)[i], chunk.pages, rows[chunk.first:chunk.end])

    def _gather(self, src: torch.Tensor, pages: list[int], slot: int, i: int) -> torch.Tensor:
        """Scattered host pages gathered into one tensor; on CUDA into a pinned buffer of this
        slot (so the copy stays asynchronous), once the host is done with it: the offloads have
        landed and the slot's previous copy out of the buffer has finished."""
        ids = torch.tensor(pages)
        if self.stream is None:
            return src.index_select(0, ids)
        for event in (self._offloaded, self._ready[slot]):
            if event is not None:
                event.synchronize()
        shape = (len(pages), *src.shape[1:])
        buffer = self._scratch.get((slot, i))
        if buffer is None or buffer.shape[0] < len(pages) or buffer.shape[1:] != src.shape[1:]:
            buffer = torch.empty(shape, dtype=src.dtype, pin_memory=True)
            self._scratch[(slot, i)] = buffer
        return torch.index_select(src, 0, ids, out=buffer[:len(pages)])

    def export_pages(self, pages: list[int]) -> dict:
        if self.stream is not None:  # asynchronous offloads must have landed before the host reads them
            torch.cuda.current_stream(self.device).synchronize()
        return self.storage.export_pages(pages)

    def import_pages(self, pages: list[int], data: dict) -> None:
        self.storage.import_pages(pages, data)


def _copy_rows(dst: torch.Tensor, pages: list[int], rows: torch.Tensor) -> None:
    """``dst[pages] = rows``, asynchronous between pinned host memory and an accelerator when
    ``pages`` are consecutive."""
    index = as_slice(pages)
    if isinstance(index, slice):
        dst[index].copy_(rows, non_blocking=True)
    else:  # into host memory the copy must have landed before the host-side index_copy_ runs
        moved = rows.to(dst.device, non_blocking=dst.device.type != "cpu")
        dst.index_copy_(0, torch.tensor(pages, device=dst.device), moved)
