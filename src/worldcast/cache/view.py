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
        # q/k/v: (B, T_block, H, D). B is 1, or 2 under classifier-free guidance (conditional,
        # unconditional): every element attends to the same context and to its own block, and
        # only element 0's keys/values are stored (the cache holds one, conditional, past).
        src = self.source
        src.storage.write(self.index, src.block_pages, k[0], v[0])
        context = self._retrieved(q) + src.context_pages
        if q.shape[0] == 1 and src.offloaded is None and src.storage.exact:
            # one read covers context and block: a view when the pages are consecutive
            keys, values = src.storage.read(self.index, context + src.block_pages)  # (T_ctx + T_block, H, D)
            return attention(q, keys[None].to(q.dtype), values[None].to(q.dtype))
        if src.storage.exact:  # the block as its pages hold it (in the cache dtype)
            k, v = k.to(src.storage.spec.dtype), v.to(src.storage.spec.dtype)
        # quantized pages: the block's own keys/values stay at full precision, the context is dequantized
        past = self._context(context)
        if past is not None:
            ck, cv = past  # (T_ctx, H, D)
            B = q.shape[0]
            k = torch.cat([ck.to(k.dtype)[None].expand(B, -1, -1, -1), k], dim=1)  # (B, T_ctx + T_block, H, D)
            v = torch.cat([cv.to(v.dtype)[None].expand(B, -1, -1, -1), v], dim=1)
        return attention(q, k.to(q.dtype), v.to(q.dtype))

    def _context(self, context: list[int]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Keys and values of the context pages (T_ctx, H, D), None without context. With frames
        offloaded: sink pages, the staged offloaded pages, then resident pages — frame order, the
        same keys/values an all-resident cache reads — and the next layer's copy is started."""
        src, off, layer = self.source, self.source.offloaded, self.index
        if off is None:
            return src.storage.read(layer, context) if context else None
        before, after = context[:off.position], context[off.position:]
        parts = [src.storage.read(layer, before)] if before else []
        parts.append(off.tier.staged(src.storage, layer, len(off.pages), off.staging))
        if after:
            parts.append(src.storage.read(layer, after))
        keys, values = torch.cat([pk for pk, _ in parts]), torch.cat([pv for _, pv in parts])
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
