"""Gallery index: a folder of photos -> photo embeddings -> a faiss index + metadata.

The metadata records the photo encoder's identity (weights sha256 + preprocessing) and a
fingerprint of the photo files, so an index built by other weights or for other photos is
detected as stale and never silently used. Exact inner-product search by default; for large galleries
IVF, or, when the weight set fuses HOG, two stages (:mod:`sketchdown.retrieval.twostage`: IVF over the
embeddings in memory, the HOG rows of a query's candidates read from a float16 file), so memory grows
with the embedding, not the HOG (see ``python -m sketchdown bench`` for the numbers behind the threshold).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sketchdown import config
from sketchdown.bundles.bundle import ModelBundle
from sketchdown.bundles.photo import (
    EdgeCache,
    canvas_to_tensor,
    hed_edges,
    load_hed,
    photo_autocast,
    photo_canvas,
    photo_precision,
)
from sketchdown.retrieval.twostage import TwoStageSearch
from sketchdown.sketch.hog import hog_descriptor
from sketchdown.sketch.imageio import IMAGE_EXTS, ImageError, open_image
from sketchdown.sketch.render import render_ink

if TYPE_CHECKING:  # faiss is imported where an index is built, saved or read, so code that only encodes
    import faiss  # (training on a GPU machine without faiss: training/lease.sh) can import this package

INDEX_FILE, META_FILE = "index.faiss", "index.json"
HOG_FILE = "hog.f16.npy"  # a two-stage index's HOG rows, float16, memory-mapped when loaded
INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "twostage")
IVF_NPROBE = 16  # lists searched per query (bench: gallery scale)
# bench, gallery scale (2 cores): exact search ~0.5 ms at 10k, ~10 ms at 100k, ~86 ms at 1M; IVF answers in
# < 1 ms at 100k-1M with recall@10 >= 0.95 and builds 10x faster than HNSW, so above this size: IVF
IVF_ABOVE = 50_000
GRANULARITIES = ("category", "instance")  # photos of many kinds / many photos of one kind (picks the HOG weight)
Progress = Callable[[int, int], None]


class GalleryError(RuntimeError):
    """Missing, stale or corrupt gallery index, or an unusable photo folder. One-line message."""


def check_granularity(granularity: str) -> str:
    if granularity not in GRANULARITIES:
        raise GalleryError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    return granularity


def find_photos(root: str | os.PathLike, max_files: int | None = None) -> list[Path]:
    """Image files under ``root`` (nested folders allowed), sorted, hidden folders skipped."""
    root = Path(root)
    if not root.is_dir():
        raise GalleryError(f"photo folder not found: {root}")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.lower().endswith(IMAGE_EXTS) and not f.startswith("."):
                out.append(Path(dirpath) / f)
                if max_files is not None and len(out) > max_files:
                    raise GalleryError(f"too many photos in {root} (more than {max_files})")
    if not out:
        raise GalleryError(f"no photos (jpg/png/webp) found in {root}")
    return out


def fingerprint(root: Path, rel_paths: Iterable[str]) -> str:
    """Hash of (relative path, size) for every photo: changes when photos are added/removed/replaced."""
    h = hashlib.sha256()
    for r in rel_paths:
        p = root / r
        h.update(f"{r}|{p.stat().st_size if p.exists() else -1}\n".encode())
    return h.hexdigest()


def _rel_paths(root: Path, files: Iterable[Path]) -> list[str]:
    return [f.relative_to(root).as_posix() for f in files]


def gallery_metadata(photo_dir: str | os.PathLike) -> tuple[Path, list[dict]]:
    """(folder its ``file`` fields are relative to, items) of the ``metadata.json`` in ``photo_dir`` or,
    for the default gallery's layout ``gallery/{photos/,metadata.json}``, beside it; no items when there
    is none or it is not a gallery's (someone else's JSON must not stop indexing)."""
    root = Path(photo_dir)
    meta = root / "metadata.json"
    if not meta.is_file() and root.name == "photos":
        meta = root.parent / "metadata.json"
    try:
        items = json.loads(meta.read_text("utf-8")).get("items", []) if meta.is_file() else []
    except (OSError, ValueError, AttributeError):
        items = []
    return meta.parent, [it for it in items if isinstance(it, dict) and "file" in it] if isinstance(items, list) else []


def _labels_for(root: Path, rels: list[str]) -> tuple[list[str], list[str]]:
    """Labels and categories: from ``metadata.json`` next to the photos' folder when present
    (the default gallery), else the parent folder name (nested folders = categories)."""
    base, items = gallery_metadata(root)
    by_file = {str((base / str(it["file"])).resolve()): it for it in items}
    labels, cats = [], []
    for r in rels:
        it = by_file.get(str((root / r).resolve()))
        parent = Path(r).parent.name
        labels.append(str(it.get("label", "")) if it else Path(r).stem)
        cats.append(str(it.get("category", "")) if it else parent)
    return labels, cats


class ExactIndex:
    """Exact inner-product search over ``(N, D)`` float32 vectors in NumPy, with the faiss index methods the
    search and evaluation code calls (``search``, ``ntotal``, ``d``, ``reconstruct_n``): what ``make_index``
    returns for an exact index where faiss is not installed (a GPU training machine, ``training/lease.sh``).
    It cannot be saved; galleries on disk are faiss indexes."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.x = np.ascontiguousarray(vectors, np.float32)
        self.ntotal, self.d = self.x.shape

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores (Q, k) float32, ids (Q, k) int64), best first; past the gallery's end -inf and -1."""
        s = np.asarray(queries, np.float32) @ self.x.T
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        scores = np.full((len(s), k), -np.inf, np.float32)
        ids = np.full((len(s), k), -1, np.int64)
        scores[:, : top.shape[1]], ids[:, : top.shape[1]] = np.take_along_axis(s, top, 1), top
        return scores, ids

    def reconstruct_n(self, start: int, n: int) -> np.ndarray:
        return self.x[start : start + n].copy()


def make_index(emb: np.ndarray, kind: str = "auto") -> faiss.Index | ExactIndex:
    """Inner-product index over vectors ``(N, D)`` float32: ``flat`` (exact), ``hnsw``, ``ivf``. Without faiss
    an exact index is an :class:`ExactIndex`; the approximate kinds need faiss."""
    n, dim = emb.shape
    if kind == "auto":
        kind = "ivf" if n > IVF_ABOVE else "flat"
    try:
        import faiss
    except ImportError:
        if kind == "flat":
            return ExactIndex(emb)
        raise
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
    elif kind == "ivf":
        nlist = max(1, min(4096, int(2 * np.sqrt(n))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # k-means on <= 64 points per list and 10 iterations: ~30 s at 1M on 2 cores instead of minutes
        sample = emb if n <= 64 * nlist else emb[np.random.default_rng(0).choice(n, 64 * nlist, replace=False)]
        index.cp.niter = 10
        index.cp.max_points_per_centroid = 64
        index.train(np.ascontiguousarray(sample, np.float32))
        index.nprobe = IVF_NPROBE
    else:
        raise ValueError(f"unknown index type {kind!r} (flat, hnsw, ivf)")
    index.add(np.ascontiguousarray(emb, np.float32))
    return index


@dataclass
class GalleryIndex:
    """An index over photos under ``root``. ``paths`` are relative to ``root``."""

    root: Path
    paths: list[str]
    labels: list[str]
    categories: list[str]
    index: faiss.Index | ExactIndex | TwoStageSearch  # over fused vectors, or in two stages (meta "twostage")
    meta: dict

    def __len__(self) -> int:
        return len(self.paths)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (Q, D) float32 -> (scores (Q, k), ids (Q, k)) by inner product; k is capped at the gallery size."""
        k = max(1, min(int(k), len(self.paths)))
        return self.index.search(np.ascontiguousarray(queries, np.float32), k)

    def embeddings(self) -> np.ndarray:
        """All stored vectors (N, D) (exact and two-stage indexes)."""
        if isinstance(self.index, TwoStageSearch):
            return self.index.vectors()
        return self.index.reconstruct_n(0, self.index.ntotal)

    def save(self, out: str | os.PathLike) -> Path:
        import faiss

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / (INDEX_FILE + ".tmp")
        two = self.index if isinstance(self.index, TwoStageSearch) else None
        faiss.write_index(two.first if two else self.index, str(tmp))
        if two is not None:
            ht = out / (HOG_FILE + ".tmp")
            with ht.open("wb") as f:
                np.save(f, np.asarray(two.hogs, np.float16))
            ht.replace(out / HOG_FILE)
        tmp.replace(out / INDEX_FILE)
        meta = dict(self.meta, paths=self.paths, labels=self.labels, categories=self.categories)
        mt = out / (META_FILE + ".tmp")
        mt.write_text(json.dumps(meta, indent=1) + "\n")
        mt.replace(out / META_FILE)
        return out

    @classmethod
    def load(cls, out: str | os.PathLike, root: str | os.PathLike, photo_id: str | None = None, check_files: bool = True) -> GalleryIndex:
        """Load an index; raise :class:`GalleryError` if missing, corrupt or stale."""
        import faiss

        out, root = Path(out), Path(root)
        if not (out / META_FILE).is_file() or not (out / INDEX_FILE).is_file():
            raise GalleryError(f"no gallery index in {out}")
        try:
            meta = json.loads((out / META_FILE).read_text())
            index = faiss.read_index(str(out / INDEX_FILE))
        except (json.JSONDecodeError, RuntimeError, OSError) as e:
            raise GalleryError(f"gallery index in {out} is corrupt: {str(e).splitlines()[0]}") from None
        if not isinstance(meta, dict):
            raise GalleryError(f"gallery index in {out} is corrupt: {META_FILE} is not a JSON object")
        if meta.get("index_type") == "twostage":
            index = _two_stage(out, index, int(meta.get("candidates", 256)))
        paths = meta.pop("paths", None)
        if not isinstance(paths, list) or index.ntotal != len(paths):
            raise GalleryError(f"gallery index in {out} is corrupt: {index.ntotal} vectors for {len(paths or [])} photos")
        if photo_id is not None and meta.get("photo_id") != photo_id:
            raise GalleryError(f"gallery index in {out} is stale: built with other weights ({meta.get('weights')})")
        # every photo file now in the folder (readable or not): catches added files too
        if check_files and meta.get("fingerprint") != fingerprint(root, _rel_paths(root, find_photos(root))):
            raise GalleryError(f"gallery index in {out} is stale: the photos in {root} changed")
        labels = meta.pop("labels", [""] * len(paths))
        cats = meta.pop("categories", [""] * len(paths))
        return cls(root, paths, labels, cats, index, meta)


def _two_stage(out: Path, first: faiss.Index, candidates: int) -> TwoStageSearch:
    """A saved two-stage index: the embedding index and the memory-mapped float16 HOG rows."""
    try:
        hogs = np.load(out / HOG_FILE, mmap_mode="r", allow_pickle=False)
        return TwoStageSearch(first, hogs, candidates)
    except (OSError, ValueError) as e:
        raise GalleryError(f"gallery index in {out} is corrupt: {HOG_FILE}: {str(e).splitlines()[0]}") from None


def gallery_search_index(emb: np.ndarray, kind: str = "auto", hog_dim: int = 0) -> tuple[faiss.Index | TwoStageSearch, str]:
    """The index for fused photo vectors ``(N, D)`` (the last ``hog_dim`` columns the HOG) and its type.
    ``auto``: exact up to :data:`IVF_ABOVE` photos, above it two stages when there is a HOG part, else IVF."""
    n = len(emb)
    if kind == "auto":
        kind = "flat" if n <= IVF_ABOVE else ("twostage" if hog_dim else "ivf")
    if kind != "twostage":
        return make_index(emb, kind), kind
    if not hog_dim:
        raise GalleryError("a two-stage index needs a weight set that fuses HOG (its HOG part is the second stage)")
    e = emb.shape[1] - hog_dim
    return TwoStageSearch.build(emb[:, :e], emb[:, e:].astype(np.float16), "ivf" if n > IVF_ABOVE else "flat"), kind


def embed_photos(
    bundle: ModelBundle,
    files: list[Path],
    *,
    edge_cache: EdgeCache | None = None,
    batch: int = 16,
    progress: Progress | None = None,
    skip_bad: bool = True,
) -> tuple[np.ndarray, list[int], list[str]]:
    """Photo vectors ``(N_ok, D)`` float32, the indices of the files embedded, and one error line per
    file that could not be read (skipped, when ``skip_bad``). With the bundle's HOG fusion a vector is
    ``[embedding (unit), HOG of the edge map (unit)]``; the query side weights the two parts."""
    enc, spec, render, hog = bundle.photo_encoder, bundle.photo_spec, bundle.render, bundle.hog
    ok, errors, embs, pending, pending_hog = [], [], [], [], []

    def flush() -> None:
        if pending:
            x, ctx = photo_autocast(canvas_to_tensor(np.stack(pending), spec))
            with torch.inference_mode(), ctx:
                e = enc.to(memory_format=torch.channels_last)(x).float().numpy()
            if hog is not None:
                e = np.concatenate([e, hog_descriptor(np.stack(pending_hog), hog)], 1)
            embs.append(e)
            pending.clear()
            pending_hog.clear()

    for i, f in enumerate(files):
        try:
            if spec.input == "hed":
                # load_hed() is cached: the detector loads once per process
                ink = edge_cache.get(f) if edge_cache is not None else hed_edges(load_hed(), np.asarray(open_image(f), np.uint8))
                pending.append(photo_canvas(ink, spec, render))
                if hog is not None:
                    pending_hog.append(render_ink(ink, hog.size, render))
            else:
                pending.append(photo_canvas(np.asarray(open_image(f), np.uint8), spec, render))
            ok.append(i)
        except (ImageError, OSError) as e:
            if not skip_bad:
                raise GalleryError(str(e)) from None
            errors.append(f"{f.name}: {e}")
        if len(pending) >= batch:
            flush()
        if progress:
            progress(i + 1, len(files))
    flush()
    if not embs:
        raise GalleryError("none of the photos could be read")
    return np.concatenate(embs).astype(np.float32), ok, errors


def index_photo_id(bundle: ModelBundle) -> str:
    """What a gallery index records as its photo encoder: the bundle's ``photo_id``, plus the precision
    when the photo side ran in bf16 (an index built in bf16 is stale for fp32 queries and back)."""
    return bundle.photo_id + ("+bf16" if photo_precision() == "bf16" else "")


def build_gallery(
    bundle: ModelBundle,
    photo_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    kind: str = "auto",
    edge_cache: EdgeCache | None = None,
    progress: Progress | None = None,
    max_files: int | None = None,
    granularity: str = "category",
) -> GalleryIndex:
    """Embed every photo under ``photo_dir`` with ``bundle``'s photo branch and save the index to ``out``.
    ``granularity``: "category" (photos of many kinds) or "instance" (many photos of one kind, like a
    shop's chairs); it picks the weight set's HOG weight at query time."""
    check_granularity(granularity)
    root = Path(photo_dir)
    files = find_photos(root, max_files)
    t0 = time.time()
    emb, ok, errors = embed_photos(bundle, files, edge_cache=edge_cache, progress=progress)
    rels = [files[i].relative_to(root).as_posix() for i in ok]
    labels, cats = _labels_for(root, rels)
    index, index_type = gallery_search_index(emb, kind, bundle.hog.dim if bundle.hog is not None else 0)
    meta = {
        "weights": bundle.name,
        "photo_id": index_photo_id(bundle),
        "photo_spec": vars(bundle.photo_spec),
        "dim": int(emb.shape[1]),
        "count": len(rels),
        "fingerprint": fingerprint(root, _rel_paths(root, files)),  # skipped files too: see load()
        "index_type": index_type,
        "granularity": granularity,
        "skipped": errors,
        "build_seconds": round(time.time() - t0, 1),
    }
    if isinstance(index, TwoStageSearch):
        meta["candidates"] = index.candidates
    g = GalleryIndex(root, rels, labels, cats, index, meta)
    if out is not None:
        g.save(out)
    return g


def default_index_dir(photo_dir: str | os.PathLike, bundle_name: str) -> Path:
    """Where an index for a photo folder lives by default: ``<gallery>/index/<weights>`` for the
    repo's gallery, else a per-folder directory in the user cache (never inside the user's photos)."""
    root = Path(photo_dir).resolve()
    repo_gallery = config.shipped_gallery()
    if root == (repo_gallery / "photos").resolve():
        return repo_gallery / "index" / bundle_name
    h = hashlib.sha1(str(root).encode()).hexdigest()[:16]
    cache = config.cache_dir()
    return cache / "index" / f"{root.name}-{h}" / bundle_name
