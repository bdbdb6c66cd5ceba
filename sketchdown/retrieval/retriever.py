"""The Retriever: one object shared by the app, the CLI, evaluation and tests.

    r = Retriever(load_bundle("weights/chairv2"), gallery)
    res = r.retrieve(sketch, k=10, canvas="auto")   # -> RetrievalResult

It holds the encoders, the canvas selector and the gallery index; ``retrieve`` runs selector ->
render -> sketch encoder (+ HOG, when the weight set fuses it) -> search and reports the canvas used,
FLOPs (selector and HOG included) against the full network's, parameters and latency.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sketchdown.bundles.bundle import ModelBundle
from sketchdown.retrieval.accel import OnnxBranch, OnnxSelector, resolve_backend
from sketchdown.retrieval.encode import (
    Runner,
    SelectOne,
    branch_runner,
    choose_canvases,
    encode_queries,
    encode_sketches,
    query_hogs,
    search_vectors,
)
from sketchdown.retrieval.gallery import (
    GalleryError,
    GalleryIndex,
    build_gallery,
    check_granularity,
    default_index_dir,
    index_photo_id,
)
from sketchdown.sketch.hog import hog_flops
from sketchdown.sketch.strokes import Sketch, SketchError

_EXPORT_LOCK = threading.Lock()


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    index: int  # row in the gallery
    path: str  # absolute path of the photo
    label: str
    category: str
    score: float  # cosine similarity in [-1, 1]; with HOG fusion, cosine + alpha * HOG cosine


@dataclass
class RetrievalResult:
    hits: list[Hit]
    model: str
    canvas: int
    canvas_probs: dict[int, float] | None  # the selector's confidence per canvas (None: fixed canvas)
    abstraction: float | None  # 0 = detailed .. 1 = abstract (selector's expected canvas, inverted)
    gflops: float  # this query's sketch branch, selector and HOG included
    selector_gflops: float  # what picking the canvas cost: the selector, or the cascade's earlier passes
    full_gflops: float  # the full network (teacher) on the same sketch
    params: int
    latency_ms: float
    canvas_image: np.ndarray = field(repr=False)  # (canvas, canvas) float32 ink: what the network saw
    categories: list[tuple[str, float]] = field(default_factory=list)
    embedding: np.ndarray | None = field(default=None, repr=False)
    hog_gflops: float = 0.0  # the HOG descriptor's share of ``gflops`` (0: not fused)
    hog_alpha: float = 0.0  # the HOG's weight in the scores (this gallery's granularity; 0: not fused)
    selector_steps: int = 0  # points of the simplified stroke sequence the selector read (0: it did not run)
    # the confidence cascade's passes: (canvas, top-1 minus top-2 score, stop threshold; inf at the last); None: not run
    cascade: list[tuple[int, float, float]] | None = None

    @property
    def saving_pct(self) -> float:
        return 100.0 * (1 - self.gflops / self.full_gflops) if self.full_gflops > 0 else 0.0

    def to_json(self) -> dict:
        """The CLI's ``search --json`` object."""
        return {
            "results": [{"path": h.path, "score": round(h.score, 5), "rank": h.rank, "label": h.label} for h in self.hits],
            "model": self.model,
            "canvas": self.canvas,
            "canvas_probs": self.canvas_probs,
            "gflops": self.gflops,
            "hog": self.hog_gflops > 0,
            "hog_alpha": self.hog_alpha,
            "full_gflops": self.full_gflops,
            "params": self.params,
            "latency_ms": round(self.latency_ms, 2),
            **({"cascade": self.cascade_json()} if self.cascade is not None else {}),
        }

    def cascade_json(self) -> list[dict] | None:
        """The cascade's passes as plain JSON (threshold null at the last stage); None where it did not run."""
        if self.cascade is None:
            return None
        return [{"canvas": c, "margin": round(m, 5), "threshold": None if t == float("inf") else round(t, 5)}
                for c, m, t in self.cascade]


class Retriever:
    """Sketch -> ranked gallery photos with an honest cost report."""

    def __init__(
        self, bundle: ModelBundle, gallery: GalleryIndex | None = None, threads: int | None = None,
        backend: str | None = None, classes: Collection[str] | None = None,
    ) -> None:
        """backend: ``onnx`` (ONNX Runtime, several times faster per query), ``eager`` (plain PyTorch)
        or None/``auto`` (``$SKETCHDOWN_BACKEND``, else onnx when installed). See :mod:`sketchdown.retrieval.accel`.
        classes: the recognition classes results may name (default: all the head's); the app passes those
        its gallery has photos of, so it never names a kind it cannot show."""
        self.bundle = bundle
        self.gallery = gallery
        self.classes = frozenset(bundle.classes if classes is None else classes)
        if threads:
            torch.set_num_threads(threads)
        self.backend = resolve_backend(backend)

    def _cached_runner(self, key: tuple, make: Callable[[], Any]) -> Any:
        """A compiled runner shared by every Retriever over this bundle; concurrent first queries
        (app users) build it once."""
        runners = self.bundle.runners
        r = runners.get(key)
        if r is None:
            with _EXPORT_LOCK:
                r = runners.get(key)
                if r is None:
                    r = runners[key] = make()
        return r

    def _selector_runner(self) -> OnnxSelector:
        assert self.bundle.selector is not None
        return self._cached_runner(("onnx", "selector"), lambda: OnnxSelector(self.bundle.selector.policy))

    def _runner(self, model: str, canvas: int) -> OnnxBranch:
        b = self.bundle.sketch[model]
        return self._cached_runner(("onnx", model, canvas), lambda: OnnxBranch(b.encoder, canvas, b.canvas_index(canvas)))

    # ---- gallery -------------------------------------------------------------------------
    @classmethod
    def from_folder(
        cls, bundle: ModelBundle, photo_dir: str | os.PathLike, index_dir: str | os.PathLike | None = None,
        *, rebuild: str = "auto", progress=None, backend: str | None = None, granularity: str | None = None,
        classes: Collection[str] | None = None,
    ) -> Retriever:
        """Open the index of ``photo_dir`` (default location per folder and weights); if it is missing
        or stale, build it (``rebuild="auto"``) or raise (``"never"``). ``granularity`` ("category" or
        "instance") overrides the one the index recorded (it only picks the HOG weight at query time)."""
        out = Path(index_dir) if index_dir else default_index_dir(photo_dir, bundle.name)
        try:
            g = GalleryIndex.load(out, photo_dir, index_photo_id(bundle))
        except GalleryError:
            if rebuild == "never":
                raise
            g = build_gallery(bundle, photo_dir, out, progress=progress, granularity=granularity or "category")
        if granularity is not None:
            g.meta["granularity"] = check_granularity(granularity)
        return cls(bundle, g, backend=backend, classes=classes)

    # ---- one query ------------------------------------------------------------------------
    def _run(self, model: str) -> Runner:
        """The branch's runner on this Retriever's backend (ONNX sessions are built per canvas on first use)."""
        if self.backend == "onnx":
            return lambda x, canvas: self._runner(model, canvas)(x)
        return branch_runner(self.bundle.sketch[model], logits=True)

    def _select(self) -> SelectOne | None:
        """The selector one sketch at a time on this backend (None: the eager policy)."""
        if self.backend != "onnx":
            return None
        return lambda seq, lam: self._selector_runner()(seq, lam)

    def select_canvas(self, sketch: Sketch, model: str, lam: float | None = None) -> tuple[int, dict[int, float] | None, int]:
        """Canvas the selector picks for ``sketch`` (and its probabilities and FLOPs); the model's
        default canvas where there is no selector for this model or the sketch is raster-only."""
        c = choose_canvases(self.bundle, [sketch], model, None, lam, self._select())
        return c.canvases[0], c.probs[0], c.flops[0]

    @property
    def granularity(self) -> str:
        """The gallery's granularity (its index metadata; "category", a mix of kinds, when unrecorded)."""
        return str(self.gallery.meta.get("granularity", "category")) if self.gallery is not None else "category"

    def hog_alpha(self, model: str, fusion: bool | None = None) -> float:
        """Weight of the HOG similarity for ``model`` on this gallery (0 when the weight set or
        ``fusion=False`` turns it off). Category-level galleries have their own weight: the HOG's
        fine detail that separates two chairs drowns the similarity of two fish."""
        if self.bundle.hog is None or fusion is False:
            return 0.0
        return self.bundle.sketch[model].alpha_for(self.granularity)

    def query_vector(self, sketch: Sketch, embedding: np.ndarray, alpha: float, ink: np.ndarray | None = None) -> np.ndarray:
        """The search vector: the embedding (D,), or ``[embedding, alpha * HOG]`` when the weight set
        fuses HOG (zeros in place of the HOG when ``alpha`` is 0), matching the gallery's vectors.
        ``ink``: the sketch already drawn at the HOG's size, if the encoder's canvas was that size."""
        fuse = self.bundle.hog is not None and alpha > 0
        hogs = query_hogs(self.bundle, [sketch], None if ink is None else [ink]) if fuse else None
        return search_vectors(self.bundle, np.asarray(embedding, np.float32)[None], hogs, alpha)[0]

    def _categories(self, logits: np.ndarray | None) -> list[tuple[str, float]]:
        """The three likeliest of ``self.classes`` (name, probability over all the head's classes) from
        one sketch's logits (C,)."""
        if logits is None or not self.bundle.classes:
            return []
        p = torch.softmax(torch.from_numpy(logits), -1).numpy()
        names = self.bundle.classes
        return [(names[i], float(p[i])) for i in np.argsort(-p) if names[i] in self.classes][:3]

    def embed(self, sketch: Sketch, model: str, canvas: int) -> tuple[np.ndarray, np.ndarray, list[tuple[str, float]]]:
        """Render at ``canvas`` and encode: (embedding (D,), canvas image, top categories)."""
        enc = encode_sketches(self._run(model), [sketch], [canvas], self.bundle.render, keep_inks=True)
        return enc.embeddings[0], enc.inks[0], self._categories(enc.logits_of(0))

    def retrieve(
        self, sketch: Sketch, k: int = 10, canvas: str | int = "auto", model: str | None = None, lam: float | None = None,
        fusion: bool | None = None,
    ) -> RetrievalResult:
        """Rank the gallery for ``sketch``.

        canvas: ``"auto"`` or ``"selector"`` (the RL selector's pick, or the model's default canvas),
        ``"cascade"`` (the confidence cascade, where the weight set has one for ``model``) or a size in pixels.
        model: a sketch branch of the bundle (default: the one the selector serves).
        lam: lambda_F in [0, 1] for the cascade or selector (higher = cheaper), default the bundle's.
        fusion: fuse the HOG similarity (default: when the weight set does); False: the network alone.
        """
        if self.gallery is None:
            raise GalleryError("no gallery loaded: index a photo folder first")
        if not isinstance(sketch, Sketch):
            raise SketchError("expected a Sketch")
        t0 = time.perf_counter()
        model = model or self.bundle.default_model
        if model not in self.bundle.sketch:
            raise ValueError(f"unknown model {model!r}; this weight set has {sorted(self.bundle.sketch)}")
        b = self.bundle.sketch[model]
        alpha = self.hog_alpha(model, fusion)
        if canvas == "cascade":
            return self._retrieve_cascade(sketch, k, model, lam, alpha, t0)
        q = encode_queries(self.bundle, [sketch], model, None if canvas in ("auto", "selector") else int(canvas), lam, alpha,
                           run=self._run(model), select=self._select(), keep_inks=True)
        size, probs, sel_flops = q.choice.canvases[0], q.choice.probs[0], q.choice.flops[0]
        hog_fl = hog_flops(self.bundle.hog) if alpha > 0 else 0
        scores, ids = self.gallery.search(q.vectors, k)
        img, emb, cats = q.encoded.inks[0], q.encoded.embeddings[0], self._categories(q.encoded.logits_of(0))
        latency = (time.perf_counter() - t0) * 1000
        hits = self._hits(scores[0], ids[0])
        abstraction = None
        if probs is not None:
            sizes = np.array(list(probs), float)
            w = np.array(list(probs.values()))
            pos = (np.log2(sizes) - np.log2(sizes.min())) / max(1e-9, np.log2(sizes.max()) - np.log2(sizes.min()))
            abstraction = float(1 - (w * pos).sum())
        full = self.bundle.full
        return RetrievalResult(
            hits=hits, model=model, canvas=size, canvas_probs=probs, abstraction=abstraction,
            gflops=(b.flops(size) + sel_flops + hog_fl) / 1e9, selector_gflops=sel_flops / 1e9, hog_gflops=hog_fl / 1e9,
            full_gflops=full.flops(full.default_canvas) / 1e9, params=b.params()
            + (self.bundle.selector.params() if probs is not None and self.bundle.selector else 0),
            latency_ms=latency, canvas_image=img, categories=cats, embedding=emb, hog_alpha=alpha,
            selector_steps=q.choice.steps[0],
        )

    def _hits(self, scores: np.ndarray, ids: np.ndarray) -> list[Hit]:
        g = self.gallery
        return [Hit(r + 1, int(i), str(g.root / g.paths[i]), g.labels[i], g.categories[i], float(s))
                for r, (s, i) in enumerate(zip(scores, ids, strict=True)) if i >= 0]

    def _retrieve_cascade(self, sketch: Sketch, k: int, model: str, lam: float | None, alpha: float, t0: float) -> RetrievalResult:
        """Search at each stage's canvas until the ranking's margin reaches the stage's threshold
        (:mod:`sketchdown.bundles.cascade`); every pass's FLOPs are counted, the HOG's once."""
        spec, b = self.bundle.cascade, self.bundle.sketch[model]
        if spec is None or spec.model != model:
            raise ValueError(f"weight set {self.bundle.name!r} has no cascade for model {model!r}")
        thr = spec.thresholds(lam, fused=alpha > 0)
        hogs = query_hogs(self.bundle, [sketch]) if alpha > 0 else None
        run, path, flops = self._run(model), [], 0
        for i, c in enumerate(spec.stages):
            enc = encode_sketches(run, [sketch], [c], self.bundle.render, keep_inks=True)
            scores, ids = self.gallery.search(search_vectors(self.bundle, enc.embeddings, hogs, alpha), max(k, 2))
            top = scores[0][ids[0] >= 0]
            margin = float(top[0] - top[1]) if len(top) > 1 else float("inf")
            t = thr[i] if i < len(thr) else float("inf")
            path.append((c, margin, t))
            flops += b.flops(c)
            if margin >= t:
                break
        hog_fl = hog_flops(self.bundle.hog) if alpha > 0 else 0
        full = self.bundle.full
        stop = len(path) - 1
        return RetrievalResult(
            hits=self._hits(scores[0][:k], ids[0][:k]), model=model, canvas=c, canvas_probs=None,
            abstraction=1 - stop / (len(spec.stages) - 1), gflops=(flops + hog_fl) / 1e9,
            selector_gflops=(flops - b.flops(c)) / 1e9, hog_gflops=hog_fl / 1e9,
            full_gflops=full.flops(full.default_canvas) / 1e9, params=b.params(),
            latency_ms=(time.perf_counter() - t0) * 1000, canvas_image=enc.inks[0], categories=self._categories(enc.logits_of(0)),
            embedding=enc.embeddings[0], hog_alpha=alpha, cascade=path,
        )

    def warmup(self) -> None:
        """Run every model and canvas once (first calls allocate; the first stroke should be fast)."""
        sk = Sketch((np.array([[0, 0], [10, 10], [20, 0]], np.float32),))
        for name, b in self.bundle.sketch.items():
            for c in b.canvas_sizes:
                self.embed(sk, name, c)
                b.flops(c)
        if self.bundle.selector:
            self.select_canvas(sk, self.bundle.selector.model)
