"""Page allocation with reference counts. Pure Python: integers only, no tensors."""

from __future__ import annotations

from collections import deque


class CacheFullError(RuntimeError):
    """Raised when a request needs more pages than the pool has free."""


class PagePool:
    """A fixed set of page ids, handed out lowest-first from a FIFO free list.

    Pages freed later are reused later, so a fresh pool gives a session consecutive ids
    (which lets storage read them as one view instead of a gather).
    """

    def __init__(self, num_pages: int) -> None:
        if num_pages <= 0:
            raise ValueError(f"num_pages: must be positive, got {num_pages}")
        self.num_pages = num_pages
        self._free: deque[int] = deque(range(num_pages))
        self._refcount = [0] * num_pages

    def grow(self, num_pages: int) -> None:
        """Add pages ``self.num_pages .. num_pages - 1``; existing ids keep their meaning."""
        if num_pages < self.num_pages:
            raise ValueError(f"num_pages: cannot shrink a pool from {self.num_pages} to {num_pages}")
        self._free.extend(range(self.num_pages, num_pages))
        self._refcount.extend([0] * (num_pages - self.num_pages))
        self.num_pages = num_pages

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_pages - len(self._free)

    def refcount(self, page: int) -> int:
        return self._refcount[page]

    def allocate(self, count: int) -> list[int]:
        if count > len(self._free):
            raise CacheFullError(
                f"KV cache full: {count} page(s) requested, {len(self._free)} of "
                f"{self.num_pages} free; raise CacheConfig.num_pages or shorten the video"
            )
        pages = [self._free.popleft() for _ in range(count)]
        for page in pages:
            self._refcount[page] = 1
        return pages

    def share(self, pages: list[int]) -> None:
        """Take one more reference on pages already in use (e.g. a forked session)."""
        for page in pages:
            if self._refcount[page] == 0:
                raise ValueError(f"page {page} is free and cannot be shared")
            self._refcount[page] += 1

    def free(self, pages: list[int]) -> None:
        """Drop one reference per page; pages reaching zero return to the free list."""
        for page in pages:
            if self._refcount[page] == 0:
                raise ValueError(f"page {page} freed twice")
            self._refcount[page] -= 1
            if self._refcount[page] == 0:
                self._free.append(page)


class PageTable:
    """One session's pages by latent frame: ``frames(a, b)`` are the pages of frames a .. b - 1.

    Frames are appended in order; a sliding window frees the frames that fell out of it, and
    attention sinks keep the first few for good::

        frames   0  1 | 2  3  4  5 | 6  7  8
                 sink |  evicted   | held (window)      held_frames = [0, 1, 6, 7, 8]
    """

    def __init__(self, pool: PagePool) -> None:
        self.pool = pool
        self._pages: dict[int, int] = {}  # frame -> page, in frame order
        self.end_frame = 0  # frames appended so far (the next frame's index)

    def __len__(self) -> int:
        return len(self._pages)

    @property
    def pages(self) -> list[int]:
        """Held pages in frame order."""
        return list(self._pages.values())

    @property
    def held_frames(self) -> list[int]:
        return list(self._pages)

    @property
    def first_frame(self) -> int:
        """The oldest held frame (``end_frame`` when nothing is held)."""
        return next(iter(self._pages), self.end_frame)

    def append_frames(self, count: int) -> list[int]:
        new = self.pool.allocate(count)
        for page in new:
            self._pages[self.end_frame] = page
            self.end_frame += 1
        return new

    def __contains__(self, frame: int) -> bool:
        return frame in self._pages

    def page(self, frame: int) -> int:
        return self._pages[frame]

    def adopt_frames(self, frames: list[int]) -> list[int]:
        """New pages for ``frames`` (ascending, after every frame held): how a host table takes
        frames offloaded from a device table. Returns the pages."""
        last = next(reversed(self._pages), -1)
        if frames != sorted(frames) or (frames and frames[0] <= last):
            raise ValueError(f"frames {frames} must be ascending and after the last held frame {last}")
        new = self.pool.allocate(len(frames))
        self._pages.update(zip(frames, new))
        self.end_frame = max(self.end_frame, frames[-1] + 1) if frames else self.end_frame
        return new

    def frames(self, start: int, end: int) -> list[int]:
        """Pages of frames ``start .. end - 1`` (all held)."""
        try:
            return [self._pages[f] for f in range(start, end)]
        except KeyError:
            raise IndexError(f"frames {start}..{end - 1} not all held (holding {self.held_frames})") from None

    def fork(self) -> PageTable:
        """A second table over the same pages (one more reference each): copy-on-write sharing."""
        twin = PageTable(self.pool)
        self.pool.share(self.pages)
        twin._pages, twin.end_frame = dict(self._pages), self.end_frame
        return twin

    @classmethod
    def restore(cls, pool: PagePool, held_frames: list[int], end_frame: int) -> PageTable:
        """A table holding fresh pages for ``held_frames`` of a video ``end_frame`` frames long."""
        table = cls(pool)
        table._pages = dict(zip(held_frames, pool.allocate(len(held_frames))))
        table.end_frame = end_frame
        return table

    def make_private(self, start: int, end: int) -> None:
        """Give frames ``start .. end - 1`` pages of their own before they are rewritten: a page
        shared with a fork is swapped for a fresh one (its content is about to be replaced)."""
        for frame in range(start, end):
            page = self._pages[frame]
            if self.pool.refcount(page) > 1:
                self._pages[frame] = self.pool.allocate(1)[0]
                self.pool.free([page])

    def evict(self, start: int, end: int) -> None:
        """Free the pages of every held frame in ``start .. end - 1``."""
        gone = [f for f in self._pages if start <= f < end]
        self.pool.free([self._pages.pop(f) for f in gone])

    def release(self) -> None:
        self.pool.free(self.pages)
        self._pages.clear()
