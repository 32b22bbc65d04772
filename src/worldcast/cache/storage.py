"""Page tensors: per layer, keys and values of every page, kept apart from the bookkeeping."""

from __future__ import annotations

import torch

from worldcast.cache.spec import KVCacheSpec


class PagedKVStorage:
    """``keys[layer]`` and ``values[layer]`` are (num_pages, S, H, D) tensors."""

    def __init__(self, spec: KVCacheSpec, num_pages: int, device: torch.device | str) -> None:
        self.spec = spec
        self.num_pages = num_pages
        shape = (num_pages, *spec.page_shape)
        self.keys = [torch.zeros(shape, dtype=spec.dtype, device=device) for _ in range(spec.num_layers)]
        self.values = [torch.zeros(shape, dtype=spec.dtype, device=device) for _ in range(spec.num_layers)]

    def grow(self, num_pages: int) -> None:
        """Reallocate with ``num_pages`` pages, keeping the content of the existing ones."""
        for tensors in (self.keys, self.values):
            for layer, old in enumerate(tensors):
                new = old.new_zeros((num_pages, *self.spec.page_shape))
                new[: self.num_pages] = old
                tensors[layer] = new
        self.num_pages = num_pages

    def write(self, layer: int, pages: list[int], k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k/v (len(pages) * S, H, D) into ``pages`` of ``layer``."""
        shape = (len(pages), *self.spec.page_shape)
        index = _as_slice(pages)
        if isinstance(index, slice):
            self.keys[layer][index] = k.view(shape)
            self.values[layer][index] = v.view(shape)
        else:
            ids = torch.tensor(pages, device=k.device)
            self.keys[layer].index_copy_(0, ids, k.reshape(shape).to(self.spec.dtype))
            self.values[layer].index_copy_(0, ids, v.reshape(shape).to(self.spec.dtype))

    def read(self, layer: int, pages: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``pages`` as (len(pages) * S, H, D): a view when ids are consecutive."""
        index = _as_slice(pages)
        if isinstance(index, slice):
            k, v = self.keys[layer][index], self.values[layer][index]
        else:
            ids = torch.tensor(pages, device=self.keys[layer].device)
            k, v = self.keys[layer].index_select(0, ids), self.values[layer].index_select(0, ids)
        return k.flatten(0, 1), v.flatten(0, 1)


def _as_slice(pages: list[int]) -> slice | list[int]:
    """A slice when ``pages`` is a consecutive ascending run, else the list itself."""
    if pages and pages[-1] - pages[0] == len(pages) - 1 and pages == list(range(pages[0], pages[-1] + 1)):
        return slice(pages[0], pages[-1] + 1)
    return pages
