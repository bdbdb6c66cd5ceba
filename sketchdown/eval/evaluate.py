"""Benchmark evaluation: Acc@1/5/10, mean rank, m@A/m@B over sketch prefixes, mean sketch-branch
GFLOPs per query (selector and HOG included), parameters and CPU latency, one row per model setting."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sketchdown.bundles.bundle import ModelBundle
from sketchdown.bundles.flops import selector_flops
from sketchdown.bundles.photo import EdgeCache
from sketchdown.eval.data import PairedDataset, get_sketch
from sketchdown.eval.metrics import classification_report, early_retrieval, prefix_fractions, rank_of_true, summary
from sketchdown.retrieval.gallery import GalleryIndex, embed_photos, make_index
from sketchdown.retrieval.retriever import Retriever
from sketchdown.sketch.hog import fuse_queries, hog_flops, sketch_hogs
from sketchdown.sketch.render import RenderSpec, ink_to_tensor, render_sketch
from sketchdown.sketch.strokes import Sketch, stroke_sequence


@dataclass(frozen=True)
class Row:
    """One evaluated setting: a sketch branch at a fixed canvas, or with the selector at lambda_F."""

    model: str
    canvas: int | None = None  # None: the selector picks
    lam: float | None = None
    hog: bool = False  # fuse the HOG similarity (the weight set's alpha for this branch)

    def label(self, weights: str) -> str:
        tail = "+HOG" if self.hog else ""
        if self.canvas is None:
            return f"{weights}/{self.model}{SELECTOR_TAG}lambda_F={self.lam:g}){tail}"
        return f"{weights}/{self.model}@{self.canvas}{tail}"


SELECTOR_TAG = "+selector("  # in a row label: the row's canvases were picked by the selector


def uses_selector(label: str) -> bool:
    """Whether a result row (by its ``Row.label``) measured the weight set's selector."""
    return SELECTOR_TAG in label


def default_rows(bundle: ModelBundle, sweep: bool = False, granularity: str = "instance") -> list[Row]:
    """Every shipped row: each sketch branch at its default canvas (every canvas with ``sweep``),
    then the selector's branch with the selector at each shipped lambda_F; where the weight set
    fuses HOG into a branch (on galleries of this ``granularity``), each of its rows with and without
    the fusion."""
    base = []
    for name, b in bundle.sketch.items():
        for c in (b.canvas_sizes if sweep else (b.default_canvas,)):
            base.append(Row(name, c))
    if bundle.selector:
        base += [Row(bundle.selector.model, None, lam) for lam in bundle.selector.lams]
    rows = []
    for r in base:
        rows.append(r)
        if bundle.hog is not None and bundle.sketch[r.model].alpha_for(granularity) > 0:
            rows.append(Row(r.model, r.canvas, r.lam, hog=True))
    return rows


class _Encoder:
    """Batched sketch encoding for evaluation (the same render + encoder calls as the Retriever)."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle

    @torch.inference_mode()
    def encode(self, sketches: list[Sketch], model: str, canvases: list[int], bs: int = 64) -> np.ndarray:
        """Embeddings (N, D), each sketch at its own canvas; batched per canvas."""
        b = self.bundle.sketch[model]
        out: np.ndarray | None = None
        for c in sorted(set(canvases)):
            idx = [i for i, ci in enumerate(canvases) if ci == c]
            for j in range(0, len(idx), bs):
                chunk = idx[j : j + bs]
                x = ink_to_tensor(np.stack([render_sketch(sketches[i], c, self.bundle.render) for i in chunk]))
                e = b.encoder(x, b.canvas_index(c)).numpy()
                if out is None:
                    out = np.zeros((len(sketches), e.shape[1]), np.float32)
                out[chunk] = e
        return out if out is not None else np.zeros((0, 0), np.float32)

    @torch.inference_mode()
    def select(self, sketches: list[Sketch], lam: float) -> tuple[list[int], list[int]]:
        """Selector canvases and selector FLOPs per sketch."""
        sel = self.bundle.selector
        assert sel is not None
        sizes = self.bundle.sketch[sel.model].canvas_sizes
        seqs = [stroke_sequence(s) for s in sketches]
        canv, fl = [], []
        for j in range(0, len(seqs), 256):
            chunk = seqs[j : j + 256]
            lens = torch.tensor([len(s) for s in chunk])
            pad = torch.zeros(len(chunk), int(lens.max()), 5)
            for i, s in enumerate(chunk):
                pad[i, : len(s)] = torch.from_numpy(s)
            logits = sel.policy(pad, lens, torch.full((len(chunk),), float(lam)))
            canv += [sizes[int(i)] for i in logits.argmax(-1)]
            fl += [selector_flops(sel.policy, int(n)) for n in lens]
        return canv, fl


def evaluate(
    bundle: ModelBundle,
    data: PairedDataset,
    rows: list[Row] | None = None,
    *,
    prefix_steps: int = 10,
    latency_queries: int = 30,
    edge_cache: EdgeCache | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Evaluate ``rows`` on a paired dataset. Returns one dict per row with the CLI's keys."""
    rows = rows or default_rows(bundle, granularity=data.granularity)
    say = progress or (lambda s: None)
    say(f"embedding {len(data.photos)} photos")
    pemb, ok, errors = embed_photos(bundle, data.photos, edge_cache=edge_cache or EdgeCache())
    if errors:
        raise RuntimeError(f"{len(errors)} photos unreadable, e.g. {errors[0]}")
    sketches = [get_sketch(it) for it in data.sketches]
    true = data.true()  # photo per sketch, or a mask of the right photos (category-level datasets)
    vector = not sketches[0].is_raster
    if not vector and any(r.canvas is None for r in rows):
        # the selector reads strokes; raster sketches have none (the app and CLI use the default canvas)
        say("raster sketches: skipping the selector rows")
        rows = [r for r in rows if r.canvas is not None]
    fracs = prefix_fractions(prefix_steps) if vector and prefix_steps > 0 else []
    prefixes = [[s.prefix_ink(f) for s in sketches] for f in fracs]
    enc = _Encoder(bundle)
    # embeddings are cached across rows: a +HOG row reuses its plain row's network outputs and canvases
    cache: dict[tuple, np.ndarray] = {}
    canv_cache: dict[tuple, tuple[list[int], list[int]]] = {}
    hogs: dict[int, np.ndarray] = {}

    def canvases_for(row: Row, part: int, sks: list[Sketch]) -> tuple[list[int], list[int]]:
        """(canvas, selector FLOPs) per sketch."""
        key = (row.model, row.canvas, row.lam, part)
        if key not in canv_cache:
            canv_cache[key] = enc.select(sks, row.lam) if row.canvas is None else ([row.canvas] * len(sks), [0] * len(sks))
        return canv_cache[key]

    def sims(row: Row, part: int, sks: list[Sketch], canv: list[int]) -> np.ndarray:
        """(N, gallery) similarity of the Retriever's search vectors; part -1 = full sketches, i = prefix i."""
        key = (row.model, tuple(canv), part)
        if key not in cache:
            cache[key] = enc.encode(sks, row.model, canv)
        if bundle.hog is None:
            return cache[key] @ pemb.T
        alpha = retr.hog_alpha(row.model, row.hog)
        if alpha > 0 and part not in hogs:
            hogs[part] = sketch_hogs(sks, bundle.hog, bundle.render)
        return fuse_queries(cache[key], hogs.get(part) if alpha > 0 else None, alpha, bundle.hog) @ pemb.T

    # paths are absolute: root / absolute path == absolute path
    gallery = GalleryIndex(
        Path("/"), [str(p.resolve()) for p in data.photos], [""] * len(data.photos), list(data.photo_labels),
        make_index(pemb, "flat"), {"granularity": data.granularity},
    )
    retr = Retriever(bundle, gallery)
    results = []
    for row in rows:
        say(f"evaluating {row.label(bundle.name)}")
        b = bundle.sketch[row.model]
        canv, sel_fl = canvases_for(row, -1, sketches)
        hog_fl = hog_flops(bundle.hog) if retr.hog_alpha(row.model, row.hog) > 0 else 0  # as the Retriever counts it
        ranks = rank_of_true(sims(row, -1, sketches, canv), true)
        m = summary(ranks)
        flops = [b.flops(c) + f + hog_fl for c, f in zip(canv, sel_fl, strict=True)]
        if fracs:
            curves = []
            for i, pre in enumerate(prefixes):
                curves.append(rank_of_true(sims(row, i, pre, canvases_for(row, i, pre)[0]), true))
            m.update(early_retrieval(np.stack(curves, 1), len(data.photos)))
        else:
            m.update({"m@A": None, "m@B": None})
        lat = []
        for s in sketches[:latency_queries]:
            r = retr.retrieve(s, k=10, canvas="auto" if row.canvas is None else row.canvas, model=row.model, lam=row.lam,
                              fusion=row.hog)
            lat.append(r.latency_ms)
        params = b.params() + (bundle.selector.params() if row.canvas is None and bundle.selector else 0)
        results.append(
            {
                "model": row.label(bundle.name),
                "dataset": data.name,
                **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in m.items()},
                "gflops_per_query": round(float(np.mean(flops)) / 1e9, 4),
                "params": int(params),
                "latency_ms": round(statistics.median(lat), 2) if lat else None,
                "canvas_hist": {int(c): int(n) for c, n in zip(*np.unique(canv, return_counts=True), strict=True)},
                "queries": len(sketches),
                "gallery": len(data.photos),
            }
        )
    return results


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
    pred = []
    for j in range(0, len(items), bs):
        x = ink_to_tensor(np.stack([render_sketch(get_sketch(it), canvas, render) for it in items[j : j + bs]]))
        _, logits = encoder.forward_with_logits(x, canvas_index)
        pred.append(logits.argmax(-1).numpy())
    rep = classification_report(y, np.concatenate(pred))
    return {**{k: round(v, 2) for k, v in rep.items()}, "dataset": data.name, "sketches": len(items), "classes": len(set(y.tolist()))}
