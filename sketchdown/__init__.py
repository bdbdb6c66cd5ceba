"""SketchDown: sketch-based photo retrieval on a FLOP budget (*Sketch Down the FLOPs*, CVPR 2025).

    from sketchdown import Retriever, load_bundle, load_sketch
    retriever = Retriever.from_folder(load_bundle("weights/default"), "gallery/photos", "gallery/index/default")
    result = retriever.retrieve(load_sketch("examples/chair.json"), k=5)   # -> RetrievalResult

Packages, lowest layer first (each imports only the ones before it): :mod:`sketchdown.sketch`,
:mod:`sketchdown.models`, :mod:`sketchdown.bundles`, :mod:`sketchdown.retrieval`, :mod:`sketchdown.eval`;
:mod:`sketchdown.config` owns environment variables and default paths. The names below load on first
use, so ``import sketchdown.sketch`` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ModelBundle": "sketchdown.bundles", "WeightsError": "sketchdown.bundles", "load_bundle": "sketchdown.bundles",
    "GalleryError": "sketchdown.retrieval", "GalleryIndex": "sketchdown.retrieval", "Hit": "sketchdown.retrieval",
    "RetrievalResult": "sketchdown.retrieval", "Retriever": "sketchdown.retrieval", "build_gallery": "sketchdown.retrieval",
    "RenderSpec": "sketchdown.sketch", "Sketch": "sketchdown.sketch", "SketchError": "sketchdown.sketch",
    "load_sketch": "sketchdown.sketch", "render_sketch": "sketchdown.sketch",
}
__all__ = ["GalleryError", "GalleryIndex", "Hit", "ModelBundle", "RenderSpec", "RetrievalResult", "Retriever", "Sketch",
           "SketchError", "WeightsError", "build_gallery", "load_bundle", "load_sketch", "render_sketch"]

if TYPE_CHECKING:
    from sketchdown.bundles import ModelBundle, WeightsError, load_bundle
    from sketchdown.retrieval import GalleryError, GalleryIndex, Hit, RetrievalResult, Retriever, build_gallery
    from sketchdown.sketch import RenderSpec, Sketch, SketchError, load_sketch, render_sketch


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sketchdown' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
