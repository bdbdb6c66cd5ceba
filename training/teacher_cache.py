"""The VGG-16 teacher on a CPU: its frozen early blocks run once per input, not once per step.

With ``train_teacher --cache-blocks N`` (VGG-16, one shared trunk, ``--freeze-blocks`` >= N) every training
sketch is drawn as one of ``--cache-variants`` fixed variants (:func:`training.bank.bank_variants`: as drawn,
mirrored, augmented) and every photo's edge map as itself and mirrored, plus ``--cache-photo-variants - 1``
augmented copies of each; the trunk's first N blocks (and block N+1's max pool) turn each of them into a feature map once (float16,
at 256 px (256, 32, 32) after block 3: 512 KB; (512, 16, 16) after block 4: 256 KB), and each step trains only
blocks N+1..5 and the projections on a batch of cached maps. At 256 px blocks 1-3 are 61% of VGG-16's FLOPs and
blocks 1-4 91%. Pairs keep the on-the-fly path's rule: a sketch and its photo are mirrored together. Both the
cache and the training steps run under :func:`training.env.autocast` (bf16 on CPUs with native bf16).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch

from sketchdown.bundles.photo import PhotoSpec
from sketchdown.models.modules import VGGFeatures
from sketchdown.sketch.render import RenderSpec

from .augment import augment_ink
from .bank import bank_variants
from .common import Source, photo_tensor, sketch_tensor
from .env import autocast


def vgg_trunk(encoder: torch.nn.Module) -> VGGFeatures:
    bb = getattr(encoder, "backbone", None)
    if not isinstance(bb, VGGFeatures):
        raise SystemExit("--cache-blocks needs the VGG-16 teacher (--arch vgg16)")
    return bb


def prefix(bb: VGGFeatures, x: torch.Tensor, n: int) -> torch.Tensor:
    """The input mapping, the first ``n`` blocks and the next block's max pool (parameter-free, and a quarter
    of the values to cache): (B, 3, S, S) in [-1, 1] -> (B, C, S', S')."""
    x = bb.prepare(x)
    for block in bb.blocks[:n]:
        x = block(x)
    return bb.blocks[n].downsample(x) if n < len(bb.blocks) else x


def suffix(bb: VGGFeatures, x: torch.Tensor, n: int) -> torch.Tensor:
    """Blocks ``n + 1`` .. 5 (the first without its pool, which ``prefix`` ran): ``prefix(bb, x, n)`` -> the
    trunk's output."""
    for i, block in enumerate(bb.blocks[n:]):
        x = block.convolve(x) if i == 0 else block(x)
    return x


@dataclass
class FeatureCache:
    """Cached early-block features of one instance-level source.

    Sketch row ``i * V + v`` is variant ``v`` of sketch ``i`` (mirrored where ``sketch_flips``); photo row
    ``(p * 2 + f) * A + a`` is variant ``a`` of photo ``p``, mirrored when ``f`` (variant 0 as it is)."""

    blocks: int
    variants: int  # V
    photo_variants: int  # A
    sketch: torch.Tensor  # (n_sketches * V, C, h, w) float16
    sketch_flips: np.ndarray  # (n_sketches * V,) bool
    photo: torch.Tensor  # (n_photos * 2 * A, C, h, w) float16

    def photo_row(self, p: int, flip: bool, a: int) -> int:
        return (p * 2 + int(flip)) * self.photo_variants + a


@torch.inference_mode()
def build_cache(bb: VGGFeatures, src: Source, blocks: int, canvas: int, photo_size: int, variants: int,
                photo_variants: int, seed: int, render: RenderSpec = RenderSpec(), bs: int = 16) -> FeatureCache:
    """Run the first ``blocks`` blocks over every variant of ``src``'s sketches and photos (see the module)."""
    if src.kinds is not None:
        raise SystemExit("--cache-blocks trains on instance-level sources only (ChairV2: --no-use-sketchy --mix 1)")
    was = bb.training
    bb.eval()
    sketches, flips = bank_variants(src, variants, seed)
    sk = _run(bb, blocks, len(sketches), bs, lambda j, k: sketch_tensor(sketches[j:k], canvas, render, flips[j:k]), "sketch")
    spec = PhotoSpec("hed", photo_size)
    inks, pflips = [], []
    for p, ink in enumerate(src.photo_ink):
        for f in (False, True):
            for a in range(photo_variants):
                rng = np.random.default_rng([seed, 7, p, int(f), a])
                inks.append(ink if a == 0 else augment_ink(ink, rng, rot_deg=3, scale=0.05, shear=0.03))
                pflips.append(f)
    pf = np.array(pflips, bool)
    ph = _run(bb, blocks, len(inks), bs, lambda j, k: photo_tensor(inks[j:k], spec, render, pf[j:k]), "photo")
    bb.train(was)
    return FeatureCache(blocks, variants, photo_variants, sk, flips, ph)


def _run(bb: VGGFeatures, blocks: int, n: int, bs: int, make, what: str) -> torch.Tensor:
    out: torch.Tensor | None = None  # filled in place: a list of batches and their torch.cat would need twice the memory
    for j in range(0, n, bs):
        x = make(j, min(n, j + bs)).contiguous(memory_format=torch.channels_last)
        with autocast(x.device):  # bf16 where native (~5x faster on this CPU); stored as float16 anyway
            f = prefix(bb, x, blocks).half()
        if out is None:
            out = torch.empty((n, *f.shape[1:]), dtype=torch.float16)
        out[j : j + len(f)] = f
        if j // bs % 25 == 0:
            print(f"feature cache: {min(n, j + bs)}/{n} {what} inputs", file=sys.stderr, flush=True)
    assert out is not None, "nothing to cache"
    return out


def sample_cached(cache: FeatureCache, src: Source, batch: int, rng: np.random.Generator,
                  class_index: dict[str, int]) -> dict:
    """A batch as :func:`training.common.sample_batch` draws one (distinct photos, one sketch each), from
    the cache: sketch features (B, C, h, w), their photos' features mirrored as the sketch variant is, labels."""
    n = len(src.data.photos)
    photos = [int(p) for p in rng.choice(n, size=min(batch, n), replace=False)]
    srows, prows, labels = [], [], []
    for p in photos:
        i = int(rng.choice(src.sketches_by_photo[p]))
        r = i * cache.variants + int(rng.integers(cache.variants))
        srows.append(r)
        prows.append(cache.photo_row(p, bool(cache.sketch_flips[r]), int(rng.integers(cache.photo_variants))))
        labels.append(class_index.get(src.data.photo_labels[p], -1))
    return {"fs": cache.sketch[srows].float(), "fp": cache.photo[prows].float(), "labels": torch.tensor(labels),
            "src": src.name}


def embed_cached(encoder: torch.nn.Module, feats: torch.Tensor, blocks: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An :class:`~sketchdown.models.modules.EmbeddingEncoder`'s (embedding, logits) from cached features,
    exactly as ``forward_with_logits`` computes them from the input."""
    f = suffix(vgg_trunk(encoder), feats.contiguous(memory_format=torch.channels_last), blocks).mean((2, 3))
    logits = encoder.classifier(f) if encoder.classifier is not None else None
    return encoder.forward_head(f), logits
