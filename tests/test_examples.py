"""Every example the app offers finds a photo of its kind in the default gallery's top 3, and the app
names only recognition categories the default gallery has photos of (shipped weights and gallery)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sketchdown import Retriever, load_bundle
from sketchdown.config import examples_dir, gallery_dir, shipped_gallery
from sketchdown.eval.data import class_photo_counts, class_photos, doodle_classes
from sketchdown.sketch.strokes import from_strokes
from webapp.config import AppConfig
from webapp.demo import app_examples
from webapp.model import load_model

REPO = Path(__file__).resolve().parents[1]
# what each offered example is a sketch of: a kind of gallery/quickdraw_map.json, or a recognition class
KINDS = {"fish": "fish", "cat face": "cat", "guitar": "guitar", "chair": "chair", "traced: clownfish": "fish",
         "traced: guitar-electric": "guitar", "traced: lion": "lion"}


def _meta() -> list[dict]:
    return json.loads((shipped_gallery() / "metadata.json").read_text("utf-8"))["items"]


def _photos_of(kind: str) -> set[str]:
    meta = _meta()
    mapped = doodle_classes()
    return {meta[i]["file"].split("/")[-1] for i in mapped[kind]} if kind in mapped \
        else {f"{i}.jpg" for i in class_photos(kind, meta)}


@pytest.fixture(scope="module")
def app_model():
    return load_model(AppConfig(weights=str(REPO / "weights" / "default"), gallery=gallery_dir(), warmup=False))


def test_every_offered_example_has_a_kind_with_photos() -> None:
    assert set(app_examples(examples_dir())) == set(KINDS), "a new example needs its kind here"
    for name, kind in KINDS.items():
        assert _photos_of(kind), f"{name}: the default gallery has no photo of {kind}"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_example_finds_its_kind_in_the_top_3(app_model, name: str) -> None:
    strokes = app_examples(examples_dir())[name]
    res = app_model.retriever.retrieve(from_strokes(strokes), k=3)  # the app's defaults: selector, HOG fused
    top = [Path(h.path).name for h in res.hits]
    assert set(top) & _photos_of(KINDS[name]), f"{name}: top 3 {top} has no photo of {KINDS[name]}"


def test_app_names_only_categories_the_gallery_has(app_model) -> None:
    bundle = load_bundle(str(REPO / "weights" / "default"))
    counts = class_photo_counts(bundle.classes, _meta())
    print("\nrecognition class: default-gallery photos")
    print("\n".join(f"  {c}: {n}" for c, n in counts.items()))
    assert app_model.class_photos == counts
    offered = app_model.offered_classes()
    assert offered == [c for c in bundle.classes if counts[c] > 0]
    assert counts["chair"] >= 4 and counts["cup"] >= 2  # the benchmark's object is in the gallery
    assert {"alarm_clock", "eyeglasses", "hourglass", "shoe", "starfish"}.isdisjoint(offered)  # no photos: not named
    # a sketch whose likeliest class has no photos is described by the three likeliest that do
    plain = Retriever(bundle, app_model.retriever.gallery)
    for strokes in app_examples(examples_dir()).values():
        named = [c for c, _ in app_model.retriever.retrieve(from_strokes(strokes), k=1).categories]
        assert len(named) == 3 and set(named) <= set(offered)
        top = [c for c, _ in plain.retrieve(from_strokes(strokes), k=1).categories]
        assert [c for c in top if c in offered] == named[: len([c for c in top if c in offered])]


def _replay(h, strokes: list, n: int, part: int = 0) -> dict:
    """The page's payload after ``n`` strokes and ``part`` points of the next, sent through ``/retrieve``;
    the rank panel's update."""
    shown = [s for s in strokes[:n]] + ([strokes[n][:part]] if part else [])
    return h.retrieve(json.dumps(shown), session=h.session)[9]


def test_rank_per_stroke_view_matches_evaluate(app_model) -> None:
    from sketchdown.eval.data import PairedDataset, SketchItem
    from sketchdown.eval.evaluate import evaluate
    from sketchdown.eval.rows import RowKey
    from webapp.handlers import Handlers
    from webapp.session import Session

    h = Handlers(app_model)
    h.session = Session()
    examples = app_examples(examples_dir())
    assert [t.name for t in app_model.traced] == sorted(k for k in examples if k.startswith("traced: "))
    g = app_model.retriever.gallery
    photos = [g.root / p for p in g.paths]
    items, app_ranks = [], []
    for t in app_model.traced:
        strokes = examples[t.name]
        assert _replay(h, strokes, 1, part=0)["visible"] is True
        assert _replay(h, strokes, 1, part=4)["visible"] is True  # mid-stroke: the completed strokes' curve
        panel = _replay(h, strokes, len(strokes))
        ranks = json.loads(re.search(r"data-ranks='([^']*)'", panel["value"]).group(1))
        assert len(ranks) == len(strokes) and all(1 <= r <= len(g) for r in ranks)
        app_ranks += ranks
        target = [Path(p).name for p in g.paths].index(t.target)
        items += [SketchItem(f"{t.name}/{i}", from_strokes(strokes[:i]), target) for i in range(1, len(strokes) + 1)]
    assert _replay(h, [[[1, 1], [300, 300]]], 1)["visible"] is False  # a drawing of one's own: no panel
    h.session.rank_full = True  # "also the full network": a second line
    lines = re.findall(r"data-label='([^']*)' data-ranks='([^']*)'", _replay(h, strokes, len(strokes))["value"])
    assert [lab for lab, _ in lines] == ["student + selector", f"full network ({app_model.bundle.full.name})"]
    assert len(json.loads(lines[1][1])) == len(strokes)
    sel = app_model.bundle.selector
    row = RowKey(sel.model, lam=sel.default_lam, hog=True)
    data = PairedDataset("traced-prefixes", items, photos, list(g.categories), granularity="category")
    got = evaluate(app_model.bundle, data, [row], prefix_steps=0, latency_queries=0)[0]
    r = np.array(app_ranks)
    print(f"\nrank after each stroke, app: {app_ranks}; evaluate: mean rank {got['mean_rank']}")
    assert got["mean_rank"] == pytest.approx(r.mean(), abs=0.01) and got["median_rank"] == float(np.median(r))
    for k in (1, 5, 10):
        assert got[f"acc@{k}"] == pytest.approx(100 * (r <= k).mean(), abs=0.01)
