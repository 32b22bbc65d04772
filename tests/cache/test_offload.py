"""Offload's tensor side: the staging layout, the plan, and copies to host pages and back."""

import pytest
import torch

from worldcast.cache import KVCacheSpec
from worldcast.cache.offload import HostTier, plan_offload, staging_chunks, staging_pages_needed
from worldcast.cache.storage import make_storage

SPEC = KVCacheSpec(num_layers=4, num_heads=2, head_dim=8, tokens_per_page=3, dtype=torch.float32)


def test_staging_chunks_tile_two_slots_over_the_layer_regions_without_overlap():
    staging = [7, 8, 9]  # 3 pages x 4 layers = 12 frame-slots
    used = set()
    for slot in (0, 1):
        chunks = staging_chunks(staging, 4, slot, 5)
        assert [c.end - c.first for c in chunks] == [len(c.pages) for c in chunks]
        assert chunks[0].first == 0 and chunks[-1].end == 5
        for chunk in chunks:
            cells = {(chunk.layer, p) for p in chunk.pages}
            assert not cells & used
            used |= cells
    assert len(used) == 10
    assert staging_chunks(staging, 4, 1, 5)[0] == staging_chunks(staging, 4, 1, 5)[0]
    assert [(c.layer, c.pages) for c in staging_chunks(staging, 4, 1, 5)] == [(1, [9]), (2, [7, 8, 9]), (3, [7])]
    with pytest.raises(ValueError, match="cannot hold two slots of 7"):
        staging_chunks(staging, 4, 0, 7)


def test_plan_keeps_as_many_recent_frames_as_fit_beside_staging():
    # 21 frames in blocks of 3, 8 layers, a pool of 10: 3 resident + 3 block + staging for 15 (4 pages)
    assert plan_offload(10, 21, 3, 0, 8) == (3, 4)
    assert staging_pages_needed(15, 8) == 4
    resident, staging = plan_offload(10, 21, 3, 1, 8)
    assert 1 + resident + 3 + staging <= 10 and staging == staging_pages_needed(21 - 3 - 1 - resident, 8)
    # two layers: staging two one-layer slots costs as much as the pages it frees
    assert plan_offload(10, 21, 3, 0, 2) is None


@pytest.mark.parametrize("scattered", [False, True])
@pytest.mark.parametrize("quantization", [None, "int8", "fp8"])
def test_pages_survive_the_trip_to_host_and_back_through_staging(quantization, scattered):
    spec = KVCacheSpec(4, 2, 8, 3, torch.float32, quantization)
    device = make_storage(spec, 12, "cpu")
    gen = torch.Generator().manual_seed(0)
    for layer in range(4):
        k, v = torch.randn(2, 5 * 3, 2, 8, generator=gen)
        device.write(layer, [0, 1, 2, 3, 4], k, v)
    expected = [device.read(layer, [1, 3, 4]) for layer in range(4)]
    resident = [device.read(layer, [0, 1, 2, 3, 4]) for layer in range(4)]
    tier = HostTier(spec, "cpu")
    tier.reserve(5)
    host = tier.pool.allocate(5)
    host = host[::2] if scattered else host[:3]  # scattered pages are gathered, consecutive ones sliced
    tier.copy_out(device, [1, 3, 4], host)
    staging = [10, 8] if scattered else [9, 10]  # 2 pages x 4 layers: two slots of 3 frames
    for layer in range(4):
        tier.prefetch(device, layer, host, staging)
        k, v = tier.staged(device, layer, 3, staging)
        assert torch.equal(k, expected[layer][0]) and torch.equal(v, expected[layer][1])
    # staging wrote only the staging pages
    for layer in range(4):
        assert all(torch.equal(a, b) for a, b in zip(device.read(layer, [0, 1, 2, 3, 4]), resident[layer]))


def test_the_host_pool_grows_on_demand():
    tier = HostTier(SPEC, "cpu")
    tier.reserve(5)
    pages = tier.pool.allocate(5)
    assert len(set(pages)) == 5 and tier.storage.num_pages >= 5
