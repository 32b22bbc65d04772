"""Page tensors: per layer, keys and values of every page, kept apart from the bookkeeping."""

from __future__ import annotations

import torch

from worldcast.cache.quant import SCALE_DTYPE, dequantize, element_dtype, quantize_keys, quantize_values
from worldcast.cache.spec import KVCacheSpec


class PagedKVStorage:
    """``keys[layer]`` and ``values[layer]`` are (num_pages, S, H, D) tensors.

    ``exact``: a read returns exactly what was written (so a block may read its own keys back).
    """

    exact = True

    def __init__(self, spec: KVCacheSpec, num_pages: int, device: torch.device | str,
                 pin_memory: bool = False) -> None:
        self.spec = spec
        self.num_pages = num_pages
        self.pin_memory = pin_memory  # host pages an accelerator copies from asynchronously
        shape = (num_pages, *spec.page_shape)
        self.keys = [_zeros(shape, spec.dtype, device, pin_memory) for _ in range(spec.num_layers)]
        self.values = [_zeros(shape, spec.dtype, device, pin_memory) for _ in range(spec.num_layers)]
        self.key_means = KeyMeans(spec, num_pages, device)

    def grow(self, num_pages: int) -> None:
        """Reallocate with ``num_pages`` pages, keeping the content of the existing ones."""
        for tensors in (self.keys, self.values):
            for layer, old in enumerate(tensors):
                new = _zeros((num_pages, *self.spec.page_shape), old.dtype, old.device, self.pin_memory)
                new[: self.num_pages] = old
                tensors[layer] = new
        self.key_means.grow(num_pages)
        self.num_pages = num_pages

    def raw(self, layer: int) -> list[torch.Tensor]:
        """The tensors holding ``layer``'s pages as stored, page index first (what offload copies)."""
        return [self.keys[layer], self.values[layer]]

    def write(self, layer: int, pages: list[int], k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k/v (len(pages) * S, H, D) into ``pages`` of ``layer``."""
        shape = (len(pages), *self.spec.page_shape)
        self.key_means.write(layer, pages, k.reshape(shape))
        index = as_slice(pages)
        if isinstance(index, slice):
            self.keys[layer][index] = k.view(shape)
            self.values[layer][index] = v.view(shape)
        else:
            ids = torch.tensor(pages, device=k.device)
            self.keys[layer].index_copy_(0, ids, k.reshape(shape).to(self.spec.dtype))
            self.values[layer].index_copy_(0, ids, v.reshape(shape).to(self.spec.dtype))

    def export_pages(self, pages: list[int]) -> dict[str, list[torch.Tensor]]:
        """Copies of ``pages``' tensors, per layer, as stored (for a snapshot)."""
        ids = torch.tensor(pages, dtype=torch.long)
        return {"keys": [t.index_select(0, ids.to(t.device)).cpu() for t in self.keys],
                "values": [t.index_select(0, ids.to(t.device)).cpu() for t in self.values],
                "key_means": self.key_means.export(pages)}

    def import_pages(self, pages: list[int], data: dict[str, list[torch.Tensor]]) -> None:
        """Write ``export_pages`` output into ``pages``."""
        ids = torch.tensor(pages, dtype=torch.long)
        for name, tensors in (("keys", self.keys), ("values", self.values)):
            for layer, t in enumerate(tensors):
                t.index_copy_(0, ids.to(t.device), data[name][layer].to(t.device, t.dtype))
        self.key_means.import_(pages, data["key_means"])

    def read(self, layer: int, pages: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``pages`` as (len(pages) * S, H, D): a view when ids are consecutive."""
        index = as_slice(pages)
        if isinstance(index, slice):
            k, v = self.keys[layer][index], self.values[layer][index]
        else:
            ids = torch.tensor(pages, device=self.keys[layer].device)
            k, v = self.keys[layer].index_select(0, ids), self.values[layer].index_select(0, ids)
        return k.flatten(0, 1), v.flatten(0, 1)


def as_slice(pages: list[int]) -> slice | list[int]:
    """A slice when ``pages`` is a consecutive ascending run, else the list itself."""
    if pages and pages[-1] - pages[0] == len(pages) - 1 and pages == list(range(pages[0], pages[-1] + 1)):
        return slice(pages[0], pages[-1] + 1)
    return pages


class QuantizedKVStorage:
    """Pages stored as INT8 or FP8 with float16 scales (``cache/quant.py``); reads dequantize
    to ``spec.dtype``. Same interface as ``PagedKVStorage``; reads are copies, never views.

    ``exact`` is False: a block attends to its own keys/values at full precision and only
    reads the context back (``cache/view.py``).
    """

    exact = False

    def __init__(self, spec: KVCacheSpec, num_pages: int, device: torch.device | str,
                 pin_memory: bool = False) -> None:
        if spec.quantization is None:
            raise ValueError("QuantizedKVStorage: the spec has no quantization; use PagedKVStorage")
        self.spec = spec
        self.num_pages = 0
        self.pin_memory = pin_memory
        self.key_means = KeyMeans(spec, 0, device)
        self.key_data: list[torch.Tensor] = []
        self.key_scale: list[torch.Tensor] = []
        self.value_data: list[torch.Tensor] = []
        self.value_scale: list[torch.Tensor] = []
        self._device = torch.device(device)
        self.grow(num_pages)

    def _shapes(self, n: int) -> dict[str, tuple[int, ...]]:
        S, H, D = self.spec.page_shape
        return {"key_data": (n, S, H, D), "key_scale": (n, 1, H, D), "value_data": (n, S, H, D),
                "value_scale": (n, S, H, 1)}

    def grow(self, num_pages: int) -> None:
        """Reallocate with ``num_pages`` pages, keeping the content of the existing ones."""
        element = element_dtype(self.spec.quantization)
        for name, shape in self._shapes(num_pages).items():
            dtype = element if name.endswith("data") else SCALE_DTYPE
            tensors = getattr(self, name)
            for layer in range(self.spec.num_layers):
                new = _zeros(shape, dtype, self._device, self.pin_memory)
                if layer < len(tensors):
                    new[: self.num_pages] = tensors[layer]
                    tensors[layer] = new
                else:
                    tensors.append(new)
        self.key_means.grow(num_pages)
        self.num_pages = num_pages

    def write(self, layer: int, pages: list[int], k: torch.Tensor, v: torch.Tensor) -> None:
        """Quantize k/v (len(pages) * S, H, D) into ``pages`` of ``layer``."""
        shape = (len(pages), *self.spec.page_shape)
        self.key_means.write(layer, pages, k.reshape(shape))
        fmt = self.spec.quantization
        kq, ks = quantize_keys(k.reshape(shape), fmt)
        vq, vs = quantize_values(v.reshape(shape), fmt)
        ids = torch.tensor(pages, device=self._device)
        for store, value in ((self.key_data, kq), (self.key_scale, ks), (self.value_data, vq),
                             (self.value_scale, vs)):
            _bytes(store[layer]).index_copy_(0, ids, _bytes(value))

    _NAMES = ("key_data", "key_scale", "value_data", "value_scale")

    def raw(self, layer: int) -> list[torch.Tensor]:
        """The tensors holding ``layer``'s pages as stored (8-bit data as uint8), page index first."""
        return [_bytes(getattr(self, name)[layer]) for name in self._NAMES]

    def export_pages(self, pages: list[int]) -> dict[str, list[torch.Tensor]]:
        """Copies of ``pages``' data and scales, per layer, as stored (8-bit data as uint8)."""
        ids = torch.tensor(pages, dtype=torch.long, device=self._device)
        data = {name: [_bytes(t).index_select(0, ids).cpu() for t in getattr(self, name)] for name in self._NAMES}
        return {**data, "key_means": self.key_means.export(pages)}

    def import_pages(self, pages: list[int], data: dict[str, list[torch.Tensor]]) -> None:
        ids = torch.tensor(pages, dtype=torch.long, device=self._device)
        for name in self._NAMES:
            for layer, t in enumerate(getattr(self, name)):
                _bytes(t).index_copy_(0, ids, data[name][layer].to(self._device))
        self.key_means.import_(pages, data["key_means"])

    def read(self, layer: int, pages: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantized keys and values of ``pages`` as (len(pages) * S, H, D) in ``spec.dtype``."""
        index = as_slice(pages)
        if isinstance(index, slice):
            def pick(t: torch.Tensor) -> torch.Tensor:
                return t[index]
        else:
            ids = torch.tensor(pages, device=self._device)

            def pick(t: torch.Tensor) -> torch.Tensor:
                return _bytes(t).index_select(0, ids).view(t.dtype)
        k = dequantize(pick(self.key_data[layer]), pick(self.key_scale[layer]), self.spec.dtype)
        v = dequantize(pick(self.value_data[layer]), pick(self.value_scale[layer]), self.spec.dtype)
        return k.flatten(0, 1), v.flatten(0, 1)


class KeyMeans:
    """Per layer, each page's keys averaged over its tokens: (num_pages, H, D) float32, the
    summary block-sparse retrieval scores pages by (kept only when retrieval is on)."""

    def __init__(self, spec: KVCacheSpec, num_pages: int, device: torch.device | str) -> None:
        self.enabled = spec.key_means
        self._shape = (spec.num_heads, spec.head_dim)
        self.means = [torch.zeros((num_pages, *self._shape), device=device) for _ in range(spec.num_layers)] \
            if self.enabled else []

    def grow(self, num_pages: int) -> None:
        for layer, old in enumerate(self.means):
            new = old.new_zeros((num_pages, *self._shape))
            new[: old.shape[0]] = old
            self.means[layer] = new

    def write(self, layer: int, pages: list[int], k: torch.Tensor) -> None:
        """``k`` (len(pages), S, H, D): the pages' keys as computed (before any quantization)."""
        if self.enabled:
            ids = torch.tensor(pages, device=k.device)
            self.means[layer].index_copy_(0, ids, k.float().mean(dim=1))

    def read(self, layer: int, pages: list[int]) -> torch.Tensor:
        return self.means[layer][torch.tensor(pages, device=self.means[layer].device)]

    def export(self, pages: list[int]) -> list[torch.Tensor]:
        return [self.read(layer, pages).cpu() for layer in range(len(self.means))]

    def import_(self, pages: list[int], means: list[torch.Tensor]) -> None:
        for layer, t in enumerate(self.means):
            t.index_copy_(0, torch.tensor(pages, device=t.device), means[layer].to(t.device))


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str, pin_memory: bool) -> torch.Tensor:
    # Pinned (page-locked) host memory lets copies to an accelerator run asynchronously.
    return torch.zeros(shape, dtype=dtype, device=device, pin_memory=pin_memory)


def _bytes(t: torch.Tensor) -> torch.Tensor:
    """An 8-bit tensor as uint8 (same memory): CPU kernels such as index_copy_ lack FP8 types."""
    return t.view(torch.uint8) if t.element_size() == 1 else t


def select_rows(data: dict[str, list[torch.Tensor]], rows: list[int]) -> dict[str, list[torch.Tensor]]:
    """``export_pages`` output restricted to (and reordered by) ``rows``."""
    ids = torch.tensor(rows, dtype=torch.long)
    return {name: [t.index_select(0, ids) for t in tensors] for name, tensors in data.items()}


def concat_rows(first: dict[str, list[torch.Tensor]],
                second: dict[str, list[torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    """Two ``export_pages`` outputs of one layout as one, ``first``'s pages first."""
    return {name: [torch.cat([a, b]) for a, b in zip(tensors, second[name])] for name, tensors in first.items()}


def make_storage(spec: KVCacheSpec, num_pages: int, device: torch.device | str,
                 pin_memory: bool = False) -> PagedKVStorage | QuantizedKVStorage:
    """The storage the spec asks for."""
    if spec.quantization is None:
        return PagedKVStorage(spec, num_pages, device, pin_memory)
    return QuantizedKVStorage(spec, num_pages, device, pin_memory)
