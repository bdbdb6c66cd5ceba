"""Every example the app offers finds a photo of its kind in the default gallery's top 3, and the app
names only recognition categories the default gallery has photos of (shipped weights and gallery)."""

from __future__ import annotations

import json
from pathlib import Path

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
