"""The renderer's line profile, measured, so a drawing made without OpenCV (the page's JavaScript) looks
like :func:`sketchdown.sketch.render.render_sketch`'s.

OpenCV's anti-aliased thick polylines are not a simple "coverage of a capsule": the body of a
thickness-3 line fades from full ink at 2 px from its axis to nothing at 3.5 px, while its ends fade
sooner (a flat polygon end plus a smaller round cap). :func:`fit_line_profile` measures that: it draws
random single segments with OpenCV exactly as the renderer does and averages the ink per (distance
beyond the segment's nearer end, distance from its axis), on a grid of ``step`` px. :func:`draw_profile`
draws a sketch from that table (each segment's ink looked up bilinearly, overlapping segments
composited as ``a + (1 - a) * b``); it is the reference the page's renderer (``webapp/static/web/sketch.js``)
reproduces line for line. On ChairV2 test it differs from OpenCV's drawing by 0.3% of the ink per pixel, and
the app's fused ranking agrees on the top-1 photo for 98.5% of the sketches (``tests/test_web.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from sketchdown.sketch.render import REF_SIZE, RenderSpec
from sketchdown.sketch.strokes import Sketch


@dataclass(frozen=True)
class LineProfile:
    """Ink in [0, 1] of one segment at grid node ``(i, j)``: ``i * step`` px beyond its nearer end
    (0 inside its length), ``j * step`` px from its axis. ``table`` is ``(NB, NP)`` float32; ink is 0
    at or beyond the last node of either axis."""

    table: np.ndarray
    step: float
    thickness: int

    def to_json(self) -> dict:
        return {"step": self.step, "thickness": self.thickness, "table": np.round(self.table, 5).tolist()}

    def ink(self, beyond: np.ndarray, perp: np.ndarray) -> np.ndarray:
        """Bilinear lookup: float64 arrays of equal shape -> ink in [0, 1]."""
        nb, npp = self.table.shape
        fb = np.minimum(beyond / self.step, nb - 1)
        fp = np.minimum(perp / self.step, npp - 1)
        b0 = np.minimum(np.floor(fb).astype(np.int64), nb - 2)
        p0 = np.minimum(np.floor(fp).astype(np.int64), npp - 2)
        wb, wp = fb - b0, fp - p0
        t = self.table.astype(np.float64)
        v = (t[b0, p0] * (1 - wb) * (1 - wp) + t[b0 + 1, p0] * wb * (1 - wp)
             + t[b0, p0 + 1] * (1 - wb) * wp + t[b0 + 1, p0 + 1] * wb * wp)
        return np.where((fb >= nb - 1) | (fp >= npp - 1), 0.0, v)


@functools.cache
def fit_line_profile(thickness: int = 3, step: float = 0.125, samples: int = 4000, seed: int = 1) -> LineProfile:
    """Measure OpenCV's anti-aliased line (``thickness`` px, 1/16 px coordinates as the renderer draws)
    on ``samples`` random segments 8-16 px long. Deterministic for a seed; about 2 s."""
    rng = np.random.default_rng(seed)
    reach = thickness / 2 + 2.5  # beyond this the measured ink is 0
    nb = npp = int(np.ceil(reach / step)) + 1
    acc = np.zeros((nb, npp))
    cnt = np.zeros((nb, npp))
    ys, xs = np.mgrid[0:64, 0:64].astype(np.float64)
    for _ in range(samples):
        a = rng.uniform(20, 44, 2)
        ang, length = rng.uniform(0, 2 * np.pi), rng.uniform(8, 16)
        ends = np.round(np.stack([a, a + length * np.array([np.cos(ang), np.sin(ang)])]) * 16)
        img = np.zeros((64, 64), np.uint8)
        cv2.polylines(img, [ends.astype(np.int32).reshape(-1, 1, 2)], False, 255, thickness, cv2.LINE_AA, 4)
        beyond, perp = _segment_coords(xs, ys, ends[0] / 16, ends[1] / 16)
        bi, pi = np.floor(beyond / step + 0.5).astype(int), np.floor(perp / step + 0.5).astype(int)  # nearest node
        m = (bi < nb) & (pi < npp)
        np.add.at(acc, (bi[m], pi[m]), img[m] / 255.0)
        np.add.at(cnt, (bi[m], pi[m]), 1)
    table = (acc / np.maximum(cnt, 1)).astype(np.float32)
    table[-1, :] = 0
    table[:, -1] = 0
    return LineProfile(table, step, thickness)


def _segment_coords(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel centre: (distance beyond the segment's nearer end along its axis, distance from the axis);
    a zero-length segment is a point (distance from it, 0)."""
    ab = b - a
    length = float(np.hypot(ab[0], ab[1]))
    if length < 1e-9:
        return np.hypot(xs - a[0], ys - a[1]), np.zeros_like(xs)
    ux, uy = ab / length
    along = (xs - a[0]) * ux + (ys - a[1]) * uy
    perp = np.abs((ys - a[1]) * ux - (xs - a[0]) * uy)
    return np.maximum(np.maximum(-along, along - length), 0.0), perp


def draw_profile(sketch: Sketch, big: int = REF_SIZE, spec: RenderSpec = RenderSpec(),
                 profile: LineProfile | None = None) -> np.ndarray:
    """The sketch drawn with ``profile`` (default: measured at the renderer's thickness for ``big``) on a
    ``big`` x ``big`` uint8 canvas (255 = ink), cropped and centred as :func:`render_sketch` does."""
    thickness = max(1, int(round(spec.line_width * big / REF_SIZE)))
    prof = profile or fit_line_profile(thickness)
    s = sketch.normalized(big, spec.margin)
    img = np.zeros((big, big), np.float64)
    reach = (prof.table.shape[0] - 1) * prof.step
    for st in s.strokes:
        p = np.round(st.astype(np.float64) * 16) / 16  # the renderer's 1/16 px precision
        p = p[np.r_[True, np.any(p[1:] != p[:-1], axis=1)]]  # a repeated point adds no segment
        segs = [(p[0], p[0])] if len(p) == 1 else list(zip(p[:-1], p[1:], strict=True))
        for a, b in segs:
            x0, x1 = max(0, int(np.floor(min(a[0], b[0]) - reach))), min(big - 1, int(np.ceil(max(a[0], b[0]) + reach)))
            y0, y1 = max(0, int(np.floor(min(a[1], b[1]) - reach))), min(big - 1, int(np.ceil(max(a[1], b[1]) + reach)))
            if x1 < x0 or y1 < y0:
                continue
            ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
            ink = prof.ink(*_segment_coords(xs, ys, a, b))
            win = img[y0 : y1 + 1, x0 : x1 + 1]
            win += (1 - win) * ink
    return np.floor(img * 255 + 0.5).astype(np.uint8)
