"""Fair turns for the heavy part of indexing, so one user's big upload cannot hold up another's.

Every indexing job (one per user upload) runs in its own Gradio worker thread, but the CPU- and
memory-heavy steps (decoding a photo, edge detection, embedding, the thumbnail) run only while the job
holds one of a few *turns* of a :class:`FairGate`. A job gives its turn back after every photo and
queues again behind the jobs already waiting, so with ``n`` jobs indexing at once a new job waits at
most about ``n / slots`` photos' worth of work per photo, whatever the size of the others' uploads, and
at most ``slots`` photos are decoded at any moment (memory stays bounded).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class FairGate:
    """At most ``slots`` holders at once, served in arrival order (FIFO, unlike ``threading.Semaphore``)."""

    def __init__(self, slots: int = 2) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.slots = slots
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._busy = 0

    @property
    def waiting(self) -> int:
        """Jobs queued for a turn right now."""
        with self._cond:
            return len(self._queue)

    def acquire(self) -> None:
        """Wait for a turn: until every job that queued earlier has one and a slot is free."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            self._cond.wait_for(lambda: self._queue[0] is ticket and self._busy < self.slots)
            self._queue.popleft()
            self._busy += 1
            self._cond.notify_all()  # the next in line may fit into another free slot

    def release(self) -> None:
        """Give a turn back."""
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def pass_turn(self) -> None:
        """Between two photos: let every job already waiting go first (a no-op when nobody waits)."""
        with self._cond:
            if not self._queue:
                return
        self.release()
        self.acquire()

    @contextmanager
    def turn(self) -> Iterator[FairGate]:
        """Hold a turn for the block; call :meth:`pass_turn` inside it between units of work."""
        self.acquire()
        try:
            yield self
        finally:
            self.release()
