"""Photo -> pseudo-sketch: HED edges -> thin lines -> strokes ordered like a person draws.

Used to make sketch/photo training pairs for photos nobody has sketched (the default gallery), at
several abstraction levels, and to show users what the photo branch "sees".

    edges (h, w) float32 in [0, 1]  --threshold + thin-->  1-px skeleton
      --trace-->  polylines  --order: outline first, then long strokes first-->  Sketch (level 0)
      --drop short strokes, keep a share of the ink, simplify, jitter-->  Sketch (level 1, 2, ...)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sketchdown.sketch.strokes import Sketch, rdp

# 8-neighbour offsets (dy, dx), clockwise from north: the order Zhang-Suen's transition count needs
_NB = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


@dataclass(frozen=True)
class Level:
    """One abstraction level. Lengths are fractions of the edge map's long side."""

    min_len: float  # drop strokes shorter than this
    keep_ink: float  # keep the first strokes (drawing order) up to this share of the total ink
    max_strokes: int
    epsilon: float  # RDP tolerance
    jitter: float  # std of a smooth per-stroke offset


# level 0: a careful tracing; 2: what a hurried person draws (outline and a few long lines)
LEVELS: tuple[Level, ...] = (
    Level(min_len=0.02, keep_ink=1.0, max_strokes=200, epsilon=0.004, jitter=0.0),
    Level(min_len=0.05, keep_ink=0.75, max_strokes=40, epsilon=0.008, jitter=0.006),
    Level(min_len=0.08, keep_ink=0.5, max_strokes=15, epsilon=0.014, jitter=0.012),
)


def thin(mask: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """Zhang-Suen thinning of a binary mask ``(h, w)`` bool -> 1-px-wide skeleton, bool."""
    img = np.pad(mask.astype(np.uint8), 1)
    for _ in range(max_iter):
        changed = False
        for step in (0, 1):
            n = [np.roll(np.roll(img, -dy, 0), -dx, 1) for dy, dx in _NB]  # P2..P9
            b = sum(n)
            a = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)).astype(np.uint8) for i in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            # the two sub-iterations peel south-east and north-west boundary pixels in turn
            c = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0) if step == 0 else (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            kill = (img == 1) & (b >= 2) & (b <= 6) & (a == 1) & c
            if kill.any():
                img[kill] = 0
                changed = True
        if not changed:
            break
    return img[1:-1, 1:-1].astype(bool)


def trace(skel: np.ndarray) -> list[np.ndarray]:
    """Walk a skeleton into polylines: ``(N, 2)`` float32 (x, y) pixel coordinates, N >= 2.

    Starts from line ends (pixels with one neighbour) so open curves come out whole, then from
    whatever is left (closed loops). At a junction the walk keeps the straightest continuation,
    as a pen would; the other branches become strokes of their own.
    """
    h, w = skel.shape
    todo = skel.copy()
    pad = np.pad(skel.astype(np.uint8), 1)
    deg = sum(np.roll(np.roll(pad, -dy, 0), -dx, 1) for dy, dx in _NB)[1:-1, 1:-1] * skel
    ends = [tuple(p) for p in np.argwhere(deg == 1)]
    rest = [tuple(p) for p in np.argwhere(skel)]
    strokes: list[np.ndarray] = []
    for start in ends + rest:
        if not todo[start]:
            continue
        path = [start]
        todo[start] = False
        d = (0, 0)
        while True:
            y, x = path[-1]
            best, best_score = None, -9.0
            for dy, dx in _NB:
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and todo[yy, xx]:
                    # prefer going straight on; 4-neighbours before diagonals on ties
                    score = (dy * d[0] + dx * d[1]) / (np.hypot(dy, dx) * (np.hypot(*d) or 1)) - 0.01 * abs(dy * dx)
                    if score > best_score:
                        best, best_score = (yy, xx), score
            if best is None:
                break
            d = (best[0] - y, best[1] - x)
            todo[best] = False
            path.append(best)
        if len(path) >= 2:
            strokes.append(np.array([(x, y) for y, x in path], np.float32))
    return strokes


def _length(s: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(s, axis=0), axis=1).sum())


def order_strokes(strokes: list[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """Order strokes like a person draws: outline strokes first, each group longest first.

    The outline is the boundary of the filled silhouette of ``mask`` (edges closed and filled); a
    stroke is an outline stroke when most of its points lie near it.
    """
    if not strokes:
        return []
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    band = np.zeros_like(m)
    cv2.drawContours(band, contours, -1, 1, thickness=7)
    h, w = band.shape

    def outline_share(s: np.ndarray) -> float:
        xi = np.clip(s[:, 0].round().astype(int), 0, w - 1)
        yi = np.clip(s[:, 1].round().astype(int), 0, h - 1)
        return float(band[yi, xi].mean())

    keyed = [(outline_share(s) < 0.5, -_length(s), i) for i, s in enumerate(strokes)]
    return [strokes[i] for *_, i in sorted(keyed)]


def edges_to_strokes(edges: np.ndarray, threshold: float = 0.5) -> list[np.ndarray]:
    """HED edge probability ``(h, w)`` float in [0, 1] -> ordered polylines (level-0 raw strokes)."""
    if edges.ndim != 2:
        raise ValueError(f"edges must be (h, w), got shape {edges.shape}")
    mask = np.asarray(edges) > threshold
    if not mask.any():
        return []
    skel = thin(mask)
    return order_strokes(trace(skel), mask)


def abstract(
    strokes: list[np.ndarray], level: int, size: float, rng: np.random.Generator | None = None
) -> Sketch | None:
    """Apply abstraction ``level`` (index into :data:`LEVELS`) to ordered strokes on a ``size`` px map.

    Deterministic when ``rng`` is None (no jitter). None when no stroke survives (a blank photo).
    Raises ValueError for an unknown level.
    """
    if not 0 <= level < len(LEVELS):
        raise ValueError(f"level must be in 0..{len(LEVELS) - 1}, got {level}")
    lv = LEVELS[level]
    kept = [s for s in strokes if _length(s) >= lv.min_len * size]
    total = sum(_length(s) for s in kept)
    out, ink = [], 0.0
    for s in kept[: lv.max_strokes]:
        if out and ink >= lv.keep_ink * total:
            break
        ink += _length(s)
        s = rdp(s, lv.epsilon * size)
        if rng is not None and lv.jitter > 0:
            # a smooth wobble: offsets at the two ends, interpolated along the stroke
            t = np.linspace(0, 1, len(s), dtype=np.float32)[:, None]
            a, b = rng.normal(0, lv.jitter * size, (2, 2)).astype(np.float32)
            s = s + a * (1 - t) + b * t
        out.append(s.astype(np.float32))
    return Sketch(tuple(out)) if out else None


def pseudo_sketch(
    edges: np.ndarray, level: int = 0, rng: np.random.Generator | None = None, threshold: float = 0.5
) -> Sketch | None:
    """A photo's HED edges ``(h, w)`` float32 in [0, 1] -> a pseudo-sketch at abstraction ``level``,
    or None when the photo has no edge above ``threshold``."""
    return abstract(edges_to_strokes(edges, threshold), level, float(max(edges.shape)), rng)
