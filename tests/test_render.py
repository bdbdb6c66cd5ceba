"""sketchdown/render.py: canvases drawn from strokes and ink maps, and the network input tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sketchdown.sketch.render import RenderSpec, crop_square, ink_to_tensor, render_ink, render_sketch, rgb_to_tensor
from sketchdown.sketch.strokes import Sketch, from_raster


def _sk(*strokes) -> Sketch:
    return Sketch(tuple(np.asarray(s, np.float32).reshape(-1, 2) for s in strokes))


HOUSE = _sk([[0, 3], [0, 1], [1.5, 0], [3, 1], [3, 3], [0, 3]], [[1, 3], [1, 2], [2, 2], [2, 3]])


def _ink_bbox(img: np.ndarray, thr: float = 0.1) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(img > thr)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.parametrize("size", [32, 64, 128, 224, 300])
def test_render_shape_dtype_range(size: int) -> None:
    img = render_sketch(HOUSE, size)
    assert img.shape == (size, size) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert img.max() > 0.5 and 0.0 < (img > 0.1).mean() < 0.5  # ink, on mostly empty paper
    # bbox-cropped: the drawing spans the canvas minus the margin (both sides)
    x0, y0, x1, y1 = _ink_bbox(img)
    span = max(x1 - x0, y1 - y0) + 1
    assert span == pytest.approx(size * (1 - 2 * RenderSpec().margin), rel=0.1)
    assert (x0 + x1) / 2 == pytest.approx((size - 1) / 2, abs=0.05 * size)  # centred


def test_render_size_bounds() -> None:
    for bad in (4, 7, 4096):
        with pytest.raises(ValueError, match="canvas size"):
            render_sketch(HOUSE, bad)


def test_render_is_bbox_cropped() -> None:
    """A tiny sketch and the same sketch scaled x10 and moved draw the same canvas."""
    big = Sketch(tuple(s * 10 + np.float32(5000) for s in HOUSE.strokes))
    for size in (64, 128):
        a, b = render_sketch(HOUSE, size), render_sketch(big, size)
        assert np.abs(a - b).max() < 0.05


@pytest.mark.parametrize("spec", [RenderSpec(), RenderSpec(line_width=5.0, margin=0.1)])
def test_line_width_scales_with_canvas(spec: RenderSpec) -> None:
    """Lines are defined on the 256 canvas, so the share of ink is about the same at every size."""
    frac = {s: float(render_sketch(HOUSE, s, spec).mean()) for s in (64, 128, 256)}
    assert max(frac.values()) / min(frac.values()) < 1.15


def test_line_width_setting_is_honoured() -> None:
    """Measured stroke width (ink per unit length on the 256 canvas) grows with line_width.

    cv2's anti-aliased lines come out ~2.6 px wider than the nominal thickness (3 -> 5.6 px), and
    widths 3 and 4 draw alike; training and inference share this path, so only the nominal value is off.
    """
    lines = Sketch((np.array([[0, 0], [100, 0]], np.float32), np.array([[0, 100], [100, 100]], np.float32)))
    width = {}
    for lw in (1.0, 2.0, 3.0, 6.0, 8.0):
        img = render_sketch(lines, 256, RenderSpec(line_width=lw))
        width[lw] = float(img[:, 128].sum()) / 2  # two horizontal lines crossed by one column
        assert lw <= width[lw] <= lw + 3.0
    assert width[1.0] < width[2.0] < width[3.0] < width[6.0] < width[8.0]


def test_single_point_strokes_draw_dots() -> None:
    dot = _sk([[10, 10]])
    assert render_sketch(dot, 256).max() == 1.0
    img = render_sketch(dot, 64)
    assert img.max() > 0.15  # a ~3 px dot on the 256 canvas, area-averaged 4x
    ys, xs = np.nonzero(img > 0.1)
    assert abs(xs.mean() - 31.5) < 1.5 and abs(ys.mean() - 31.5) < 1.5  # the lone dot is centred
    # dots and zero-length strokes inside a drawing leave ink where they are
    s = _sk([[0, 0], [100, 0]], [[50, 100]], [[100, 100], [100, 100]])
    img = render_sketch(s, 128)
    n = s.normalized(256, RenderSpec().margin)
    for st in n.strokes[1:]:
        x, y = (st[0] / 2).astype(int)  # 256 -> 128 canvas
        assert img[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].max() > 0.3


def test_raster_sketch_uses_render_ink() -> None:
    paper = np.full((120, 90), 255, np.uint8)
    paper[10:30, 5:25] = 0  # a filled square in a corner: lots of blank paper around it
    paper[12:28, 7:23] = 255
    sk = from_raster(paper)
    img = render_sketch(sk, 64)
    np.testing.assert_array_equal(img, render_ink(sk.raster.astype(np.float32) / 255.0, 64))
    assert img.shape == (64, 64) and img.dtype == np.float32 and img.max() <= 1.0
    x0, y0, x1, y1 = _ink_bbox(img, 0.3)
    assert max(x1 - x0, y1 - y0) + 1 == pytest.approx(64 * (1 - 2 * RenderSpec().margin), abs=3)


def test_crop_square_hand_case() -> None:
    ink = np.zeros((100, 100), np.float32)
    ink[10:20, 30:35] = 1.0  # 10 tall, 5 wide
    out = crop_square(ink, RenderSpec(margin=0.1))
    side = int(np.ceil(10 / 0.8))  # 13
    assert out.shape == (side, side)
    ref = np.zeros((side, side), np.float32)
    ref[(side - 10) // 2 : (side - 10) // 2 + 10, (side - 5) // 2 : (side - 5) // 2 + 5] = 1.0
    np.testing.assert_array_equal(out, ref)
    blank = np.zeros((7, 9), np.float32)
    assert crop_square(blank) is blank


def test_ink_to_tensor() -> None:
    ink = np.zeros((2, 8, 8), np.float32)
    ink[0, 2, 3] = 1.0
    ink[1, 4, 4] = 0.5
    t = ink_to_tensor(ink)
    assert t.shape == (2, 3, 8, 8) and t.dtype == torch.float32
    assert torch.equal(t[:, 0], t[:, 1]) and torch.equal(t[:, 0], t[:, 2])
    assert t[0, 0, 0, 0] == 1.0 and t[0, 0, 2, 3] == -1.0 and t[1, 0, 4, 4] == 0.0  # paper +1, ink -1
    assert ink_to_tensor(ink[0]).shape == (1, 3, 8, 8)
    assert ink_to_tensor([ink[0], ink[1]]).shape == (2, 3, 8, 8)
    np.testing.assert_allclose(ink_to_tensor(ink).numpy(), np.repeat(1 - 2 * ink[:, None], 3, 1))


def test_rgb_to_tensor() -> None:
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255
    rgb[1, 2] = (0, 128, 255)
    t = rgb_to_tensor(rgb)
    assert t.shape == (1, 3, 4, 5)
    assert t[0, 0, 0, 0] == 1.0 and t[0, 1, 0, 0] == -1.0
    np.testing.assert_allclose(t[0, :, 1, 2].numpy(), [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-6)


def test_render_sketch_sizes_equals_render_sketch() -> None:
    """Drawing once and downsampling gives exactly the per-size renders (vector, above the reference size,
    and raster sketches)."""
    from sketchdown.sketch.render import render_sketch_sizes

    rng = np.random.default_rng(3)
    vec = Sketch(tuple(rng.uniform(0, 200, (int(n), 2)).astype(np.float32) for n in (5, 1, 9)))
    ras = Sketch((), raster=(rng.random((90, 70)) > 0.97).astype(np.uint8) * 255)
    sizes = (32, 64, 96, 128, 256, 300)
    for sk in (vec, ras):
        got = render_sketch_sizes(sk, sizes)
        assert list(got) == list(sizes)
        for s in sizes:
            np.testing.assert_array_equal(got[s], render_sketch(sk, s))
    with pytest.raises(ValueError, match="canvas size"):
        render_sketch_sizes(vec, (32, 4))
