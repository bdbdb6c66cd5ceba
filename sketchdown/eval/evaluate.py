"""Benchmark evaluation: Acc@1/5/10, mean rank, m@A/m@B over sketch prefixes, mean sketch-branch
GFLOPs per query (selector and HOG included), parameters and CPU latency, one row per model setting."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sketchdown.bundles.bundle import ModelBundle
from sketchdown.bundles.cascade import margins, stage_costs, stop_stages
from sketchdown.bundles.photo import EdgeCache
from sketchdown.eval.data import PairedDataset, get_sketch
from sketchdown.eval.metrics import classification_report, early_retrieval, prefix_fractions, rank_of_true, summary
from sketchdown.eval.rows import SELECTOR_TAG, RowKey, uses_selector
from sketchdown.retrieval.encode import (
    CanvasChoice,
    branch_runner,
    choose_canvases,
    encode_sketches,
    encoder_runner,
    query_hogs,
    search_vectors,
)
from sketchdown.retrieval.gallery import GalleryIndex, embed_photos, make_index
from sketchdown.retrieval.retriever import Retriever
from sketchdown.sketch.hog import hog_flops
from sketchdown.sketch.render import RenderSpec
from sketchdown.sketch.strokes import Sketch

__all__ = ["SELECTOR_TAG", "Row", "RowKey", "default_rows", "evaluate", "evaluate_recognition", "stage_rankings", "uses_selector"]

Row = RowKey  # the evaluated setting of a result row (its label: ``RowKey.label``)


def default_rows(bundle: ModelBundle, sweep: bool = False, granularity: str = "instance") -> list[RowKey]:
    """Every shipped row: each sketch branch at its default canvas (every canvas with ``sweep``),
    then the selector's branch with the selector at each shipped lambda_F, then the cascade's branch with
    the confidence cascade at each of its lambda_F; where the weight set
    fuses HOG into a branch (on galleries of this ``granularity``), each of its rows with and without
    the fusion."""
    base = []
    for name, b in bundle.sketch.items():
        for c in (b.canvas_sizes if sweep else (b.default_canvas,)):
            base.append(RowKey(name, c, weights=bundle.name))
    if bundle.selector:
        base += [RowKey(bundle.selector.model, None, lam, weights=bundle.name) for lam in bundle.selector.lams]
    if bundle.cascade:
        base += [RowKey(bundle.cascade.model, None, lam, weights=bundle.name, cascade=True) for lam in bundle.cascade.lams]
    rows = []
    for r in base:
        rows.append(r)
        if bundle.hog is not None and bundle.sketch[r.model].alpha_for(granularity) > 0:
            rows.append(replace(r, hog=True))
    return rows


class _Queries:
    """Similarities of every row's search vectors to the photos, for the full sketches (part -1) and
    each ink prefix (part i). Canvases, network outputs and HOGs are memoised across rows: a +HOG row
    reuses its plain row's, every row the sketches' HOG."""

    def __init__(self, retr: Retriever, parts: list[list[Sketch]], photo_vectors: np.ndarray) -> None:
        self.retr, self.bundle, self.parts, self.pemb = retr, retr.bundle, parts, photo_vectors
        self._canv: dict[tuple, CanvasChoice] = {}
        self._emb: dict[tuple, np.ndarray] = {}
        self._hogs: dict[int, np.ndarray] = {}

    def choice(self, row: RowKey, part: int = -1) -> CanvasChoice:
        """Canvas and selector FLOPs (the cascade's: its earlier passes) per sketch of ``part``."""
        key = (row.model, row.canvas, row.lam, part) + ((row.hog,) if row.cascade else ())
        if key not in self._canv:
            self._canv[key] = (self._cascade(row, part) if row.cascade else
                               choose_canvases(self.bundle, self.parts[part + 1], row.model, row.canvas, row.lam))
        return self._canv[key]

    def _cascade(self, row: RowKey, part: int) -> CanvasChoice:
        """Where the confidence cascade stops for each sketch, from the rankings at every stage (as the
        Retriever runs it, one stage after another, but every stage computed once for all sketches)."""
        spec, b = self.bundle.cascade, self.bundle.sketch[row.model]
        if spec is None or spec.model != row.model:
            raise ValueError(f"row {row.label()}: the weight set has no cascade for this branch")
        m = np.stack([margins(self.sims(replace(row, canvas=c, lam=None, cascade=False), part)) for c in spec.stages], 1)
        stop = stop_stages(m, spec.thresholds(row.lam, fused=self.retr.hog_alpha(row.model, row.hog) > 0))
        cost = stage_costs([b.flops(c) for c in spec.stages])
        n = len(stop)
        return CanvasChoice([spec.stages[i] for i in stop], [None] * n,
                            [int(cost[i]) - b.flops(spec.stages[i]) for i in stop], [0] * n)

    def sims(self, row: RowKey, part: int = -1) -> np.ndarray:
        """(N, photos) similarity of the Retriever's search vectors for ``part``."""
        sks, canv = self.parts[part + 1], self.choice(row, part).canvases
        key = (row.model, tuple(canv), part)
        if key not in self._emb:
            self._emb[key] = encode_sketches(branch_runner(self.bundle.sketch[row.model]), sks, canv, self.bundle.render).embeddings
        alpha = self.retr.hog_alpha(row.model, row.hog)
        if alpha > 0 and part not in self._hogs:
            self._hogs[part] = query_hogs(self.bundle, sks)
        return search_vectors(self.bundle, self._emb[key], self._hogs.get(part), alpha) @ self.pemb.T


def _photo_retriever(bundle: ModelBundle, data: PairedDataset, edge_cache: EdgeCache | None) -> tuple[Retriever, np.ndarray]:
    """A Retriever over the dataset's photos (their absolute paths) and the photo vectors ``(P, D)``."""
    pemb, _, errors = embed_photos(bundle, data.photos, edge_cache=edge_cache or EdgeCache())
    if errors:
        raise RuntimeError(f"{len(errors)} photos unreadable, e.g. {errors[0]}")
    gallery = GalleryIndex(
        Path("/"), [str(p.resolve()) for p in data.photos], [""] * len(data.photos), list(data.photo_labels),
        make_index(pemb, "flat"), {"granularity": data.granularity},
    )  # root / absolute path == absolute path
    return Retriever(bundle, gallery), pemb


def _measure(row: RowKey, q: _Queries, true: np.ndarray, data: PairedDataset, latency_queries: int) -> dict:
    """One result row: accuracy and early-retrieval metrics, cost and latency of ``row``."""
    bundle, retr = q.bundle, q.retr
    b = bundle.sketch[row.model]
    choice = q.choice(row)
    m = summary(rank_of_true(q.sims(row), true))
    if len(q.parts) > 1:
        curves = [rank_of_true(q.sims(row, i), true) for i in range(len(q.parts) - 1)]
        m.update(early_retrieval(np.stack(curves, 1), len(data.photos)))
    else:
        m.update({"m@A": None, "m@B": None})
    hog_fl = hog_flops(bundle.hog) if retr.hog_alpha(row.model, row.hog) > 0 else 0  # as the Retriever counts it
    flops = [b.flops(c) + f + hog_fl for c, f in zip(choice.canvases, choice.flops, strict=True)]
    how = "cascade" if row.cascade else "selector" if row.uses_selector else row.canvas
    lat = [retr.retrieve(s, k=10, canvas=how, model=row.model, lam=row.lam,
                         fusion=row.hog).latency_ms for s in q.parts[0][:latency_queries]]
    params = b.params() + (bundle.selector.params() if row.uses_selector and bundle.selector else 0)
    return {
        "model": row.label(),
        "dataset": data.name,
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in m.items()},
        "gflops_per_query": round(float(np.mean(flops)) / 1e9, 4),
        "params": int(params),
        "latency_ms": round(statistics.median(lat), 2) if lat else None,
        "canvas_hist": {int(c): int(n) for c, n in zip(*np.unique(choice.canvases, return_counts=True), strict=True)},
        "queries": len(q.parts[0]),
        "gallery": len(data.photos),
    }


def evaluate(
    bundle: ModelBundle,
    data: PairedDataset,
    rows: list[RowKey] | None = None,
    *,
    prefix_steps: int = 10,
    latency_queries: int = 30,
    edge_cache: EdgeCache | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Evaluate ``rows`` (default :func:`default_rows`; a row naming no weight set is this bundle's) on
    a paired dataset. Returns one dict per row with the CLI's keys."""
    rows = [r.with_weights(bundle.name) for r in rows or default_rows(bundle, granularity=data.granularity)]
    for r in rows:
        if r.canvas is None and r.lam is None:
            raise ValueError(f"row {r.label()}: give a canvas or the selector's lambda_F")
    say = progress or (lambda s: None)
    say(f"embedding {len(data.photos)} photos")
    retr, pemb = _photo_retriever(bundle, data, edge_cache)
    sketches = [get_sketch(it) for it in data.sketches]
    true = data.true()  # photo per sketch, or a mask of the right photos (category-level datasets)
    vector = not sketches[0].is_raster
    if not vector and any(r.uses_selector for r in rows):
        # the selector reads strokes; raster sketches have none (the app and CLI use the default canvas)
        say("raster sketches: skipping the selector rows")
        rows = [r for r in rows if not r.uses_selector]
    fracs = prefix_fractions(prefix_steps) if vector and prefix_steps > 0 else []
    q = _Queries(retr, [sketches] + [[s.prefix_ink(f) for s in sketches] for f in fracs], pemb)
    results = []
    for row in rows:
        say(f"evaluating {row.label()}")
        results.append(_measure(row, q, true, data, latency_queries))
    return results


def stage_rankings(
    bundle: ModelBundle, data: PairedDataset, model: str, canvases: tuple[int, ...], fused: bool, *,
    prefix_steps: int = 10, edge_cache: EdgeCache | None = None,
) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]:
    """The similarities a canvas policy is fitted on: every sketch and each of its ``prefix_steps`` ink
    prefixes (vector sketches), searched among the dataset's photos at each canvas, with the HOG fused
    (``fused``, at the branch's weight for the dataset's granularity) or the network alone.

    Returns ({canvas: (Q, P) float32}, true photo (Q,) int, complete (Q,) bool: the row is a whole sketch),
    Q = N sketches x (1 + prefixes), whole sketches first. Instance-level datasets only."""
    retr, pemb = _photo_retriever(bundle, data, edge_cache)
    sketches = [get_sketch(it) for it in data.sketches]
    fracs = prefix_fractions(prefix_steps) if prefix_steps > 0 and not sketches[0].is_raster else []
    q = _Queries(retr, [sketches] + [[s.prefix_ink(f) for s in sketches] for f in fracs], pemb)
    true = np.asarray(data.true())
    if true.ndim != 1:
        raise ValueError(f"{data.name}: stage_rankings needs one true photo per sketch (an instance-level dataset)")
    parts = range(-1, len(fracs))
    sims = {c: np.concatenate([q.sims(RowKey(model, c, hog=fused), p) for p in parts]).astype(np.float32) for c in canvases}
    complete = np.concatenate([np.full(len(true), p == -1) for p in parts])
    return sims, np.tile(true, len(parts)), complete


@torch.inference_mode()
def evaluate_recognition(
    encoder: torch.nn.Module,
    classes: list[str],
    data: PairedDataset,
    canvas: int,
    canvas_index: int = 0,
    render: RenderSpec | None = None,
    bs: int = 64,
) -> dict:
    """Sketch recognition on ``data``: each sketch's class is its photo's label.

    ``encoder`` is an :class:`~sketchdown.models.modules.EmbeddingEncoder` with a category head over
    ``classes``; sketches whose label is not among them are skipped. Returns accuracy and macro
    precision / recall / F1 (percent), the number of sketches and the classes scored.
    """
    render = render or RenderSpec()
    index = {c: i for i, c in enumerate(classes)}
    items = [it for it in data.sketches if data.photo_labels[it.photo] in index]
    if not items:
        raise ValueError(f"{data.name}: no sketch has one of the model's classes")
    y = np.array([index[data.photo_labels[it.photo]] for it in items])
    run = encoder_runner(encoder, canvas_index, logits=True)
    logits = encode_sketches(run, [get_sketch(it) for it in items], [canvas] * len(items), render, bs).logits
    assert logits is not None, "the encoder has no category head"
    rep = classification_report(y, logits.argmax(-1))
    return {**{k: round(v, 2) for k, v in rep.items()}, "dataset": data.name, "sketches": len(items), "classes": len(set(y.tolist()))}
