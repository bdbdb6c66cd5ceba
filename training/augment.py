"""Training-time augmentation of sketches and photo edge maps (numpy in, numpy out)."""

from __future__ import annotations

import cv2
import numpy as np

from sketchdown.sketch.strokes import Sketch


def random_affine(rng: np.random.Generator, rot_deg: float = 8.0, scale: float = 0.1, shear: float = 0.1) -> np.ndarray:
    """A 2x2 linear map: rotation, anisotropic scale and shear."""
    a = np.deg2rad(rng.uniform(-rot_deg, rot_deg))
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    s = np.diag(rng.uniform(1 - scale, 1 + scale, 2))
    h = np.array([[1, rng.uniform(-shear, shear)], [0, 1]])
    return (r @ s @ h).astype(np.float32)


def augment_vector(sk: Sketch, rng: np.random.Generator, p_prefix: float = 0.25, p_drop: float = 0.1) -> Sketch:
    """Partial sketches (a prefix of the ink), dropped strokes and a small affine jitter."""
    if rng.random() < p_prefix:
        sk = sk.prefix_ink(rng.uniform(0.3, 1.0))
    strokes = list(sk.strokes)
    if len(strokes) > 2 and p_drop > 0:
        keep = [s for s in strokes if rng.random() > p_drop]
        strokes = keep or strokes[:1]
    m = random_affine(rng)
    return Sketch(tuple((s @ m.T).astype(np.float32) for s in strokes))


def augment_ink(ink: np.ndarray, rng: np.random.Generator, rot_deg: float = 8.0, scale: float = 0.1, shear: float = 0.1) -> np.ndarray:
    """Warp an ink map ``(H, W)`` float32 with a random affine about its centre (raster sketches, edges)."""
    h, w = ink.shape
    m = random_affine(rng, rot_deg, scale, shear)
    c = np.array([w / 2, h / 2], np.float32)
    t = c - m @ c
    return cv2.warpAffine(ink, np.hstack([m, t[:, None]]), (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


def augment_sketch(sk: Sketch, rng: np.random.Generator) -> Sketch:
    """Augment a vector sketch by its strokes, a raster one by its ink image."""
    if sk.is_raster:
        return Sketch((), raster=(augment_ink(sk.raster.astype(np.float32) / 255, rng) * 255).astype(np.uint8))
    return augment_vector(sk, rng)
