"""Quick, Draw! doodles as category-level pairs: the reviewed category map, tracing bitmaps into
strokes, the train / held-out split, kind-aware batches, category-level ranks, and the fetch step's
checks. Everything runs on a small fake gallery and fake doodle files made here."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from sketchdown.eval.data import DOODLE_SPLIT, DatasetError, doodle_classes, doodle_to_sketch, is_heldout, load_doodles
from sketchdown.eval.metrics import rank_of_true
from training.common import make_source, sample_batch
from training.fetch_quickdraw import MEMBER, extract

REPO = Path(__file__).resolve().parent.parent


def _bitmap(kind: int, k: int) -> list[float]:
    """A 28x28 doodle: kind 0 a circle, kind 1 a cross, kind 2 a triangle, jittered by ``k``."""
    im = np.zeros((28, 28), np.uint8)
    o = k % 3
    if kind == 0:
        cv2.circle(im, (14 + o - 1, 14), 9, 255, 1, cv2.LINE_AA)
    elif kind == 1:
        cv2.line(im, (4, 4 + o), (23, 23), 255, 1, cv2.LINE_AA)
        cv2.line(im, (23, 4), (4, 23 - o), 255, 1, cv2.LINE_AA)
    else:
        cv2.polylines(im, [np.array([[4, 23], [14, 4 + o], [23, 23]], np.int32)], True, 255, 1, cv2.LINE_AA)
    return (im.astype(np.float32) / 255).round(3).ravel().tolist()


@pytest.fixture()
def fake_gallery(tmp_path: Path, photo_writer) -> tuple[Path, Path]:
    """A gallery of 12 photos in 3 folders with a category map, and 100 doodles per mapped category."""
    items = []
    for i in range(12):
        sub = ["fish", "cats", "tools"][i % 3]
        pid = f"g-{sub}-{i}"
        photo_writer(tmp_path / "gallery" / "photos" / f"{pid}.png", i)
        items.append({"id": pid, "file": f"photos/{pid}.png", "label": pid, "category": "animals" if sub != "tools" else "household",
                      "subcategory": sub if sub != "cats" else "mammals/cats"})
    g = tmp_path / "gallery"
    (g / "metadata.json").write_text(json.dumps({"items": items}))
    rules = {"fish": ["sub:animals/fish"], "cat": ["sub:animals/mammals"], "saw": ["id:g-tools-2", "id:g-tools-5"],
             "nothing": ["id:no-such-photo"]}
    (g / "quickdraw_map.json").write_text(json.dumps({"classes": rules}))
    qd = tmp_path / "qd"
    qd.mkdir()
    for kind, cls in enumerate(["fish", "cat", "saw"]):
        with gzip.open(qd / f"{cls}.ndjson.gz", "wt") as f:
            for k in range(100):
                f.write(json.dumps(_bitmap(kind, k)) + "\n")
    return g, qd


def test_rank_of_true_with_a_mask_is_the_best_right_photo() -> None:
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(40, 15)).round(1)  # rounded: ties happen
    mask = rng.random((40, 15)) < 0.2
    mask[np.arange(40), rng.integers(0, 15, 40)] = True
    ranks = rank_of_true(sims, mask)
    for q in range(40):  # reference: 1 + wrong photos scoring at least the best right photo
        best = sims[q][mask[q]].max()
        assert ranks[q] == 1 + sum(sims[q, j] >= best for j in range(15) if not mask[q, j])
    one = rng.integers(0, 15, 40)
    np.testing.assert_array_equal(rank_of_true(sims, np.eye(15, dtype=bool)[one]), rank_of_true(sims, one))
    with pytest.raises(ValueError, match="one right photo per row"):
        rank_of_true(sims, np.zeros((40, 15), bool))


def test_doodle_traced_into_strokes_follows_the_bitmap_ink() -> None:
    for kind in range(3):
        bm = np.asarray(_bitmap(kind, 1), np.float32).reshape(28, 28)
        sk = doodle_to_sketch(bm, upscale=4)
        assert sk is not None and not sk.is_raster
        # in the 4x upscaled frame: every stroke point sits on ink, and most ink is near a stroke
        ink = cv2.resize(bm, (112, 112), interpolation=cv2.INTER_CUBIC) > 0.4
        dist_to_ink = cv2.distanceTransform((~ink).astype(np.uint8), cv2.DIST_L2, 3)
        pts = np.concatenate(sk.strokes).round().astype(int)
        assert dist_to_ink[pts[:, 1], pts[:, 0]].max() <= 1.0
        drawn = np.zeros((112, 112), np.uint8)
        drawn[pts[:, 1], pts[:, 0]] = 1
        dist_to_stroke = cv2.distanceTransform(1 - drawn, cv2.DIST_L2, 3)
        # (thinning shortens line ends a little: a cross loses ~1 bitmap pixel per arm)
        assert (dist_to_stroke[ink] <= 4).mean() >= 0.85
    assert doodle_to_sketch(np.zeros((28, 28), np.float32)) is None
    with pytest.raises(DatasetError):
        doodle_to_sketch(np.zeros(784, np.float32))


def test_category_map_resolves_rules_and_skips_unknown_photos(fake_gallery) -> None:
    g, _ = fake_gallery
    m = doodle_classes(g)
    assert m["fish"] == [0, 3, 6, 9] and m["cat"] == [1, 4, 7, 10] and m["saw"] == [2, 5]
    assert "nothing" not in m  # a rule naming no photo maps nothing
    bad = json.loads((g / "quickdraw_map.json").read_text())
    bad["classes"]["fish"] = ["folder:fish"]
    (g / "quickdraw_map.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match="bad rule"):
        doodle_classes(g)


def test_doodle_splits_hold_out_doodles_and_photos(fake_gallery) -> None:
    g, qd = fake_gallery
    meta = json.loads((g / "metadata.json").read_text())["items"]
    tr = load_doodles("train", g, qd)
    ho = load_doodles("heldout", g, qd)
    held = {m["file"] for m in meta if is_heldout(m["id"])}
    assert not held & {p.relative_to(g).as_posix() for p in tr.photos}  # held-out photos never train
    assert len(ho.photos) == 12  # the whole gallery is searched
    assert {int(it.name.split("/")[1]) for it in tr.sketches} <= set(range(DOODLE_SPLIT))
    assert {int(it.name.split("/")[1]) for it in ho.sketches} == set(range(DOODLE_SPLIT, 100))
    mask = ho.true()
    assert mask.shape == (len(ho.sketches), 12)
    for it, row in zip(ho.sketches, mask, strict=True):
        cls = it.name.split("/")[0]
        right = {p.stem for p, r in zip(ho.photos, row, strict=True) if r}
        assert right == {meta[i]["id"] for i in doodle_classes(g)[cls]}
        assert row[it.photo]
    with pytest.raises(DatasetError, match="fetch_quickdraw"):
        load_doodles("heldout", g, g / "missing")


def test_kind_batches_never_use_a_right_photo_as_a_negative(fake_gallery) -> None:
    from sketchdown.bundles.photo import EdgeCache

    g, qd = fake_gallery
    tr = load_doodles("train", g, qd, max_per_class=5)
    src = make_source("doodles", tr, EdgeCache(g / "edges"))
    assert src.kinds is not None and len(src.kinds) == 3
    rng = np.random.default_rng(1)
    for _ in range(20):
        b = sample_batch(src, 8, rng, {}, augment=False)
        assert len(b.photo_ids) == 3  # one photo per kind
        kinds_used = [next(k for k, (pos, _) in enumerate(src.kinds) if p in pos) for p in b.photo_ids]
        assert len(set(kinds_used)) == 3


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_fetch_checks_the_sha256_and_extracts_only_mapped_categories(tmp_path: Path) -> None:
    tgz = _tarball({MEMBER.format("fish"): b"fish-bytes", MEMBER.format("cat"): b"cat-bytes", "package/README.md": b"x"})
    sha = hashlib.sha256(tgz).hexdigest()
    with pytest.raises(ValueError, match="sha256"):
        extract(tgz, ["fish"], tmp_path / "a", sha256="0" * 64)
    assert not (tmp_path / "a").exists()  # nothing written on a bad download
    with pytest.raises(ValueError, match="no drawings for"):
        extract(tgz, ["fish", "dog"], tmp_path / "b", sha256=sha)
    out = extract(tgz, ["fish"], tmp_path / "c", sha256=sha)
    assert [p.name for p in out] == ["fish.ndjson.gz"] and out[0].read_bytes() == b"fish-bytes"
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["fish.ndjson.gz"]


def test_shipped_category_map_names_real_gallery_photos() -> None:
    meta = json.loads((REPO / "gallery" / "metadata.json").read_text())["items"]
    ids = {m["id"] for m in meta}
    rules = json.loads((REPO / "gallery" / "quickdraw_map.json").read_text())["classes"]
    named = [r[3:] for rs in rules.values() for r in rs if r.startswith("id:")]
    assert named and set(named) <= ids
    resolved = doodle_classes()
    assert set(resolved) == set(rules)  # every reviewed category maps to at least one photo
    # the folder rule takes the GCompris photos filed in the Tux Paint folder of their kind
    assert {meta[i]["id"] for i in resolved["cat"]} == {"animals-lion-2", "animals-mammals-cats-lion", "animals-tiger",
                                                         "animals-tiger-sumatran", "gcompris-cheetah", "gcompris-farm-cat",
                                                         "gcompris-kitten"}


def test_doodle_fit_and_val_split_the_training_doodles(fake_gallery) -> None:
    from sketchdown.eval.data import DOODLE_VAL

    g, qd = fake_gallery
    ids = {s: {it.name for it in load_doodles(s, g, qd).sketches} for s in ("train", "fit", "val")}
    assert ids["fit"] | ids["val"] == ids["train"] and not ids["fit"] & ids["val"]
    assert {int(n.split("/")[1]) for n in ids["val"]} <= set(range(DOODLE_VAL, DOODLE_SPLIT)) and ids["val"]
    assert load_doodles("val", g, qd).granularity == "category"
    with pytest.raises(DatasetError, match="doodle split"):
        load_doodles("test", g, qd)
