"""The confidence cascade: its decision rule against plain loops, its manifest form, the Retriever's
stage-by-stage run against fixed-canvas searches, evaluation against the Retriever, and the fit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sketchdown.bundles.cascade import CascadeSpec, margins, stage_costs, stop_stages
from sketchdown.bundles.manifest import CascadeComponent, Manifest
from sketchdown.bundles.weights import WeightsError
from sketchdown.eval.rows import RowKey
from sketchdown.sketch.strokes import Sketch


def test_margins_and_stops_match_loops() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=(50, 7))
    ref = np.array([sorted(r)[-1] - sorted(r)[-2] for r in s])
    np.testing.assert_allclose(margins(s), ref)
    assert np.isinf(margins(s[:, :1])).all()
    m = rng.uniform(0, 1, size=(50, 3))
    thr = (0.7, 0.4)
    ref_stop = []
    for row in m:
        stop = 2
        for i, t in enumerate(thr):
            if row[i] >= t:
                stop = i
                break
        ref_stop.append(stop)
    np.testing.assert_array_equal(stop_stages(m, thr), ref_stop)
    np.testing.assert_array_equal(stage_costs([1, 4, 16]), [1, 5, 21])
    with pytest.raises(ValueError, match="thresholds"):
        stop_stages(m, (0.5,))


def test_spec_validates_and_picks_the_nearest_lambda() -> None:
    spec = CascadeSpec("s", (32, 64), (0.0, 0.1), ((0.5,), (0.2,)), None, 0.1)
    assert spec.thresholds() == (0.2,)
    assert spec.thresholds(0.01) == (0.5,)
    assert spec.thresholds(0.0, fused=False) == (float("inf"),)  # not fitted: always the last stage
    with pytest.raises(ValueError, match="increasing"):
        CascadeSpec("s", (64, 32), (0.0,), ((0.5,),))
    with pytest.raises(ValueError, match="one row"):
        CascadeSpec("s", (32, 64), (0.0, 0.1), ((0.5,),))


def test_manifest_round_trip_keeps_never_stop(smoke_weights: Path) -> None:
    d = json.loads((smoke_weights / "manifest.json").read_text())
    comp = CascadeComponent("student", (32, 48), (0.0, 0.5), ((float("inf"),), (0.1,)), ((0.2,), (0.3,)), 0.5)
    d["components"]["cascade"] = comp.to_dict()
    assert d["components"]["cascade"]["fused"] == [[None], [0.1]]  # JSON has no inf
    m = Manifest.from_dict(json.loads(json.dumps(d)), "m.json")
    assert m.cascade == comp and m.to_dict() == d
    d["components"]["cascade"]["fused"] = [["x"], [0.1]]
    with pytest.raises(WeightsError, match="components.cascade.fused"):
        Manifest.from_dict(d, "m.json")


def test_row_labels_round_trip() -> None:
    for label in ("default/student+cascade(lambda_F=0.02)+HOG", "default/student+cascade(lambda_F=0)",
                  "default/student+selector(lambda_F=0.1)"):
        key = RowKey.parse(label)
        assert key.label() == label
    k = RowKey.parse("w/student+cascade(lambda_F=0.05)")
    assert k.cascade and k.picks_canvas and not k.uses_selector
    assert k.series().line == "w/student+cascade"


@pytest.fixture(scope="module")
def cascade_weights(smoke_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke weights with a cascade fitted by ``training.fit_cascade --smoke``."""
    from training import fit_cascade

    d = tmp_path_factory.mktemp("cascade")
    w = d / "w"
    shutil.copytree(smoke_weights, w)
    fit_cascade.main(["--smoke", "--weights", str(w), "--out", str(d / "run"), "--apply", str(w)])
    return w


def test_fit_writes_a_loadable_cascade_and_a_report(cascade_weights: Path) -> None:
    from sketchdown.bundles.bundle import load_bundle

    b = load_bundle(cascade_weights)
    assert b.cascade is not None and b.cascade.stages == (32, 48) and b.cascade.model == "student"
    report = json.loads((cascade_weights / "manifest.json").read_text())["provenance"]["cascade"]["report"]
    cv = report["fused"]["cv"]
    assert {"0", "0.5", "fixed@32", "fixed@48"} <= set(cv)
    assert cv["fixed@48"]["gflops"] > cv["fixed@32"]["gflops"] > 0
    assert report["default_lam"]["lam"] in b.cascade.lams


def test_fit_never_does_worse_than_the_last_stage_on_its_own_data() -> None:
    """Never-stop is a candidate, so at lambda_F 0 the fit reaches at least the last stage's accuracy;
    a larger lambda_F never costs more."""
    from training.fit_cascade import Table, fit_thresholds, outcome

    rng = np.random.default_rng(1)
    n = 400
    margin = rng.uniform(0, 1, (n, 3))
    ok = np.stack([rng.uniform(size=n) < 0.2 + 0.6 * margin[:, 0], rng.uniform(size=n) < 0.5, rng.uniform(size=n) < 0.6], 1)
    t = Table(ok, margin, np.arange(n) % 20, np.ones(n, bool))
    cost = stage_costs([1, 4, 16]).astype(float)
    acc0, fl0, _ = outcome(t, fit_thresholds(t, cost, 0.0, 11), cost)
    assert acc0.mean() >= ok[:, 2].mean()
    _, fl1, _ = outcome(t, fit_thresholds(t, cost, 0.5, 11), cost)
    assert fl1.mean() <= fl0.mean()


def _sketches() -> list[Sketch]:
    rng = np.random.default_rng(3)
    out = []
    for n in (1, 2, 4, 6):
        out.append(Sketch(tuple((rng.uniform(0, 200, (rng.integers(2, 8), 2))).astype(np.float32) for _ in range(n))))
    return out


@pytest.fixture(scope="module")
def cascade_retriever(cascade_weights: Path, tmp_path_factory: pytest.TempPathFactory):
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.retrieval.retriever import Retriever

    photos = Path(__file__).resolve().parents[1] / "gallery"
    folder = tmp_path_factory.mktemp("photos")
    for p in sorted(photos.rglob("*.jpg"))[:6]:
        shutil.copy(p, folder / p.name)
    return Retriever.from_folder(load_bundle(cascade_weights), folder, tmp_path_factory.mktemp("index"), backend="eager")


@pytest.mark.parametrize("fusion", [True, False])
def test_retriever_runs_the_stages_as_fixed_searches_would(cascade_retriever, fusion: bool) -> None:
    r = cascade_retriever
    spec, b = r.bundle.cascade, r.bundle.sketch["student"]
    lam = spec.lams[-1]
    for sk in _sketches():
        res = r.retrieve(sk, k=3, canvas="cascade", lam=lam, fusion=fusion)
        thr = spec.thresholds(lam, fused=r.hog_alpha("student", fusion) > 0)
        expect, flops = None, 0
        for i, c in enumerate(spec.stages):  # the reference: one fixed-canvas search per stage
            fixed = r.retrieve(sk, k=len(r.gallery.paths), canvas=c, fusion=fusion)
            s = [h.score for h in fixed.hits]
            flops += b.flops(c)
            if i == len(spec.stages) - 1 or s[0] - s[1] >= thr[i]:
                expect = fixed
                break
        assert res.canvas == expect.canvas and [c for c, _, _ in res.cascade][-1] == res.canvas
        assert [h.index for h in res.hits] == [h.index for h in expect.hits[:3]]
        assert res.gflops == pytest.approx((flops + round(expect.hog_gflops * 1e9)) / 1e9)
        assert res.canvas_probs is None and 0.0 <= res.abstraction <= 1.0


def test_auto_is_the_selector_and_the_cascade_is_asked_for(cascade_retriever, smoke_weights: Path) -> None:
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.retrieval.retriever import Retriever

    r = cascade_retriever
    sk = _sketches()[2]
    for how in ("auto", "selector"):
        sel = r.retrieve(sk, canvas=how)
        assert sel.cascade is None and sel.canvas_probs is not None
    assert "cascade" in r.retrieve(sk, canvas="cascade").to_json()
    plain = Retriever(load_bundle(smoke_weights), r.gallery, backend="eager")
    with pytest.raises(ValueError, match="no cascade"):
        plain.retrieve(sk, canvas="cascade")


def test_evaluation_stops_where_the_retriever_stops(cascade_weights: Path, tmp_path: Path) -> None:
    """The evaluation's batched cascade gives every sketch the canvas and cost the Retriever's
    one-at-a-time run gives it."""
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.eval.data import PairedDataset, SketchItem
    from sketchdown.eval.evaluate import _photo_retriever, _Queries

    b = load_bundle(cascade_weights)
    photos = sorted((Path(__file__).resolve().parents[1] / "gallery").rglob("*.jpg"))[:5]
    sks = _sketches()
    data = PairedDataset("t", [SketchItem(str(i), s, i % 5) for i, s in enumerate(sks)], photos, ["x"] * 5)
    retr, pemb = _photo_retriever(b, data, None)
    retr.backend = "eager"
    q = _Queries(retr, [sks], pemb)
    for lam in b.cascade.lams:
        row = RowKey("student", None, lam, hog=True, weights=b.name, cascade=True)
        ch = q.choice(row)
        for i, sk in enumerate(sks):
            res = retr.retrieve(sk, canvas="cascade", lam=lam)
            assert ch.canvases[i] == res.canvas
            assert ch.flops[i] == pytest.approx(res.selector_gflops * 1e9)
