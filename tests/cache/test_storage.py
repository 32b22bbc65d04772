import torch

from tiny import TINY
from worldcast.cache import KVCacheSpec, PagedKVStorage
from worldcast.config import EngineConfig


def _storage(num_pages=6):
    spec = KVCacheSpec(num_layers=2, num_heads=2, head_dim=4, tokens_per_page=3, dtype=torch.float32)
    return PagedKVStorage(spec, num_pages, "cpu")


def _kv(pages, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(pages) * 3, 2, 4, generator=g), torch.randn(len(pages) * 3, 2, 4, generator=g)


def test_round_trip_consecutive_and_scattered_pages():
    storage = _storage()
    for pages, seed in (([1, 2], 0), ([5, 0, 3], 1)):
        k, v = _kv(pages, seed)
        storage.write(1, pages, k, v)
        rk, rv = storage.read(1, pages)
        torch.testing.assert_close(rk, k)
        torch.testing.assert_close(rv, v)
    # Reading a mixed order gathers page by page.
    k12, _ = _kv([1, 2], 0)
    k503, _ = _kv([5, 0, 3], 1)
    rk, _ = storage.read(1, [0, 1])
    torch.testing.assert_close(rk, torch.cat([k503[3:6], k12[0:3]]))
    assert storage.read(0, [1])[0].abs().sum() == 0  # other layers untouched


def test_consecutive_read_is_a_view():
    storage = _storage()
    k, _ = storage.read(0, [2, 3, 4])
    assert k.data_ptr() == storage.keys[0][2].data_ptr()


def test_bytes_per_page_from_the_spec():
    # Wan2.1-1.3B at 480x832 in bf16: 30 layers x 2 x 1560 tokens x 1536 x 2 B (about 288 MB).
    spec = KVCacheSpec.from_engine_config(EngineConfig(dtype="bfloat16"))
    assert spec.bytes_per_page == 30 * 2 * 1560 * 1536 * 2
    tiny = KVCacheSpec.from_engine_config(EngineConfig(model=TINY, height=32, width=32, dtype="float32"))
    assert tiny.bytes_per_page == 2 * 2 * (2 * 2) * 64 * 4


def test_grow_keeps_existing_pages():
    storage = _storage(num_pages=2)
    k, v = _kv([0, 1], 3)
    storage.write(0, [0, 1], k, v)
    storage.grow(5)
    assert storage.keys[0].shape[0] == 5
    torch.testing.assert_close(storage.read(0, [0, 1])[0], k)
    assert storage.read(0, [4])[0].abs().sum() == 0
