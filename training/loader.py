"""Batches made off the training loop: ``batches(make, seed, workers)`` yields ``make(rng)`` forever.

With ``workers == 0`` (the CPU default) the batches are made inline from one generator seeded with
``seed``, exactly as the training loops did before this module existed. With workers (the GPU default),
``workers`` background threads each run ``make`` with their own generator seeded by ``(seed, worker)``
and the loop takes their batches in turn (worker 0, 1, ..., 0, ...), so the stream is reproducible.
Threads, not forked processes: a process forked after torch's OpenMP pool has run can hang on its first
parallel op (it did, in CI), and rendering (cv2) and tensor ops release the GIL, so threads keep up.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

Make = Callable[[np.random.Generator], dict[str, Any]]
_PREFETCH = 4  # batches each worker may hold ready


def default_workers(device: torch.device, requested: int = -1) -> int:
    """``requested`` when >= 0; else 0 on CPU (the cores are busy with the model) and up to 6 on a GPU."""
    if requested >= 0:
        return requested
    return 0 if device.type == "cpu" else max(1, min(6, (os.cpu_count() or 2) - 1))


def _produce(make: Make, rng: np.random.Generator, out: queue.Queue, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            item: Any = make(rng)
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
    except BaseException as e:  # handed to the consumer, which raises it where the loop can see it
        out.put(e)


def batches(make: Make, seed: int, workers: int = 0) -> Iterator[dict[str, Any]]:
    """Endless batches ``make(rng)``; inline for ``workers == 0``, else from ``workers`` threads in turn.

    A worker's exception is raised by the consumer at that worker's turn; closing the generator stops
    the workers.
    """
    if workers <= 0:
        rng = np.random.default_rng(seed)
        while True:
            yield make(rng)
    stop = threading.Event()
    queues: list[queue.Queue] = [queue.Queue(maxsize=_PREFETCH) for _ in range(workers)]
    for i, q in enumerate(queues):
        rng = np.random.default_rng([seed, i])
        threading.Thread(target=_produce, args=(make, rng, q, stop), daemon=True, name=f"batches-{i}").start()
    try:
        while True:
            for q in queues:
                item = q.get()
                if isinstance(item, BaseException):
                    raise RuntimeError("a batch worker failed") from item
                yield item
    finally:
        stop.set()
