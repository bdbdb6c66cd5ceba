"""Fused search in two stages, for galleries too large to hold ``[embedding, HOG]`` vectors in memory.

The fused score of a photo is ``emb . q_emb + HOG . (alpha * q_HOG)`` (:func:`sketchdown.sketch.hog.fuse_queries`).
At the shipped sizes the HOG is 1,764 of 2,020 dimensions: a flat index of 1M fused vectors is 8 GB.
Stage one searches an approximate index over the embedding part only (256 dimensions, 1 GB at 1M)
for ``candidates`` photos; stage two adds the HOG term for those candidates, read from a float16 array
that may be a memory-mapped file, and keeps the best ``k``. Memory grows with the embedding; the HOG
rows of a query's candidates are the only ones read.
"""

from __future__ import annotations

import numpy as np


class TwoStageSearch:
    """``search(queries, k)`` over fused vectors, like a faiss index's.

    first: faiss inner-product index over the embeddings ``(N, embed_dim)`` whose distances are exact
    inner products (flat, IVF-flat or HNSW-flat); hogs: ``(N, H)`` float16 or float32, row i = photo i
    (an ``np.memmap`` keeps it on disk); candidates: photos rescored per query (>= k)."""

    def __init__(self, first, hogs: np.ndarray, candidates: int = 256) -> None:
        if first.ntotal != len(hogs):
            raise ValueError(f"{first.ntotal} embeddings but {len(hogs)} HOG rows")
        self.first, self.hogs, self.candidates = first, hogs, candidates
        self.embed_dim = first.d

    @classmethod
    def build(cls, embeddings: np.ndarray, hogs: np.ndarray, kind: str = "auto", candidates: int = 256) -> TwoStageSearch:
        """Index ``embeddings (N, E)`` float32 with :func:`~sketchdown.retrieval.gallery.make_index` (``kind``)
        over ``hogs (N, H)``."""
        from sketchdown.retrieval.gallery import make_index  # the gallery module stores this class: import late

        return cls(make_index(np.ascontiguousarray(embeddings, np.float32), kind), hogs, candidates)

    @property
    def ntotal(self) -> int:
        return self.first.ntotal

    def vectors(self) -> np.ndarray:
        """All fused vectors ``(N, E + H)`` float32, ``[embedding, HOG]`` as a flat index would hold them."""
        import faiss  # late, as in the gallery module: encoding alone must not need faiss

        ivf = faiss.try_extract_index_ivf(self.first)
        if ivf is not None:
            ivf.make_direct_map()  # IVF lists are not in photo order: reconstructing needs the map
        emb = self.first.reconstruct_n(0, self.ntotal)
        return np.concatenate([emb, np.asarray(self.hogs, np.float32)], 1)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries ``(Q, E + H)`` float32 fused query vectors (HOG part already weighted by alpha).
        Returns (scores (Q, k) float32, ids (Q, k) int64), best first; ids -1 past the gallery's end."""
        q = np.ascontiguousarray(queries, np.float32)
        qe, qh = q[:, : self.embed_dim], q[:, self.embed_dim :]
        r = max(k, min(self.candidates, self.ntotal))
        d1, cand = self.first.search(np.ascontiguousarray(qe), r)
        scores = np.full((len(q), k), -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        for i in range(len(q)):
            ok = cand[i] >= 0
            c = cand[i][ok]
            if not len(c):
                continue
            order = np.argsort(c)  # read the HOG rows in file order: sequential pages of a memmap
            rows = np.asarray(self.hogs[c[order]], np.float32)
            fused = d1[i][ok][order] + rows @ qh[i] if qh.shape[1] else d1[i][ok][order]
            top = np.argsort(-fused, kind="stable")[:k]
            scores[i, : len(top)], ids[i, : len(top)] = fused[top], c[order][top]
        return scores, ids
