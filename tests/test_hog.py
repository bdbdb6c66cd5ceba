"""sketchdown/hog.py against a per-pixel loop reference, its hand-counted FLOPs, and its errors."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from sketchdown.sketch.hog import HogSpec, hog_descriptor, hog_flops, ink_hogs, sketch_hogs
from sketchdown.sketch.render import render_ink, render_sketch
from sketchdown.sketch.strokes import Sketch


def reference_hog(img: np.ndarray, spec: HogSpec) -> np.ndarray:
    """Textbook HOG, one pixel at a time (no blur): central differences, bilinear orientation votes,
    2x2-cell blocks with L2-Hys, then an L2-normalised vector."""
    S, c, nb = spec.size, spec.cells[0], spec.bins
    n = S // c
    hist = np.zeros((n, n, nb))
    for y in range(S):
        for x in range(S):
            gx = float(img[y, x + 1] - img[y, x - 1]) if 0 < x < S - 1 else 0.0
            gy = float(img[y + 1, x] - img[y - 1, x]) if 0 < y < S - 1 else 0.0
            mag = math.hypot(gx, gy)
            pos = (math.atan2(gy, gx) % math.pi) * nb / math.pi
            lo = math.floor(pos)
            hist[y // c, x // c, lo % nb] += mag * (1 - (pos - lo))
            hist[y // c, x // c, (lo + 1) % nb] += mag * (pos - lo)
    out = []
    for by in range(n - 1):
        for bx in range(n - 1):
            v = np.concatenate([hist[by, bx], hist[by + 1, bx], hist[by, bx + 1], hist[by + 1, bx + 1]])
            v = v / (np.linalg.norm(v) + 1e-6)
            v = np.minimum(v, 0.2)
            out.append(v / (np.linalg.norm(v) + 1e-6))
    # the vectorised version orders blocks (row, col) with cells stacked [tl, bl, tr, br]
    f = np.stack(out).reshape(n - 1, n - 1, -1).reshape(-1)
    return f / (np.linalg.norm(f) + 1e-8)


def test_matches_loop_reference() -> None:
    spec = HogSpec(size=32, cells=(8,), blurs=(0.0,))
    rng = np.random.default_rng(0)
    img = (rng.random((32, 32)) ** 6).astype(np.float32)
    np.testing.assert_allclose(hog_descriptor(img, spec), reference_hog(img, spec), atol=1e-5)
    assert hog_descriptor(img, spec).shape == (spec.dim,) == (3 * 3 * 4 * 9,)


def test_pyramid_is_the_scaled_concatenation_of_its_levels() -> None:
    img = (np.random.default_rng(3).random((32, 32)) ** 6).astype(np.float32)
    both = hog_descriptor(img, HogSpec(32, (8, 16), (0.0, 1.0)))
    parts = [hog_descriptor(img, HogSpec(32, (8,), (0.0,))), hog_descriptor(img, HogSpec(32, (16,), (1.0,)))]
    np.testing.assert_allclose(both, np.concatenate(parts) / np.sqrt(2), atol=1e-6)
    assert both.shape == (3 * 3 * 36 + 1 * 1 * 36,)


def test_blur_is_a_gaussian_before_the_gradients() -> None:
    spec = HogSpec(size=32, cells=(8,), blurs=(1.5,))
    img = (np.random.default_rng(1).random((32, 32)) > 0.9).astype(np.float32)
    k = HogSpec.kernel(1.5)
    assert k == 11  # 2 * ceil(3 * 1.5) + 1
    pre = cv2.GaussianBlur(img, (k, k), 1.5, borderType=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(hog_descriptor(img, spec), hog_descriptor(pre, HogSpec(32, (8,), (0.0,))), atol=1e-6)


def test_batch_equals_single_and_blank_is_zero() -> None:
    spec = HogSpec(size=32, cells=(8,), blurs=(1.0,))
    imgs = (np.random.default_rng(2).random((3, 32, 32)) ** 4).astype(np.float32)
    batch = hog_descriptor(imgs, spec)
    for i in range(3):
        np.testing.assert_allclose(batch[i], hog_descriptor(imgs[i], spec), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    assert not hog_descriptor(np.zeros((32, 32), np.float32), spec).any()


def test_line_orientation_lands_in_the_right_bin() -> None:
    # a vertical line has horizontal gradients: orientation 0, i.e. bin 0 (and wrap-around bin 8)
    spec = HogSpec(size=32, cells=(8,), blurs=(0.0,))
    img = np.zeros((32, 32), np.float32)
    img[:, 15:17] = 1.0
    h = hog_descriptor(img, spec).reshape(3, 3, 4, 9).sum((0, 1, 2))
    assert h.argmax() == 0 and h[0] > 0.9 * h.sum()


def test_flops_hand_count() -> None:
    # size 32, cell 8, blur 1 -> kernel 7: per pixel 4*7 (blur) + 2 + 4 + 6 + 4 = 44, 1024 pixels;
    # 3x3 blocks of 36 values x 9; level normalisation 3 x 324; the 1/sqrt(levels) scale 324
    assert hog_flops(HogSpec(32, (8,), (1.0,))) == 1024 * 44 + 9 * 36 * 9 + 3 * 324 + 324
    # a second level (cell 16, no blur: 16 per pixel, one block of 36) adds its own count
    assert hog_flops(HogSpec(32, (8, 16), (1.0, 0.0))) == (1024 * 44 + 9 * 36 * 9 + 3 * 324) + (1024 * 16 + 36 * 9 + 3 * 36) + 360
    # the default spec costs a few megaFLOPs (mostly the blur): ~1% of the student at 96 px
    assert 1e6 < hog_flops(HogSpec()) < 5e6


def test_sketch_and_ink_helpers_render_like_the_encoders() -> None:
    spec = HogSpec(size=32, cells=(8,), blurs=(1.0,))
    sk = Sketch((np.array([[0, 0], [50, 80], [100, 0]], np.float32),))
    np.testing.assert_allclose(sketch_hogs([sk], spec)[0], hog_descriptor(render_sketch(sk, 32), spec), atol=1e-6)
    ink = render_sketch(sk, 200)
    np.testing.assert_allclose(ink_hogs([ink], spec)[0], hog_descriptor(render_ink(ink, 32), spec), atol=1e-6)
    assert sketch_hogs([], spec).shape == (0, spec.dim)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="multiple of cell"):
        HogSpec(size=30, cells=(8,), blurs=(0.0,))
    with pytest.raises(ValueError, match="bad HOG spec"):
        HogSpec(blurs=(-1.0, 1.0))
    with pytest.raises(ValueError, match="one blur per cell"):
        HogSpec(cells=(16, 32), blurs=(1.0,))
    with pytest.raises(ValueError, match="expected ink of shape"):
        hog_descriptor(np.zeros((16, 16), np.float32), HogSpec(size=32, cells=(8,), blurs=(0.0,)))
    # a manifest's lists become tuples (the spec is hashable and compares equal)
    assert HogSpec(**HogSpec().to_dict()) == HogSpec()
