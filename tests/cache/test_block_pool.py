import pytest

from worldcast.cache import CacheFullError, PagePool, PageTable


def test_allocate_lowest_first_and_reuse_in_free_order():
    pool = PagePool(6)
    assert pool.allocate(2) == [0, 1]
    assert pool.allocate(3) == [2, 3, 4]
    pool.free([1, 0])
    assert pool.num_free == 3
    assert pool.allocate(3) == [5, 1, 0]  # FIFO: the never-used page first, then freed order
    assert pool.num_free == 0


def test_full_pool_raises_with_counts():
    pool = PagePool(2)
    pool.allocate(1)
    with pytest.raises(CacheFullError, match="2 page\\(s\\) requested, 1 of 2 free"):
        pool.allocate(2)
    assert pool.num_free == 1  # a failed allocation takes nothing


def test_refcounts_share_and_free():
    pool = PagePool(4)
    pages = pool.allocate(2)
    pool.share(pages)
    assert [pool.refcount(p) for p in pages] == [2, 2]
    pool.free(pages)
    assert pool.num_free == 2
    pool.free(pages)
    assert pool.num_free == 4
    with pytest.raises(ValueError, match="freed twice"):
        pool.free([0])
    with pytest.raises(ValueError, match="is free"):
        pool.share([3])


def test_page_table_release_returns_every_page():
    pool = PagePool(8)
    a, b = PageTable(pool), PageTable(pool)
    assert a.append_frames(3) == [0, 1, 2]
    assert b.append_frames(2) == [3, 4]
    assert a.append_frames(3) == [5, 6, 7]
    assert len(a) == 6 and pool.num_used == 8
    a.release()
    assert len(a) == 0 and pool.num_free == 6
    b.release()
    assert pool.num_free == 8


def test_grow_adds_new_ids_after_the_free_ones():
    pool = PagePool(2)
    assert pool.allocate(1) == [0]
    pool.grow(4)
    assert pool.num_free == 3
    assert pool.allocate(3) == [1, 2, 3]
    with pytest.raises(ValueError, match="cannot shrink"):
        pool.grow(3)
