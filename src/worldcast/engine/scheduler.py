"""Chooses which session runs its next block. Pure Python: no tensors."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from worldcast.cache.block_pool import PagePool


@dataclass(frozen=True)
class StepBatch:
    """What the runner does next: the next block of one session."""

    request_id: int


class Scheduler:
    """Round-robin over admitted sessions, one block per step.

    Each request states the most pages it will ever hold at once (its whole video, or its
    window plus one block). It is admitted, in arrival order, when that fits beside what the
    running sessions have reserved, so an admitted session never runs out of pages mid-way.
    """

    def __init__(self, pool: PagePool | None) -> None:
        self.pool = pool
        self.waiting: deque[tuple[int, int]] = deque()  # (request_id, pages needed)
        self.running: deque[int] = deque()
        self.reserved: dict[int, int] = {}  # running request -> pages it may hold

    def add(self, request_id: int, pages_needed: int) -> None:
        self.waiting.append((request_id, pages_needed))

    def admit(self) -> list[int]:
        """Move waiting requests that now fit to running, in arrival order; return their ids."""
        admitted = []
        while self.waiting:
            request_id, needed = self.waiting[0]
            if self.pool is not None and needed > self.pool.num_pages - sum(self.reserved.values()):
                break
            self.waiting.popleft()
            self.running.append(request_id)
            self.reserved[request_id] = needed
            admitted.append(request_id)
        return admitted

    def schedule(self) -> StepBatch | None:
        if not self.running:
            return None
        request_id = self.running[0]
        self.running.rotate(-1)
        return StepBatch(request_id)

    def remove(self, request_id: int) -> None:
        """Forget a finished or aborted request, running or still waiting."""
        if request_id in self.running:
            self.running.remove(request_id)
        self.reserved.pop(request_id, None)
        self.waiting = deque(w for w in self.waiting if w[0] != request_id)
