"""A tiny synthetic paired dataset for ``--smoke`` runs and tests: random polylines as "photos"
(their ink maps) and jittered copies of them as "sketches". No files, no HED, seconds to train."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sketchdown.eval.data import PairedDataset, SketchItem
from sketchdown.sketch.render import render_sketch
from sketchdown.sketch.strokes import Sketch

from .common import Source


def random_shape(rng: np.random.Generator) -> Sketch:
    strokes = []
    for _ in range(int(rng.integers(2, 5))):
        n = int(rng.integers(3, 8))
        strokes.append(rng.uniform(20, 236, size=(n, 2)).astype(np.float32))
    return Sketch(tuple(strokes))


def synthetic_source(n_photos: int = 12, sketches_per_photo: int = 3, seed: int = 0, name: str = "synthetic") -> Source:
    rng = np.random.default_rng(seed)
    shapes = [random_shape(rng) for _ in range(n_photos)]
    items = []
    for p, sh in enumerate(shapes):
        for k in range(sketches_per_photo):
            jit = tuple((s + rng.normal(0, 4, s.shape)).astype(np.float32) for s in sh.strokes)
            items.append(SketchItem(f"{p}_{k}", Sketch(jit), p))
    labels = [f"class{p % 3}" for p in range(n_photos)]
    data = PairedDataset(name, items, [Path(f"synthetic/{p}.png") for p in range(n_photos)], labels)
    inks = [render_sketch(sh, 128) for sh in shapes]
    by_photo: list[list[int]] = [[] for _ in shapes]
    for i, it in enumerate(items):
        by_photo[it.photo].append(i)
    return Source(name, data, inks, by_photo)


def category_level(src: Source) -> Source:
    """The same sketches with every photo of the sketch's label counting as right (doodle-style pairs)."""
    labels = src.data.photo_labels
    pos = [tuple(p for p, lb in enumerate(labels) if lb == labels[it.photo]) for it in src.data.sketches]
    data = PairedDataset(src.data.name, src.data.sketches, src.data.photos, labels, pos, "category")
    return Source(src.name, data, src.photo_ink, src.sketches_by_photo)
