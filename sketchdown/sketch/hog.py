"""HOG (histogram of oriented gradients) on bbox-cropped ink maps: a non-learned spatial descriptor
fused with the learned embeddings.

Why: on ChairV2 a HOG of the bbox-cropped sketch against the HED edge map of the photo is a strong
fine-grained cue (it keeps *where* each line is), and the CPU-trained encoders miss part of it. Fusing
the two similarities (one weighted inner product, so faiss still does the search) lifts Acc@1 far more
than anything the encoders gain from more CPU training, for about a megaFLOP per query.

A level is ``(cells-1)^2`` blocks of 2x2 cells x ``bins`` unsigned orientations, each block L2-Hys
normalised (clip 0.2), the level vector L2-normalised; levels (cell sizes) are concatenated. Input: float32 ink in [0, 1]
``(S, S)`` or ``(B, S, S)`` with ``S == spec.size`` (from :func:`~sketchdown.sketch.render.render_sketch`
or :func:`~sketchdown.sketch.render.render_ink`, so sketch and photo are cropped and scaled alike).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from sketchdown.sketch.render import RenderSpec, render_ink, render_sketches
from sketchdown.sketch.strokes import Sketch


@dataclass(frozen=True)
class HogSpec:
    """HOG parameters. Saved in the manifest: the gallery's photo vectors depend on them.

    One level per entry of ``cells`` (a spatial pyramid: fine cells keep where lines are, coarse
    cells tolerate a sketch's wobble), each with its own Gaussian blur; the levels' unit vectors are
    concatenated and scaled by 1/sqrt(levels), so the descriptor's cosine is the mean level cosine."""

    size: int = 128  # canvas the sketch / edge map is rendered at
    cells: tuple[int, ...] = (16, 32)  # pixels per cell side, one pyramid level each
    blurs: tuple[float, ...] = (3.0, 4.0)  # Gaussian sigma in pixels before each level's gradients
    bins: int = 9  # unsigned orientations over [0, pi)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", tuple(int(c) for c in self.cells))  # manifests hold lists
        object.__setattr__(self, "blurs", tuple(float(b) for b in self.blurs))
        if not self.cells or len(self.cells) != len(self.blurs):
            raise ValueError(f"bad HOG spec: one blur per cell size, got cells={self.cells}, blurs={self.blurs}")
        for c in self.cells:
            if c <= 0 or self.size % c or self.size // c < 2:
                raise ValueError(f"HOG size {self.size} must be a multiple of cell {c}, at least 2 cells")
        if self.bins < 2 or min(self.blurs) < 0:
            raise ValueError(f"bad HOG spec: bins={self.bins}, blurs={self.blurs}")

    def level_dim(self, cell: int) -> int:
        n = self.size // cell - 1
        return n * n * 4 * self.bins

    @property
    def dim(self) -> int:
        return sum(self.level_dim(c) for c in self.cells)

    @staticmethod
    def kernel(blur: float) -> int:
        """Gaussian kernel side for ``blur`` (0: no blur)."""
        return 2 * math.ceil(3 * blur) + 1 if blur > 0 else 0

    def to_dict(self) -> dict:
        return asdict(self)  # JSON writes the tuples as lists; __post_init__ turns them back


def _level(a: np.ndarray, cell: int, bins: int, blur: float) -> np.ndarray:
    """One pyramid level: ``(B, S, S)`` -> ``(B, D_level)`` unit vectors (zero for a blank map)."""
    if blur > 0:
        k = HogSpec.kernel(blur)
        a = np.stack([cv2.GaussianBlur(x, (k, k), blur, borderType=cv2.BORDER_REPLICATE) for x in a])
    # central differences, zero at the border (the border of a bbox-cropped canvas is blank margin)
    gx = np.zeros_like(a)
    gy = np.zeros_like(a)
    gx[:, :, 1:-1] = a[:, :, 2:] - a[:, :, :-2]
    gy[:, 1:-1, :] = a[:, 2:, :] - a[:, :-2, :]
    mag = np.hypot(gx, gy)
    pos = (np.arctan2(gy, gx) % np.pi) * (bins / np.pi)  # [0, bins]
    lo = np.floor(pos)
    w_hi = pos - lo
    b0 = lo.astype(np.int64) % bins
    b1 = (b0 + 1) % bins  # linear interpolation between the two nearest bins (wraps at pi)
    B, S = a.shape[0], a.shape[1]
    n = S // cell
    cid = np.arange(S) // cell
    cell_id = (cid[:, None] * n + cid[None, :])[None] + (np.arange(B) * n * n)[:, None, None]
    size = B * n * n * bins
    hist = np.bincount((cell_id * bins + b0).ravel(), (mag * (1 - w_hi)).ravel(), size)
    hist += np.bincount((cell_id * bins + b1).ravel(), (mag * w_hi).ravel(), size)
    h = hist.reshape(B, n, n, bins)
    blocks = np.concatenate([h[:, :-1, :-1], h[:, 1:, :-1], h[:, :-1, 1:], h[:, 1:, 1:]], -1)
    blocks = blocks / (np.linalg.norm(blocks, axis=-1, keepdims=True) + 1e-6)
    blocks = np.minimum(blocks, 0.2)
    blocks = blocks / (np.linalg.norm(blocks, axis=-1, keepdims=True) + 1e-6)
    f = blocks.reshape(B, -1)
    return f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-8)


def hog_descriptor(ink: np.ndarray, spec: HogSpec = HogSpec()) -> np.ndarray:
    """HOG of ink maps: ``(S, S)`` -> ``(D,)`` or ``(B, S, S)`` -> ``(B, D)``, float32, unit L2 norm
    (all zero for a blank map)."""
    a = np.asarray(ink, np.float32)
    single = a.ndim == 2
    if single:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (spec.size, spec.size):
        raise ValueError(f"expected ink of shape ({spec.size}, {spec.size}) or (B, {spec.size}, {spec.size}), got {a.shape}")
    f = np.concatenate([_level(a, c, spec.bins, b) for c, b in zip(spec.cells, spec.blurs, strict=True)], 1)
    f = (f / math.sqrt(len(spec.cells))).astype(np.float32)
    return f[0] if single else f


@functools.cache  # read on every stroke; a spec is frozen and hashable
def hog_flops(spec: HogSpec = HogSpec()) -> int:
    """Arithmetic of one descriptor, counted by hand (a multiply-add = 2 FLOPs). Per level: separable
    blur 2 passes x k taps x 2, gradients 2, magnitude 4 (2 mul, add, sqrt), orientation + bin weights
    6, two weighted votes 4, per pixel; then per block 4*bins values x (L2 norm 3 + scale 1) x 2
    passes + clip, and the level's normalisation 3 per value; the 1/sqrt(levels) scale 1 per value."""
    total = spec.dim
    for cell, blur in zip(spec.cells, spec.blurs, strict=True):
        n = spec.size // cell - 1
        per_pixel = 4 * HogSpec.kernel(blur) + 2 + 4 + 6 + 4
        total += spec.size * spec.size * per_pixel + n * n * 4 * spec.bins * (2 * 4 + 1) + 3 * spec.level_dim(cell)
    return int(total)


def sketch_hogs(sketches: list[Sketch], spec: HogSpec, render: RenderSpec = RenderSpec(), bs: int = 256) -> np.ndarray:
    """HOG ``(N, D)`` of sketches drawn at ``spec.size`` (bbox-cropped, like the encoders' input)."""
    if not sketches:
        return np.zeros((0, spec.dim), np.float32)
    return np.concatenate([hog_descriptor(render_sketches(sketches[j : j + bs], spec.size, render), spec)
                           for j in range(0, len(sketches), bs)])


def ink_hogs(inks: list[np.ndarray], spec: HogSpec, render: RenderSpec = RenderSpec(), bs: int = 256) -> np.ndarray:
    """HOG ``(N, D)`` of ink maps (photo edge maps, any size), bbox-cropped to ``spec.size``."""
    if not inks:
        return np.zeros((0, spec.dim), np.float32)
    return np.concatenate([
        hog_descriptor(np.stack([render_ink(i, spec.size, render) for i in inks[j : j + bs]]), spec)
        for j in range(0, len(inks), bs)
    ])


def fuse_queries(embeddings: np.ndarray, hogs: np.ndarray | None, alpha: float, spec: HogSpec) -> np.ndarray:
    """Search vectors ``[embedding, alpha * HOG]`` ``(N, D + spec.dim)`` float32 for a gallery of
    ``[embedding, HOG]`` vectors, so the inner product is ``cos + alpha * cos(HOG)``. ``hogs`` (N, spec.dim)
    may be None when ``alpha`` is 0: the HOG part is then zeros (the network's similarity alone)."""
    e = np.atleast_2d(np.asarray(embeddings, np.float32))
    h = np.zeros((len(e), spec.dim), np.float32) if hogs is None or alpha <= 0 else alpha * np.atleast_2d(hogs)
    return np.concatenate([e, h], 1).astype(np.float32)
