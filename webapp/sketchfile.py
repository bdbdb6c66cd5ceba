"""Sketches in and out of the page: a sketch file a user opens (app stroke JSON, as the page downloads it;
Quick, Draw! ``.ndjson``; stroke-3/-5 ``.npy``; or a drawing image) becomes a :class:`Sketch`, and strokes
become the canvas's JSON. The page downloads its strokes itself (JSON and SVG, ``static/app.js``)."""

from __future__ import annotations

import json
from pathlib import Path

from sketchdown.sketch.examples import CANVAS
from sketchdown.sketch.strokes import MAX_JSON_CHARS, RASTER_EXTS, Sketch, SketchError, load_sketch

SKETCH_EXTS = (".json", ".ndjson", ".npy", *sorted(RASTER_EXTS))
MARGIN = 20.0  # canvas pixels kept free around a sketch that had to be scaled onto the canvas


def open_sketch_file(path: str | Path) -> Sketch:
    """The sketch in a user's file; SketchError with a one-line message for anything else (type, size,
    contents). Strokes already on the app's canvas are kept as they are, so a downloaded sketch opens to
    the very same strokes; others are scaled onto it."""
    p = Path(path)
    if p.suffix.lower() not in SKETCH_EXTS:
        raise SketchError(f"{p.name}: not a sketch file (use {', '.join(SKETCH_EXTS)})")
    if p.stat().st_size > MAX_JSON_CHARS:
        raise SketchError(f"{p.name}: {p.stat().st_size / 1e6:.0f} MB is too large for a sketch")
    sk = load_sketch(p)
    if sk.is_raster or not sk.strokes:
        return sk
    x0, y0, x1, y1 = sk.bbox()
    if x0 >= 0 and y0 >= 0 and x1 <= CANVAS and y1 <= CANVAS:
        return sk
    return sk.normalized(CANVAS, MARGIN / CANVAS)


def canvas_json(sketch: Sketch) -> str:
    """The canvas's value for vector ``sketch``: ``[[[x, y], ...], ...]`` rounded to 0.1 px as the page sends it."""
    return json.dumps([[[round(float(x), 1), round(float(y), 1)] for x, y in s] for s in sketch.strokes],
                      separators=(",", ":"))
