"""Batches made off the training loop: ``batches(make, seed, workers)`` yields ``make(rng)`` forever.

With ``workers == 0`` (the CPU default) the batches are made inline from one generator seeded with
``seed``, exactly as the training loops did before this module existed. With workers (the GPU default),
a ``DataLoader`` over an ``IterableDataset`` runs ``make`` in forked processes, each with its own
generator seeded by ``(seed, worker id)``, so rendering and augmentation (~1 ms a sample on one core)
keep up with a GPU step instead of stalling it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

Make = Callable[[np.random.Generator], dict[str, Any]]


class _Stream(IterableDataset):
    def __init__(self, make: Make, seed: int) -> None:
        super().__init__()
        self.make, self.seed = make, seed

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info is not None else 0])
        while True:
            yield self.make(rng)


def _one_thread(_: int) -> None:
    # every worker renders one batch at a time: intra-op threads would only fight the other workers
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def default_workers(device: torch.device, requested: int = -1) -> int:
    """``requested`` when >= 0; else 0 on CPU (the cores are busy with the model) and up to 6 on a GPU."""
    if requested >= 0:
        return requested
    return 0 if device.type == "cpu" else max(1, min(6, (os.cpu_count() or 2) - 1))


def batches(make: Make, seed: int, workers: int = 0) -> Iterator[dict[str, Any]]:
    """Endless batches ``make(rng)``; inline for ``workers == 0``, else in ``workers`` forked processes."""
    if workers <= 0:
        rng = np.random.default_rng(seed)
        while True:
            yield make(rng)
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    loader = DataLoader(_Stream(make, seed), batch_size=None, num_workers=workers, worker_init_fn=_one_thread,
                        prefetch_factor=4, persistent_workers=True, multiprocessing_context=ctx,
                        pin_memory=torch.cuda.is_available())
    yield from loader
