"""A fixed bank of augmented training sketches with the teacher's embedding of each, for distillation on a CPU.

On a GPU the teacher embeds every freshly augmented batch (VGG-16 at 256 px: ~5 ms for 48 sketches in
bf16). On a 2-core CPU that is ~15 s a step, ten times the student's own step, so ``distill --bank N``
draws each training sketch as one of N fixed variants instead (variant 0 as drawn, variant 1 its mirror
image, the others augmented like the on-the-fly path, half of them mirrored) whose teacher embeddings were
computed once and cached. Variants are generated from ``(seed, sketch, variant)`` alone, so the cache holds
only the embeddings and the mirror flags, and any process rebuilds the same sketches from it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sketchdown.bundles.weights import sha256_file
from sketchdown.sketch.render import RenderSpec
from sketchdown.sketch.strokes import Sketch

from .augment import augment_sketch
from .checkpoints import load_checkpoint, save_checkpoint
from .common import Source, sketch_tensor
from .env import autocast, bf16_native


@dataclass
class SketchBank:
    """N variants of every sketch of one source. Variant ``v`` of sketch ``i`` is row ``i * N + v``."""

    variants: int
    sketches: list[Sketch]  # (n * N,) the variants, unmirrored
    flips: np.ndarray  # (n * N,) bool: the variant is mirrored
    teacher: torch.Tensor  # (n * N, D) float32 teacher sketch embedding of the (mirrored) variant

    def row(self, sketch: int, rng: np.random.Generator) -> int:
        return sketch * self.variants + int(rng.integers(self.variants))


def bank_variants(src: Source, variants: int, seed: int) -> tuple[list[Sketch], np.ndarray]:
    """The variants of every sketch of ``src`` and their mirror flags, a function of ``seed`` alone."""
    sketches, flips = [], []
    for i in range(len(src.data.sketches)):
        base = src.sketch(i)
        for v in range(variants):
            rng = np.random.default_rng([seed, i, v])
            sketches.append(base if v < 2 else augment_sketch(base, rng))
            flips.append(v == 1 or (v >= 2 and bool(rng.random() < 0.5)))
    return sketches, np.array(flips, bool)


@torch.inference_mode()
def build_bank(src: Source, teacher: torch.nn.Module, canvas: int, variants: int, seed: int = 0,
               cache: Path | None = None, key: str = "", render: RenderSpec = RenderSpec(), bs: int = 32) -> SketchBank:
    """The bank of ``src`` for ``teacher`` at ``canvas``; loaded from ``cache`` when its key matches ``key``."""
    sketches, flips = bank_variants(src, variants, seed)
    dev = next(teacher.parameters()).device
    # the precision is part of the key: bf16 embeddings (CPUs with native bf16, ~5x faster) differ from fp32 ones
    full_key = json.dumps([key, src.name, len(sketches), variants, seed, canvas, "bf16" if bf16_native(dev) else "fp32"])
    if cache is not None and cache.is_file():
        ck = load_checkpoint(cache)
        if ck.get("key") == full_key:
            return SketchBank(variants, sketches, flips, ck["teacher"])
    teacher.eval()
    out = []
    for j in range(0, len(sketches), bs):
        x = sketch_tensor(sketches[j : j + bs], canvas, render, flips[j : j + bs]).to(dev, memory_format=torch.channels_last)
        with autocast(dev):
            out.append(teacher(x).float().cpu())
        if j // bs % 20 == 0:
            print(f"bank {src.name}: {j + len(x)}/{len(sketches)} variants embedded", file=sys.stderr, flush=True)
    emb = torch.cat(out)
    if cache is not None:
        save_checkpoint(cache, key=full_key, teacher=emb)
    return SketchBank(variants, sketches, flips, emb)


def teacher_key(path: str | os.PathLike) -> str:
    """What a bank depends on besides the data: the teacher checkpoint's bytes (sha256)."""
    return sha256_file(path)
