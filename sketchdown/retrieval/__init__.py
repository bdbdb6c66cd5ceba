"""Search: gallery indexes (photo embeddings in faiss), the ONNX fast path, and the :class:`Retriever`
that the app, the CLI, evaluation and tests share."""

from sketchdown.retrieval.gallery import GalleryError, GalleryIndex, build_gallery
from sketchdown.retrieval.retriever import Hit, RetrievalResult, Retriever

__all__ = ["GalleryError", "GalleryIndex", "Hit", "RetrievalResult", "Retriever", "build_gallery"]
