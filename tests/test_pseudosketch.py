"""Photo -> pseudo-sketch: thinning, tracing, drawing order and abstraction levels, on hand-made edge
maps whose right answer is known; and the gallery pseudo-sketch dataset with its held-out split."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sketchdown.eval.data import DatasetError, gallery_classes, is_heldout, load_gallery_pseudo
from sketchdown.sketch.pseudosketch import LEVELS, abstract, edges_to_strokes, order_strokes, pseudo_sketch, thin, trace

REPO = Path(__file__).resolve().parent.parent


def _ring_and_bar(size: int = 128) -> np.ndarray:
    """A thick circle (the outline) with a short thick bar inside it, as soft edge probabilities."""
    e = np.zeros((size, size), np.float32)
    cv2.circle(e, (64, 64), 45, 1.0, thickness=5)
    cv2.line(e, (55, 60), (75, 60), 0.9, thickness=4)
    return e


def test_thin_gives_one_pixel_lines():
    mask = np.zeros((40, 60), bool)
    mask[18:23, 5:55] = True  # a 5-px thick horizontal bar
    sk = thin(mask)
    assert sk.any() and not (sk & ~mask).any()  # inside the original
    cols = sk[:, 10:50].sum(0)
    assert (cols == 1).all()  # exactly one pixel per column away from the ends
    assert set(np.nonzero(sk[:, 30])[0]) <= {19, 20, 21}  # near the middle row


def test_trace_a_line_and_a_loop():
    sk = np.zeros((30, 30), bool)
    sk[5, 3:20] = True  # open line: 17 px
    cv2.circle(sk.view(np.uint8), (15, 20), 6, 1, thickness=1)
    strokes = trace(sk)
    lengths = sorted(len(s) for s in strokes)
    assert sum(lengths) == int(sk.sum())  # every skeleton pixel lands in exactly one stroke
    line = next(s for s in strokes if len(s) == 17)
    assert set(line[:, 1].tolist()) == {5.0} and {line[0, 0], line[-1, 0]} == {3.0, 19.0}  # walked end to end


def test_outline_comes_first_then_longest():
    e = _ring_and_bar()
    strokes = edges_to_strokes(e)
    assert len(strokes) >= 2
    r = np.hypot(strokes[0][:, 0] - 64, strokes[0][:, 1] - 64)
    assert np.median(r) > 38  # the first stroke is on the circle, not the inner bar
    inner = [i for i, s in enumerate(strokes) if np.median(np.hypot(s[:, 0] - 64, s[:, 1] - 64)) < 20]
    assert inner and inner[0] > 0


def test_order_strokes_by_length_within_a_group():
    mask = np.zeros((100, 100), bool)
    a = np.array([[40, 50], [45, 50]], np.float32)  # short, interior
    b = np.array([[30, 40], [60, 40]], np.float32)  # long, interior
    mask[20:80, 20:80] = True
    out = order_strokes([a, b], mask)
    assert out[0] is b


def test_levels_get_sparser():
    e = _ring_and_bar()
    sk = [pseudo_sketch(e, lv) for lv in range(len(LEVELS))]
    ink = [s.ink_length() for s in sk]
    pts = [s.num_points for s in sk]
    assert ink[0] >= ink[1] >= ink[2] > 0
    assert pts[0] >= pts[1] >= pts[2]
    assert sk[0].num_strokes >= sk[-1].num_strokes >= 1


def test_jitter_is_seeded_and_level_zero_is_deterministic():
    e = _ring_and_bar()
    strokes = edges_to_strokes(e)
    a = abstract(strokes, 2, 128.0, np.random.default_rng(1))
    b = abstract(strokes, 2, 128.0, np.random.default_rng(1))
    c = abstract(strokes, 2, 128.0, None)
    assert all(np.array_equal(x, y) for x, y in zip(a.strokes, b.strokes, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.strokes, c.strokes, strict=True))


def test_empty_and_bad_input():
    assert pseudo_sketch(np.zeros((32, 32), np.float32)) is None
    with pytest.raises(ValueError, match="level"):
        pseudo_sketch(_ring_and_bar(), level=len(LEVELS))
    with pytest.raises(ValueError, match=r"\(h, w\)"):
        edges_to_strokes(np.zeros((4, 4, 3), np.float32))


def test_heldout_split_is_deterministic_and_about_a_fifth():
    ids = [m["id"] for m in json.loads((REPO / "gallery" / "metadata.json").read_text())["items"]]
    held = [i for i in ids if is_heldout(i)]
    assert held == [i for i in ids if is_heldout(i)]
    assert 0.1 < len(held) / len(ids) < 0.3


def test_gallery_classes_merge_rare_subfolders():
    meta = [{"category": "animals", "subcategory": "fish"}] * 6 + [{"category": "animals", "subcategory": "fish/x"}] + \
        [{"category": "animals", "subcategory": "bats"}, {"category": "space", "subcategory": None}]
    assert gallery_classes(meta) == ["fish"] * 7 + ["animals", "space"]


def test_gallery_pseudo_dataset(tmp_path, isolated_cache):
    """A 5-photo gallery: train holds only non-held-out photos; heldout keeps every photo as gallery."""
    from PIL import Image

    items = []
    (tmp_path / "photos").mkdir()
    for i in range(5):
        im = Image.new("RGB", (64, 64), "white")
        im.paste((30 * i, 0, 0), (10 + i, 12, 50, 52))
        f = f"photos/p{i}.jpg"
        im.save(tmp_path / f)
        items.append({"id": f"p{i}", "file": f, "category": "c", "subcategory": None})
    (tmp_path / "metadata.json").write_text(json.dumps({"items": items}))
    held = [m["id"] for m in items if is_heldout(m["id"])]
    tr = load_gallery_pseudo(tmp_path, "train", (0, 2), 2)
    assert len(tr.photos) == 5 - len(held)
    assert all(it.sketch.num_strokes > 0 for it in tr.sketches)
    ho = load_gallery_pseudo(tmp_path, "heldout", (2,))
    assert len(ho.photos) == 5 and {ho.photos[it.photo].stem for it in ho.sketches} <= set(held)
    with pytest.raises(DatasetError, match="split"):
        load_gallery_pseudo(tmp_path, "test")
    with pytest.raises(DatasetError, match="metadata.json"):
        load_gallery_pseudo(tmp_path / "nowhere")
