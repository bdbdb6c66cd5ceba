"""Sketch queries in batches: choose each sketch's canvas (the selector at lambda_F, or a fixed size),
draw it there, run a sketch branch, and fuse the HOG descriptor into the search vector.

    q = encode_queries(bundle, sketches, "student", lam=0.1, alpha=0.3)   # -> QueryBatch

The :class:`~sketchdown.retrieval.retriever.Retriever` answers one query as a batch of one (passing
its ONNX runners where it uses them), evaluation runs whole datasets, training its validation splits:
one code path, so a sketch is encoded alike everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sketchdown.bundles.bundle import ModelBundle, SketchBranch
from sketchdown.bundles.flops import selector_flops
from sketchdown.sketch.hog import fuse_queries, hog_descriptor
from sketchdown.sketch.render import RenderSpec, ink_to_tensor, render_sketches
from sketchdown.sketch.strokes import Sketch, stroke_sequence

# (x float32 (B, 3, S, S) in [-1, 1], canvas S) -> (embeddings (B, D) unit norm, category logits (B, C) or None)
Runner = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor | None]]
# (stroke-5 sequence float32 (L, 5), lambda_F) -> (K,) selector logits: one sketch, e.g. in ONNX Runtime
SelectOne = Callable[[np.ndarray, float], np.ndarray]


def encoder_runner(encoder: torch.nn.Module, canvas_index: Callable[[int], int] | int = 0,
                   device: torch.device | str | None = None, logits: bool = False) -> Runner:
    """A :data:`Runner` of an eager :class:`~sketchdown.models.modules.EmbeddingEncoder` (the caller
    sets eval mode): inputs moved to ``device`` (default: the encoder's), outputs float32 on the CPU.
    ``canvas_index``: the canvas-specific batch norms' index, fixed or per canvas size."""
    dev = device or next(encoder.parameters()).device
    index = canvas_index if callable(canvas_index) else (lambda _c: canvas_index)

    @torch.inference_mode()
    def run(x: torch.Tensor, canvas: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not logits:
            return encoder(x.to(dev), index(canvas)).float().cpu(), None
        e, lg = encoder.forward_with_logits(x.to(dev), index(canvas))
        return e.float().cpu(), (lg.float().cpu() if lg is not None else None)

    return run


def branch_runner(branch: SketchBranch, logits: bool = False) -> Runner:
    """The eager :data:`Runner` of a bundle's sketch branch (its canvases' batch-norm indices)."""
    return encoder_runner(branch.encoder, branch.canvas_index, logits=logits)


def pad_sequences(seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stroke-5 sequences ``(L_i, 5)`` -> zero-padded float32 ``(B, max L, 5)`` and int64 lengths ``(B,)``,
    the selector's batched input."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    x = torch.zeros(len(seqs), int(lens.max()) if len(seqs) else 0, 5)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.from_numpy(np.asarray(s, np.float32))
    return x, lens


@dataclass
class CanvasChoice:
    """Each sketch's canvas, the selector's softmax over the branch's canvases (None where it did not
    run: a fixed canvas, no selector for the branch, a raster sketch), its FLOPs and the length of the
    stroke sequence it read (both 0 there)."""

    canvases: list[int]
    probs: list[dict[int, float] | None]
    flops: list[int]
    steps: list[int]


@torch.inference_mode()
def choose_canvases(bundle: ModelBundle, sketches: Sequence[Sketch], model: str, canvas: int | None = None,
                    lam: float | None = None, select: SelectOne | None = None, bs: int = 256) -> CanvasChoice:
    """Canvas per sketch: ``canvas`` for all (validated), else the selector's pick at ``lam`` (default
    the bundle's lambda_F) where the selector serves ``model`` and the sketch has strokes, else the
    branch's default canvas. ``select`` runs the selector one sketch at a time (the Retriever's ONNX
    runner); default: the eager policy on padded batches of ``bs``."""
    b = bundle.sketch[model]
    n = len(sketches)
    if canvas is not None:
        b.canvas_index(int(canvas))  # validates
        return CanvasChoice([int(canvas)] * n, [None] * n, [0] * n, [0] * n)
    out = CanvasChoice([b.default_canvas] * n, [None] * n, [0] * n, [0] * n)
    sel = bundle.selector
    todo = [i for i, s in enumerate(sketches) if not s.is_raster] if sel is not None and sel.model == model else []
    if not todo:
        return out
    lam = sel.default_lam if lam is None else float(lam)
    seqs = [stroke_sequence(sketches[i]) for i in todo]
    if select is not None:
        logits = torch.from_numpy(np.stack([select(s, lam) for s in seqs]))
    else:
        parts = []
        for j in range(0, len(seqs), bs):
            x, lens = pad_sequences(seqs[j : j + bs])
            parts.append(sel.policy(x, lens, torch.full((len(lens),), lam, dtype=torch.float32)))
        logits = torch.cat(parts)
    probs = torch.softmax(logits, -1).numpy()
    for i, p, s in zip(todo, probs, seqs, strict=True):
        out.canvases[i] = b.canvas_sizes[int(np.argmax(p))]
        out.probs[i] = {int(c): float(v) for c, v in zip(b.canvas_sizes, p, strict=True)}
        out.flops[i] = selector_flops(sel.policy, len(s))
        out.steps[i] = len(s)
    return out


@dataclass
class Encoded:
    """Sketch-branch outputs, in the sketches' order."""

    embeddings: np.ndarray  # (N, D) float32, unit norm
    logits: np.ndarray | None  # (N, C) float32 category logits (None: not asked for, or no category head)
    inks: list[np.ndarray]  # (S_i, S_i) float32 ink in [0, 1]: what the network saw (empty unless kept)

    def logits_of(self, i: int) -> np.ndarray | None:
        """Sketch ``i``'s category logits (C,), or None."""
        return None if self.logits is None else self.logits[i]


def encode_sketches(run: Runner, sketches: Sequence[Sketch], canvases: Sequence[int], render: RenderSpec,
                    bs: int = 64, keep_inks: bool = False) -> Encoded:
    """Draw each sketch at its own canvas and encode it, in batches of ``bs`` per canvas size."""
    emb: np.ndarray | None = None
    logits: np.ndarray | None = None
    inks: list[np.ndarray] = [np.zeros(0, np.float32)] * len(sketches) if keep_inks else []
    for c in sorted(set(canvases)):
        idx = [i for i, ci in enumerate(canvases) if ci == c]
        for j in range(0, len(idx), bs):
            chunk = idx[j : j + bs]
            img = render_sketches([sketches[i] for i in chunk], c, render)
            e, lg = run(ink_to_tensor(img), c)
            if emb is None:
                emb = np.zeros((len(sketches), e.shape[1]), np.float32)
            emb[chunk] = e.numpy()
            if lg is not None:
                if logits is None:
                    logits = np.zeros((len(sketches), lg.shape[1]), np.float32)
                logits[chunk] = lg.numpy()
            if keep_inks:
                for i, im in zip(chunk, img, strict=True):
                    inks[i] = im
    return Encoded(emb if emb is not None else np.zeros((0, 0), np.float32), logits, inks)


def query_hogs(bundle: ModelBundle, sketches: Sequence[Sketch], inks: Sequence[np.ndarray] | None = None,
               bs: int = 256) -> np.ndarray:
    """HOG ``(N, H)`` float32 of each sketch drawn at the weight set's HOG size; an ink of that size in
    ``inks`` (the encoder's canvas) is reused rather than drawn again."""
    spec = bundle.hog
    assert spec is not None, "the weight set fuses no HOG"
    out = []
    for j in range(0, len(sketches), bs):
        chunk = range(j, min(j + bs, len(sketches)))
        drawn = [inks[i] if inks and inks[i].shape == (spec.size, spec.size) else None for i in chunk]
        redo = [i for i, d in zip(chunk, drawn, strict=True) if d is None]
        fresh = iter(render_sketches([sketches[i] for i in redo], spec.size, bundle.render))
        out.append(hog_descriptor(np.stack([d if d is not None else next(fresh) for d in drawn]), spec))
    return np.concatenate(out) if out else np.zeros((0, spec.dim), np.float32)


def search_vectors(bundle: ModelBundle, embeddings: np.ndarray, hogs: np.ndarray | None, alpha: float) -> np.ndarray:
    """Query vectors ``(N, D)`` matching the gallery's: the embeddings, or ``[embedding, alpha * HOG]``
    ``(N, D + H)`` when the weight set fuses HOG (zeros in the HOG part when ``alpha`` is 0)."""
    if bundle.hog is None:
        return embeddings
    return fuse_queries(embeddings, hogs if alpha > 0 else None, alpha, bundle.hog)


@dataclass
class QueryBatch:
    """Search vectors of a batch of sketches with what it took to make them."""

    vectors: np.ndarray  # (N, D [+ H]) float32, for GalleryIndex.search
    encoded: Encoded
    choice: CanvasChoice


def encode_queries(bundle: ModelBundle, sketches: Sequence[Sketch], model: str | None = None, canvas: int | None = None,
                   lam: float | None = None, alpha: float = 0.0, run: Runner | None = None, select: SelectOne | None = None,
                   bs: int = 64, keep_inks: bool = False) -> QueryBatch:
    """Canvas choice (:func:`choose_canvases`), encoding (:func:`encode_sketches`; ``run`` defaults to
    the branch's eager runner) and HOG fusion at weight ``alpha`` (0: the network alone) for ``sketches``
    under ``model`` (default: the branch the selector serves)."""
    model = model or bundle.default_model
    choice = choose_canvases(bundle, sketches, model, canvas, lam, select)
    fuse = bundle.hog is not None and alpha > 0
    enc = encode_sketches(run or branch_runner(bundle.sketch[model]), sketches, choice.canvases, bundle.render, bs,
                          keep_inks=keep_inks or (fuse and bundle.hog.size in choice.canvases))
    hogs = query_hogs(bundle, sketches, enc.inks) if fuse else None
    return QueryBatch(search_vectors(bundle, enc.embeddings, hogs, alpha), enc, choice)
