"""Two-stage fused search against brute force over the fused vectors (the simpler reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sketchdown.retrieval.twostage import TwoStageSearch


def _data(n: int = 3000, e: int = 32, h: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, e)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    hog = np.abs(rng.standard_normal((n, h))).astype(np.float32)
    hog /= np.linalg.norm(hog, axis=1, keepdims=True)
    q = np.concatenate([emb[:20] + 0.1 * rng.standard_normal((20, e)), 1.5 * hog[:20]], 1).astype(np.float32)
    return emb, hog, q


def _brute(emb, hog, q, k):
    s = q @ np.concatenate([emb, hog], 1).T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, ids, 1), ids


def test_all_candidates_equal_brute_force(tmp_path) -> None:
    emb, hog, q = _data()
    path = tmp_path / "hog.f16"  # the HOG rows on disk, as a memory map
    mm = np.memmap(path, np.float16, "w+", shape=hog.shape)
    mm[:] = hog
    ts = TwoStageSearch.build(emb, np.memmap(path, np.float16, "r", shape=hog.shape), "flat", candidates=len(emb))
    s, i = ts.search(q, 10)
    rs, ri = _brute(emb, hog.astype(np.float16).astype(np.float32), q, 10)
    assert (i == ri).all() and np.allclose(s, rs, atol=1e-4)


def test_few_candidates_miss_little_and_small_galleries_pad() -> None:
    emb, hog, q = _data()
    s, i = TwoStageSearch.build(emb, hog, "flat", candidates=300).search(q, 10)  # only the candidate cut differs
    _, ri = _brute(emb, hog, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i.tolist(), ri.tolist(), strict=True)])
    assert recall >= 0.8 and (np.diff(s, axis=1) <= 1e-6).all()  # scores best first
    s, i = TwoStageSearch.build(emb[:4], hog[:4], "flat").search(q[:2], 10)
    assert (i[:, 4:] == -1).all() and sorted(i[0, :4].tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="HOG rows"):
        TwoStageSearch.build(emb, hog[:10], "flat")


def test_gallery_index_in_two_stages_saves_loads_and_ranks_like_flat(smoke_weights, tmp_path) -> None:
    """A gallery built with ``--index-type twostage`` keeps the embeddings in memory and the HOG rows in a
    memory-mapped float16 file, and ranks every query like the exact index (all candidates rescored)."""
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.retrieval.gallery import HOG_FILE, GalleryError, GalleryIndex, build_gallery, gallery_search_index
    from sketchdown.retrieval.retriever import Retriever
    from sketchdown.sketch.examples import EXAMPLES
    from sketchdown.sketch.strokes import from_strokes

    bundle = load_bundle(str(smoke_weights))
    photos = tmp_path / "photos"
    photos.mkdir()
    for f in sorted((Path(__file__).resolve().parent.parent / "gallery" / "photos").glob("*.jpg"))[:12]:
        (photos / f.name).write_bytes(f.read_bytes())
    flat = build_gallery(bundle, photos, tmp_path / "flat", kind="flat")
    two = build_gallery(bundle, photos, tmp_path / "two", kind="twostage")
    assert two.meta["index_type"] == "twostage" and (tmp_path / "two" / HOG_FILE).is_file()
    loaded = GalleryIndex.load(tmp_path / "two", photos, bundle.photo_id)
    assert isinstance(loaded.index.hogs, np.memmap)
    np.testing.assert_allclose(loaded.embeddings(), flat.embeddings(), atol=2e-3)  # the HOG part is float16
    for strokes in EXAMPLES.values():
        sk = from_strokes(strokes)
        a = Retriever(bundle, flat).retrieve(sk, k=5)
        b = Retriever(bundle, loaded).retrieve(sk, k=5)
        assert [h.index for h in a.hits] == [h.index for h in b.hits]
    with pytest.raises(GalleryError, match="fuses HOG"):
        gallery_search_index(np.zeros((3, 8), np.float32), "twostage", hog_dim=0)
    (tmp_path / "two" / HOG_FILE).write_bytes(b"not an array")
    with pytest.raises(GalleryError, match="corrupt"):
        GalleryIndex.load(tmp_path / "two", photos, bundle.photo_id)
