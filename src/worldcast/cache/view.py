"""A session's pages seen by the DiT as a ``KVSource`` (see ``models.attention``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldcast.cache.offload import HostTier
from worldcast.cache.storage import PagedKVStorage
from worldcast.models.attention import attention


@dataclass(frozen=True)
class OffloadedContext:
    """Context frames held in host memory (``cache/offload.py``): their host ``pages`` in frame
    order come after the first ``position`` device context pages (the sink) and are staged
    through the session's ``staging`` pages one layer at a time."""

    tier: HostTier
    pages: list[int]
    position: int
    staging: list[int]


class PagedKV:
    """Self-attention of one block over the session's earlier pages and the block itself.

    The block's pages are reserved before its first denoising step. Every forward pass writes
    the block's keys/values into them, then reads ``context_pages + block_pages``::

        pages:   [ c0 c1 ... c(n-1) | b0 b1 b2 ]
                   earlier blocks     this block (rewritten by each denoising step;
                   read-only          the commit pass leaves the clean keys/values)

    Batch size is one: one session's pages.
    """

    def __init__(self, storage: PagedKVStorage, context_pages: list[int], block_pages: list[int],
                 candidates: list[int] | None = None, top_k: int = 0,
                 offloaded: OffloadedContext | None = None) -> None:
        self.storage = storage
        self.context_pages = context_pages
        self.block_pages = block_pages
        self.all_pages = context_pages + block_pages
        self.candidates = candidates or []  # pages block-sparse retrieval may add, per layer
        self.top_k = top_k
        self.offloaded = offloaded if offloaded is not None and offloaded.pages else None
        if self.offloaded is not None:  # layer 0's share starts moving before the forward pass
            self.offloaded.tier.prefetch(storage, 0, self.offloaded.pages, self.offloaded.staging)

    def layer(self, index: int) -> _PagedLayer:
        return _PagedLayer(self, index)


class _PagedLayer:
    def __init__(self, source: PagedKV, index: int) -> None:
        self.source, self.index = source, index

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # q/k/v: (1, T_block, H, D)
        src = self.source
        src.storage.write(self.index, src.block_pages, k[0], v[0])
        context = self._retrieved(q) + src.context_pages
        if src.offloaded is not None:
            keys, values = self._with_offloaded(context, k, v)
        elif src.storage.exact:  # one read covers context and block: a view when the pages are consecutive
            keys, values = src.storage.read(self.index, context + src.block_pages)  # (T_ctx + T_block, H, D)
        elif context:  # quantized: the block's own keys/values at full precision, the context dequantized
            ck, cv = src.storage.read(self.index, context)
            keys, values = torch.cat([ck.to(k.dtype), k[0]]), torch.cat([cv.to(v.dtype), v[0]])
        else:
            keys, values = k[0], v[0]
        return attention(q, keys[None].to(q.dtype), values[None].to(q.dtype))

    def _with_offloaded(self, context: list[int], k: torch.Tensor,
                        v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sink pages, the staged offloaded pages, resident pages, then the block, in frame
        order: the same keys/values an all-resident cache reads; then start the next layer's copy."""
        src, off, layer = self.source, self.source.offloaded, self.index
        before, after = context[:off.position], context[off.position:]
        parts = [src.storage.read(layer, before)] if before else []
        parts.append(off.tier.staged(src.storage, layer, len(off.pages), off.staging))
        if after:
            parts.append(src.storage.read(layer, after))
        parts.append(src.storage.read(layer, src.block_pages) if src.storage.exact else (k[0], v[0]))
        keys = torch.cat([pk.to(k.dtype) for pk, _ in parts])  # (T_ctx + T_block, H, D)
        values = torch.cat([pv.to(v.dtype) for _, pv in parts])
        if layer + 1 < src.storage.spec.num_layers:
            off.tier.prefetch(src.storage, layer + 1, off.pages, off.staging)
        return keys, values

    def _retrieved(self, q: torch.Tensor) -> list[int]:
        """The ``top_k`` candidate pages whose mean key scores highest against the block's mean
        query (summed over heads), in page order; none without retrieval."""
        src = self.source
        if not src.top_k or not src.candidates:
            return []
        if len(src.candidates) <= src.top_k:
            return list(src.candidates)
        query = q[0].float().mean(dim=0)  # (H, D)
        scores = (src.storage.key_means.read(self.index, src.candidates) * query).sum(dim=(1, 2))  # (N,)
        chosen = scores.topk(src.top_k).indices.sort().values.tolist()
        return [src.candidates[i] for i in chosen]
