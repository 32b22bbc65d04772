"""A session's pages seen by the DiT as a ``KVSource`` (see ``models.attention``)."""

from __future__ import annotations

import torch

from worldcast.cache.storage import PagedKVStorage
from worldcast.models.attention import attention


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
                 candidates: list[int] | None = None, top_k: int = 0) -> None:
        self.storage = storage
        self.context_pages = context_pages
        self.block_pages = block_pages
        self.all_pages = context_pages + block_pages
        self.candidates = candidates or []  # pages block-sparse retrieval may add, per layer
        self.top_k = top_k

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
        if src.storage.exact:  # one read covers context and block: a view when the pages are consecutive
            keys, values = src.storage.read(self.index, context + src.block_pages)  # (T_ctx + T_block, H, D)
        elif context:  # quantized: the block's own keys/values at full precision, the context dequantized
            ck, cv = src.storage.read(self.index, context)
            keys, values = torch.cat([ck.to(k.dtype), k[0]]), torch.cat([cv.to(v.dtype), v[0]])
        else:
            keys, values = k[0], v[0]
        return attention(q, keys[None].to(q.dtype), values[None].to(q.dtype))

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
