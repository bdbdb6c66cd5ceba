"""Sketches and how they become pixels: the :class:`Sketch` type and its parsers, the one rasteriser,
image reading, the HOG descriptor, photo -> pseudo-sketch and the app's example drawings."""

from sketchdown.sketch.imageio import ImageError, open_image
from sketchdown.sketch.render import RenderSpec, render_ink, render_sketch
from sketchdown.sketch.strokes import Sketch, SketchError, load_sketch, stroke_sequence

__all__ = ["ImageError", "RenderSpec", "Sketch", "SketchError", "load_sketch", "open_image", "render_ink",
           "render_sketch", "stroke_sequence"]
