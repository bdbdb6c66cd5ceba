"""Rasterisation shared by training and inference: one code path, so a canvas is drawn identically.

Strokes are drawn anti-aliased at a reference resolution (>= 256) with a line width defined on the
256 canvas, then area-downsampled to the target canvas, so the line width scales with the canvas.
Output convention: float32 ink in [0, 1] (1 = ink); :func:`ink_to_tensor` maps it to the network
input (white paper = +1, ink = -1, three channels, like the ImageNet models' [-1, 1] RGB input).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sketchdown.sketch.strokes import Sketch

REF_SIZE = 256


@dataclass(frozen=True)
class RenderSpec:
    """How a sketch or edge map becomes a canvas. Saved in every manifest."""

    line_width: float = 3.0  # pixels on a 256 canvas
    margin: float = 0.06  # fraction of the canvas left blank on each side after bbox-cropping
    ink_threshold: float = 0.12  # raster ink above this counts for the bounding box


def render_sketch(sketch: Sketch, size: int, spec: RenderSpec = RenderSpec()) -> np.ndarray:
    """Draw a sketch cropped to its bounding box and centred. Returns float32 ``(size, size)`` in [0, 1]."""
    _check_size(size)
    if sketch.is_raster:
        return render_ink(sketch.raster.astype(np.float32) / 255.0, size, spec)
    return _downsample(_draw(sketch, max(REF_SIZE, size), spec), size)


def render_sketches(sketches: Sequence[Sketch], size: int, spec: RenderSpec = RenderSpec()) -> np.ndarray:
    """``render_sketch`` of each sketch: float32 ``(B, size, size)`` in [0, 1] (``(0, size, size)`` for none)."""
    if not sketches:
        _check_size(size)
        return np.zeros((0, size, size), np.float32)
    return np.stack([render_sketch(s, size, spec) for s in sketches])


def render_sketch_sizes(sketch: Sketch, sizes: tuple[int, ...] | list[int], spec: RenderSpec = RenderSpec()) -> dict[int, np.ndarray]:
    """``render_sketch`` at several sizes, identical output, drawing the strokes once for every size up to
    the reference resolution (they are all area-downsampled from the same 256 px drawing)."""
    for size in sizes:
        _check_size(size)
    if sketch.is_raster:
        return {s: render_sketch(sketch, s, spec) for s in sizes}
    ref = _draw(sketch, REF_SIZE, spec) if any(s <= REF_SIZE for s in sizes) else None
    return {s: _downsample(ref if s <= REF_SIZE else _draw(sketch, s, spec), s) for s in sizes}


def _check_size(size: int) -> None:
    if size < 8 or size > 2048:
        raise ValueError(f"canvas size must be in [8, 2048], got {size}")


def _draw(sketch: Sketch, big: int, spec: RenderSpec) -> np.ndarray:
    """The strokes drawn anti-aliased on a ``big`` x ``big`` uint8 canvas (255 = ink)."""
    s = sketch.normalized(big, spec.margin)
    img = np.zeros((big, big), np.uint8)
    thickness = max(1, int(round(spec.line_width * big / REF_SIZE)))
    for st in s.strokes:
        pts = np.round(st * 16).astype(np.int32)  # shift=4: 1/16 pixel precision
        if len(pts) == 1 or np.all(pts == pts[0]):
            cv2.circle(img, tuple(int(v) for v in pts[0]), max(1, thickness // 2) * 16, 255, -1, cv2.LINE_AA, 4)
        else:
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, 255, thickness, cv2.LINE_AA, 4)
    return img


def _downsample(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 255.0


def pad_to_bbox_square(img: np.ndarray, mask: np.ndarray, margin: float, fill: float | int = 0) -> np.ndarray:
    """``img`` ``(H, W)`` or ``(H, W, C)`` cropped to the bounding box of ``mask`` ``(H, W)`` bool and
    centred on a square of ``fill`` with ``margin`` (fraction of the side) blank on each side; ``img``
    itself when ``mask`` is empty. Keeps ``img``'s dtype."""
    if not mask.any():
        return img
    ys, xs = np.nonzero(mask)
    crop = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape[:2]
    side = int(np.ceil(max(h, w) / (1 - 2 * margin)))
    out = np.full((side, side, *img.shape[2:]), fill, img.dtype)
    oy, ox = (side - h) // 2, (side - w) // 2
    out[oy : oy + h, ox : ox + w] = crop
    return out


def crop_square(ink: np.ndarray, spec: RenderSpec = RenderSpec()) -> np.ndarray:
    """Crop an ink map ``(H, W)`` float in [0, 1] to its ink bounding box, padded to a square with margin."""
    return pad_to_bbox_square(ink, ink > spec.ink_threshold, spec.margin, 0.0)


def render_ink(ink: np.ndarray, size: int, spec: RenderSpec = RenderSpec()) -> np.ndarray:
    """Bbox-crop and resize an ink map (raster sketch or photo edge map). float32 ``(size, size)`` in [0, 1]."""
    sq = crop_square(np.asarray(ink, np.float32), spec)
    interp = cv2.INTER_AREA if sq.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(sq, (size, size), interpolation=interp).clip(0, 1)


def ink_to_tensor(inks: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """``(S, S)`` or a list/stack of them -> float32 ``(B, 3, S, S)`` in [-1, 1], paper = +1, ink = -1."""
    a = np.asarray(inks, np.float32)
    if a.ndim == 2:
        a = a[None]
    t = torch.from_numpy(1.0 - 2.0 * a)[:, None]
    return t.expand(-1, 3, -1, -1).contiguous()


def rgb_to_tensor(rgb: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` or a stack -> float32 ``(B, 3, H, W)`` in [-1, 1]."""
    a = np.asarray(rgb, np.float32)
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(a / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
