"""Result row labels: RowKey.label writes every label the shipped results hold, RowKey.parse is its exact
inverse, and the plot's series follow the labels' fields."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from sketchdown.eval.rows import RowKey, Series, uses_selector

REPO = Path(__file__).resolve().parent.parent
WEIGHT_SETS = [d for d in sorted((REPO / "weights").iterdir()) if (d / "manifest.json").is_file()
               and "photo" in json.loads((d / "manifest.json").read_text()).get("components", {})]


def results_md_labels() -> list[str]:
    """The first cell of every body row of weights/RESULTS.md's ``| model |`` tables (not the published rows)."""
    out, in_table = [], False
    for line in (REPO / "weights" / "RESULTS.md").read_text().splitlines():
        if line.startswith("| model |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("|---"):
            cell = line.split("|")[1].strip()
            if not cell.startswith("*"):
                out.append(cell)
    return out


def manifest_labels() -> list[str]:
    """Every row's label in the shipped manifests' ``metrics`` (what training.make_results stores)."""
    out = []
    for d in WEIGHT_SETS:
        for per in json.loads((d / "manifest.json").read_text()).get("metrics", {}).values():
            out += [r["model"] for r in per.get("rows", [])]
    return out


@pytest.mark.parametrize("weights", WEIGHT_SETS, ids=lambda d: d.name)
def test_default_rows_round_trip(weights: Path) -> None:
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.eval.evaluate import default_rows

    b = load_bundle(weights)
    rows = default_rows(b, sweep=True) + default_rows(b, sweep=True, granularity="category")
    assert rows and all(r.weights == b.name for r in rows)
    for r in rows:
        assert RowKey.parse(r.label()) == r
    # the labels the shipped manifest stores for this weight set are exactly default_rows'
    stored = {lb for per in b.metrics.values() for lb in (x["model"] for x in per.get("rows", []))}
    assert stored and stored <= {r.label() for r in rows}


def test_stored_labels_round_trip() -> None:
    labels = results_md_labels() + manifest_labels()
    assert len(labels) > 100 and any("+selector(" in lb for lb in labels) and any("(mobilenet_v2)@" in lb for lb in labels)
    for lb in labels:
        assert RowKey.parse(lb).label() == lb


@pytest.mark.parametrize(("label", "fields"), [
    ("default/student@96+HOG", ("default", "student", 96, None, True)),
    ("default/student+selector(lambda_F=0.1)+HOG", ("default", "student", None, 0.1, True)),
    ("chairv2/student-nokd+selector(lambda_F=0)", ("chairv2", "student-nokd", None, 0.0, False)),
    ("default/teacher", ("default", "teacher", None, None, False)),
    ("default/teacher@224", ("default", "teacher", 224, None, False)),
    ("mobilenet_v2-kd (mobilenet_v2)@96", (None, "mobilenet_v2-kd (mobilenet_v2)", 96, None, False)),
    ("hf/owner/set/student@64", ("hf/owner/set", "student", 64, None, False)),
])
def test_fields(label: str, fields: tuple) -> None:
    k = RowKey.parse(label)
    assert (k.weights, k.model, k.canvas, k.lam, k.hog) == fields
    assert k.label() == label
    assert k.uses_selector == (fields[3] is not None) == uses_selector(label) == ("+selector(" in label)


@pytest.mark.parametrize("label", [
    "", "default/", "default/student@", "default/student@x", "default/student@096", "default/student@96+hog",
    "default/student+selector(lambda_F=0.10)", "default/student+selector(lambda_F=)", "default/student+selector(lam=0.1)",
    "default/student@96+selector(lambda_F=0.1)", "default/student+HOG+HOG", "default/student@96 ",
])
def test_malformed_labels(label: str) -> None:
    with pytest.raises(ValueError):
        RowKey.parse(label)
    assert not uses_selector(label)  # a malformed label measured nothing


def test_invalid_keys() -> None:
    with pytest.raises(ValueError):
        RowKey("student", 96, 0.1)
    for bad in ("a/b", "a@b", "student+HOG", "student+selector(x"):
        with pytest.raises(ValueError):
            RowKey(bad, 96)


def test_series() -> None:
    assert RowKey.parse("default/student@96+HOG").series() == Series("default/student+HOG", "96")
    assert RowKey.parse("default/student@96").series(weights=False) == Series("student", "96")
    assert RowKey.parse("default/student+selector(lambda_F=0.1)+HOG").series() == Series("default/student+selector+HOG", "λ=0.1")
    assert RowKey.parse("default/student+selector(lambda_F=0)").series(False) == Series("student+selector", "λ=0")
    assert RowKey.parse("default/teacher").series() == Series("default/teacher", "")
    # every stored row lands on the line its label names with the canvas or lambda_F cut out
    for lb in manifest_labels():
        line, tag = RowKey.parse(lb).series()
        assert line == re.sub(r"@\d+|\(lambda_F=[^)]*\)", "", lb)
        assert tag == (lb.split("@")[1].removesuffix("+HOG") if "@" in lb else "λ=" + lb.split("lambda_F=")[1].split(")")[0])


def test_plot_lines_and_markers() -> None:
    pytest.importorskip("matplotlib")
    from sketchdown.eval.plot import flops_vs_acc, metric_rows

    metrics = json.loads((WEIGHT_SETS[0] / "manifest.json").read_text())["metrics"]
    name, rows = metric_rows(metrics)
    assert name and rows
    fig = flops_vs_acc(metrics, current=0.2, full=4.5)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    lines = {RowKey.parse(r["model"]).series(False).line for r in rows}
    assert set(legend[: len(lines)]) == lines  # one weight set: its name is left out
    assert legend[len(lines):] == ["paper: VGG-16 Triplet-SN (full network): 40.18 GFLOPs", "paper: SketchyNetV2 + selector: 0.254 GFLOPs",
                                   "full network (this sketch)", "this query: 0.2 GFLOPs"]
    # each line's points are its rows' (GFLOPs, Acc@1), in FLOPs order
    for ln in ax.get_lines()[: len(lines)]:
        pts = sorted((r["gflops_per_query"], r["acc@1"]) for r in rows if RowKey.parse(r["model"]).series(False).line == ln.get_label())
        assert list(zip(ln.get_xdata(), ln.get_ydata(), strict=True)) == pts
    two = [dict(r, model=replace(RowKey.parse(r["model"]), weights=w).label()) for r in rows[:3] for w in ("a", "b")]
    fig2 = flops_vs_acc(two, title="t")
    assert all(t.get_text().startswith(("a/", "b/", "paper: ")) for t in fig2.axes[0].get_legend().get_texts())
    assert flops_vs_acc({"rows": [{"model": "x/y@1", "acc@1": None, "gflops_per_query": 1.0}]}) is None
    assert flops_vs_acc([]) is None
