"""Training data: sources (paired datasets with their photos' edge maps in memory), the validation split,
batches (mixing sources, augmenting), sketches and photos drawn into network inputs, and ranking a
validation split. The run's environment is in :mod:`training.env`, checkpoints in :mod:`training.checkpoints`,
config parsing in :mod:`training.configs`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sketchdown.bundles.photo import EdgeCache, PhotoSpec, photo_canvas
from sketchdown.eval.data import PairedDataset, get_sketch, load_chairv2, load_doodles, load_gallery_pseudo, load_sketchy
from sketchdown.eval.metrics import rank_of_true
from sketchdown.retrieval.encode import encode_sketches, encoder_runner
from sketchdown.sketch.render import RenderSpec, ink_to_tensor, render_sketch_sizes, render_sketches
from sketchdown.sketch.strokes import Sketch

from .augment import augment_ink, augment_sketch


@dataclass
class Source:
    """One training source: a paired dataset with its photo ink maps in memory."""

    name: str
    data: PairedDataset
    photo_ink: list[np.ndarray]  # (h, w) float32 edge maps, one per photo
    sketches_by_photo: list[list[int]]
    raster_cache: dict[int, Sketch] = field(default_factory=dict)
    # category-level pairs (doodles): (photos of a kind, sketches of that kind); None: instance-level
    kinds: list[tuple[tuple[int, ...], list[int]]] | None = None
    # instance-level: the photos batches are drawn from (None: all); a held-out fold's photos stay out
    train_photos: list[int] | None = None

    def sketch(self, i: int) -> Sketch:
        if i not in self.raster_cache:
            self.raster_cache[i] = get_sketch(self.data.sketches[i])
        return self.raster_cache[i]


def _by_photo(data: PairedDataset) -> list[list[int]]:
    """Each photo's sketch indices."""
    by_photo: list[list[int]] = [[] for _ in data.photos]
    for i, it in enumerate(data.sketches):
        by_photo[it.photo].append(i)
    return by_photo


def make_source(name: str, data: PairedDataset, edges: EdgeCache) -> Source:
    by_photo = _by_photo(data)
    ink = [edges.get(p) for p in data.photos]
    kinds = None
    if data.positives is not None:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, pos in enumerate(data.positives):
            groups.setdefault(tuple(sorted(pos)), []).append(i)
        kinds = list(groups.items())
    return Source(name, data, ink, by_photo, kinds=kinds)


def subset_source(src: Source, photo_ids: list[int], name: str) -> Source:
    """The photos ``photo_ids`` of an instance-level ``src`` (re-indexed in that order) and their sketches; the
    edge maps are reused, not recomputed."""
    data = dataclasses.replace(src.data.subset(photo_ids), name=name)
    return Source(name, data, [src.photo_ink[p] for p in photo_ids], _by_photo(data))


def split_val(data: PairedDataset, n_val: int, seed: int = 0) -> tuple[PairedDataset, PairedDataset]:
    """Carve ``n_val`` photos (and their sketches) out of a training split for model selection."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.photos)).tolist()
    return data.subset(sorted(order[n_val:])), data.subset(sorted(order[:n_val]))


def parse_holdout(holdout: str) -> tuple[int, int]:
    """``"f/k"`` -> (f, k): fold f of k held out (0 <= f < k, k >= 2)."""
    try:
        f, k = (int(v) for v in holdout.split("/"))
    except ValueError:
        raise SystemExit(f"--holdout {holdout!r}: expected FOLD/FOLDS, e.g. 0/4") from None
    if not (k >= 2 and 0 <= f < k):
        raise SystemExit(f"--holdout {holdout!r}: need FOLDS >= 2 and 0 <= FOLD < FOLDS")
    return f, k


def photo_folds(true: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index in [0, k) of every sample, (N,) int64, from ``true`` = each sample's group (its photo;
    for doodles, its kind): the groups are shuffled and dealt round-robin, so all sketches (and prefixes,
    variants) of one photo share a fold and fold sizes differ by <= 1 group."""
    photos = np.unique(true)
    fold_of = dict(zip(np.random.default_rng(seed).permutation(photos).tolist(), np.arange(len(photos)) % k, strict=True))
    return np.array([fold_of[int(t)] for t in true], np.int64)


def photo_fold_of(n_photos: int, k: int, seed: int = 0) -> np.ndarray:
    """Fold in [0, k) of each of ``n_photos`` training photos, (n_photos,) int64 (:func:`photo_folds` over the
    photos). A student trained with ``distill --holdout f/k`` never sees fold f's photos or sketches, so its
    rankings of them are held out (the canvas selector's extra rewards)."""
    return photo_folds(np.arange(n_photos), k, seed)


def load_sources(
    root: str | None, use_sketchy: bool, n_val: int, edges: EdgeCache, use_gallery: bool = False,
    use_doodles: bool = False, doodle_split: str = "train",
) -> tuple[list[Source], Source]:
    """ChairV2 train minus a validation split (+ Sketchy10 train, + pseudo-sketches of the default
    gallery's training photos, + Quick, Draw! doodles of the gallery's kinds paired with its training
    photos of that kind: ``doodle_split`` "train", or "fit" to keep "val" for selection).
    Returns (train sources, chair val)."""
    chair_tr, chair_val = split_val(load_chairv2(root, "train"), n_val)
    sources = [make_source("chairv2", chair_tr, edges)]
    if use_sketchy:
        sources.append(make_source("sketchy10", load_sketchy(root, "train"), edges))
    if use_gallery:
        # three abstraction levels, plus a jittered copy of each (held-out photos never appear)
        sources.append(make_source("gallery", load_gallery_pseudo(None, "train", (0, 1, 2), 2, edges), edges))
    if use_doodles:
        sources.append(make_source("doodles", load_doodles(doodle_split), edges))
    return sources, make_source("chairv2-val", chair_val, edges)


def distractor_inks(src: Source, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` photo edge maps drawn from a training source: added to the 40-photo validation gallery so it
    has the test split's size (100) and ranking is not too easy."""
    pick = rng.choice(len(src.photo_ink), min(n, len(src.photo_ink)), replace=False)
    return [src.photo_ink[i] for i in sorted(pick.tolist())]


def source_classes(sources: list[Source]) -> list[str]:
    """Category names over all sources, in source order (the recognition head's classes)."""
    out: list[str] = []
    for s in sources:
        out += [c for c in s.data.classes if c not in out]
    return out


def pick_source(sources: list[Source], mix: tuple[float, ...], rng: np.random.Generator) -> Source:
    """Draw a source with probabilities ``mix`` (one weight per source; extra weights ignored)."""
    w = np.asarray((list(mix) + [1.0] * len(sources))[: len(sources)], float)
    return sources[int(rng.choice(len(sources), p=w / w.sum()))]


@dataclass
class Batch:
    sketches: list[Sketch]  # augmented
    photo_ink: list[np.ndarray]  # augmented edge maps
    labels: torch.Tensor  # (B,) class index, -1 when unknown
    flips: np.ndarray  # (B,) bool: mirror both canvases
    photo_ids: list[int]  # (B,) the photos, indices into the source's photos
    bank_rows: list[int] | None = None  # (B,) rows of the sketch bank the sketches came from (with ``bank``)


def sample_batch(src: Source, batch: int, rng: np.random.Generator, class_index: dict[str, int], augment: bool = True,
                 bank: Any = None) -> Batch:
    """``batch`` distinct photos, one random sketch each: every other photo is an in-batch negative.
    For category-level sources (``src.kinds``) one photo per kind, and kinds sharing a photo never
    meet in a batch (a photo of the right kind must not be a negative). With a ``bank``
    (:class:`training.bank.SketchBank` of ``src``) each sketch is one of its fixed variants, mirrored as
    the variant is; the photo's edge map is still augmented."""
    sketch_ids: list[int] | None = None
    if src.kinds is not None:
        photos, sketch_ids, used = [], [], set()
        for k in rng.permutation(len(src.kinds)):
            pos, sks_k = src.kinds[int(k)]
            if used.isdisjoint(pos):
                used |= set(pos)
                photos.append(int(rng.choice(pos)))
                sketch_ids.append(int(rng.choice(sks_k)))
                if len(photos) == batch:
                    break
    elif src.train_photos is not None:
        allowed = np.asarray(src.train_photos)
        photos = [int(p) for p in rng.choice(allowed, size=min(batch, len(allowed)), replace=False)]
    else:
        n = len(src.data.photos)
        photos = [int(p) for p in rng.choice(n, size=min(batch, n), replace=False)]
    sks, inks, labels, rows = [], [], [], []
    for j, p in enumerate(photos):
        # (instance-level: the sketch is drawn here, between augmentations, as the shipped runs did)
        i = sketch_ids[j] if sketch_ids is not None else int(rng.choice(src.sketches_by_photo[p]))
        ink = src.photo_ink[p]
        if bank is not None:
            rows.append(bank.row(i, rng))
            sk = bank.sketches[rows[-1]]
        else:
            sk = src.sketch(i)
            if augment:
                sk = augment_sketch(sk, rng)
        if augment:
            ink = augment_ink(ink, rng, rot_deg=3, scale=0.05, shear=0.03)
        sks.append(sk)
        inks.append(ink)
        labels.append(class_index.get(src.data.photo_labels[p], -1))
    if bank is not None:
        return Batch(sks, inks, torch.tensor(labels), bank.flips[rows], [int(p) for p in photos], rows)
    flips = rng.random(len(photos)) < 0.5 if augment else np.zeros(len(photos), bool)
    return Batch(sks, inks, torch.tensor(labels), flips, [int(p) for p in photos])


def sketch_canvases(sketches: list[Sketch], size: int, render: RenderSpec, flips: np.ndarray | None = None) -> np.ndarray:
    """Sketches drawn at ``size``, mirrored where ``flips``: float32 ink ``(B, size, size)`` in [0, 1]."""
    canv = render_sketches(sketches, size, render)
    if flips is not None:
        canv = np.stack([c[:, ::-1] if f else c for c, f in zip(canv, flips, strict=True)])
    return canv


def sketch_tensor(sketches: list[Sketch], size: int, render: RenderSpec, flips: np.ndarray | None = None) -> torch.Tensor:
    return ink_to_tensor(sketch_canvases(sketches, size, render, flips))


def sketch_tensors(sketches: list[Sketch], sizes: tuple[int, ...], render: RenderSpec,
                   flips: np.ndarray | None = None) -> dict[int, torch.Tensor]:
    """``sketch_tensor`` at every size in ``sizes`` (float32 (B, 3, S, S) each), each sketch drawn once."""
    per = [render_sketch_sizes(s, sizes, render) for s in sketches]
    out = {}
    for size in sizes:
        canv = [p[size] for p in per]
        if flips is not None:
            canv = [c[:, ::-1] if f else c for c, f in zip(canv, flips, strict=True)]
        out[size] = ink_to_tensor(np.stack(canv))
    return out


def photo_tensor(inks: list[np.ndarray], spec: PhotoSpec, render: RenderSpec, flips: np.ndarray | None = None) -> torch.Tensor:
    canv = [photo_canvas(i, spec, render) for i in inks]
    if flips is not None:
        canv = [c[:, ::-1] if f else c for c, f in zip(canv, flips, strict=True)]
    return ink_to_tensor(np.stack(canv))


@torch.inference_mode()
def encode_photos(encoder: torch.nn.Module, inks: list[np.ndarray], spec: PhotoSpec, render: RenderSpec, bs: int = 32) -> torch.Tensor:
    was = encoder.training
    encoder.eval()
    dev = next(encoder.parameters()).device
    out = [encoder(photo_tensor(inks[i : i + bs], spec, render).to(dev)).float().cpu() for i in range(0, len(inks), bs)]
    encoder.train(was)
    return torch.cat(out)


@torch.inference_mode()
def evaluate_ranks(
    sketch_encoder: torch.nn.Module, photo_emb: torch.Tensor, src: Source, size: int, render: RenderSpec,
    canvas_index: int = 0, bs: int = 64, bias: np.ndarray | None = None,
) -> np.ndarray:
    """1-based rank of the true photo for every sketch of ``src`` (full sketches). ``bias`` (N, P) is
    added to the similarities (``alpha * cos(HOG)``: rank by the fused score)."""
    was = sketch_encoder.training
    sketch_encoder.eval()
    sks = [src.sketch(i) for i in range(len(src.data.sketches))]
    embs = encode_sketches(encoder_runner(sketch_encoder, canvas_index), sks, [size] * len(sks), render, bs).embeddings
    sketch_encoder.train(was)
    sims = (torch.from_numpy(embs) @ photo_emb.T).numpy()
    if bias is not None:
        sims = sims + bias
    # category-level sources (doodles): any photo of the right kind counts
    return rank_of_true(sims, src.data.true())
