from worldcast.cache.block_pool import CacheFullError, PagePool, PageTable
from worldcast.cache.spec import KVCacheSpec
from worldcast.cache.storage import PagedKVStorage

__all__ = ["CacheFullError", "KVCacheSpec", "PagePool", "PageTable", "PagedKVStorage"]
